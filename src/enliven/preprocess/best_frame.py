"""FOMM's "find best frame": the driving frame whose face is posed most like the source face.

Relative motion transfer moves the source by the driving frames' displacement from a reference driving
frame; starting from the frame most similar to the source (FOMM ``--find_best_frame``) avoids transferring
a pose offset. FOMM compares 68 face-alignment landmarks; here the landmarks are MediaPipe's face mesh
(:class:`FaceLandmarker`), compared with the same rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from enliven.polygons import convex_hull_area


def face_alignment_features(landmarks: np.ndarray) -> np.ndarray:
    """Landmarks centred on their mean and divided by the square root of their convex hull's area.

    This removes the face's position and size, keeping its pose and expression (FOMM ``normalize_kp``).

    Args:
        landmarks: ``N x 2`` ``(x, y)`` positions (pixels or any uniform unit), ``N >= 3``.

    Returns:
        ``N x 2`` float64 features, dimensionless.

    Raises:
        ValueError: fewer than 3 points, or all points on a line (no area).
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] < 3:
        raise ValueError(f"landmarks must be N x 2 with N >= 3, got shape {points.shape}")
    centred = points - points.mean(axis=0, keepdims=True)
    area = convex_hull_area(centred)
    if area <= 0.0:
        raise ValueError("landmarks are degenerate (collinear): their convex hull has no area")
    return centred / np.sqrt(area)


def best_matching_frame(source_landmarks: np.ndarray, driving_landmarks_sequence: Sequence[np.ndarray | None]) -> int:
    """Index of the driving frame whose normalised landmarks are closest to the source's.

    Distance: sum of squared differences of :func:`face_alignment_features`. Frames whose landmarks are
    ``None`` (no face) are skipped.

    Args:
        source_landmarks: ``N x 2`` landmarks of the source image.
        driving_landmarks_sequence: per driving frame, ``N x 2`` landmarks (same model and order) or ``None``.

    Returns:
        Index into ``driving_landmarks_sequence``; 0 when no driving frame has landmarks (FOMM's default
        reference is the first frame).
    """
    source = face_alignment_features(source_landmarks)
    best, best_dist = 0, np.inf
    for i, landmarks in enumerate(driving_landmarks_sequence):
        if landmarks is None:
            continue
        if np.shape(landmarks) != source.shape:
            shape = np.shape(landmarks)
            raise ValueError(f"driving frame {i} has landmarks of shape {shape}, the source {source.shape}")
        dist = float(np.sum((face_alignment_features(landmarks) - source) ** 2))
        if dist < best_dist:
            best, best_dist = i, dist
    return best
