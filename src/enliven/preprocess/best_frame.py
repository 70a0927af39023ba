"""FOMM's "find best frame": the driving frame whose face is posed most like the source face.

Relative motion transfer moves the source by the driving frames' displacement from a reference driving
frame; starting from the frame most similar to the source (FOMM ``--find_best_frame``) avoids transferring
a pose offset. FOMM compares 68 face-alignment landmarks; here the landmarks are MediaPipe's face mesh
(:class:`FaceLandmarker`), compared with the same rule, or for bodies MediaPipe's pose (:func:`best_matching_pose`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from enliven.polygons import convex_hull_area
from enliven.pose import (
    LEFT_ANKLE,
    LEFT_ELBOW,
    LEFT_HIP,
    LEFT_KNEE,
    LEFT_SHOULDER,
    LEFT_WRIST,
    NOSE,
    RIGHT_ANKLE,
    RIGHT_ELBOW,
    RIGHT_HIP,
    RIGHT_KNEE,
    RIGHT_SHOULDER,
    RIGHT_WRIST,
)


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

    Distance: sum of squared differences of :func:`face_alignment_features`. Landmarks not found in the source (NaN
    rows: a detector that leaves out what lies outside the photo) are left out of the match; frames whose landmarks
    are ``None`` (no face), miss one of the others (NaN) or lie on a line are skipped.

    Args:
        source_landmarks: ``N x 2`` landmarks of the source image.
        driving_landmarks_sequence: per driving frame, ``N x 2`` landmarks (same model and order) or ``None``.

    Returns:
        Index into ``driving_landmarks_sequence``; 0 when no driving frame has landmarks (FOMM's default
        reference is the first frame).

    Raises:
        ValueError: fewer than three source landmarks found, or all on a line; a frame's landmarks of another shape.
    """
    points = np.asarray(source_landmarks, dtype=np.float64)
    seen = np.isfinite(points).all(axis=-1)
    source = face_alignment_features(points[seen])
    best, best_dist = 0, np.inf
    for i, landmarks in enumerate(driving_landmarks_sequence):
        if landmarks is None:
            continue
        if np.shape(landmarks) != points.shape:
            shape = np.shape(landmarks)
            raise ValueError(f"driving frame {i} has landmarks of shape {shape}, the source {points.shape}")
        chosen = np.asarray(landmarks, dtype=np.float64)[seen]
        if not np.isfinite(chosen).all() or convex_hull_area(chosen - chosen.mean(0)) <= 0.0:
            continue
        dist = float(np.sum((face_alignment_features(chosen) - source) ** 2))
        if dist < best_dist:
            best, best_dist = i, dist
    return best


#: The pose landmarks a body's best frame is matched on: nose, shoulders, elbows, wrists, hips, knees, ankles (the
#: pose of the body, not the detail of its face, hands or feet).
POSE_MATCH_POINTS: tuple[int, ...] = (
    NOSE, LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_ELBOW, RIGHT_ELBOW, LEFT_WRIST, RIGHT_WRIST,
    LEFT_HIP, RIGHT_HIP, LEFT_KNEE, RIGHT_KNEE, LEFT_ANKLE, RIGHT_ANKLE,
)  # fmt: skip


def best_matching_pose(source_points: np.ndarray, driving_points: Sequence[np.ndarray]) -> int:
    """Index of the driving frame whose body is posed most like the source's: :func:`best_matching_frame` over
    :data:`POSE_MATCH_POINTS` of MediaPipe's 33 pose landmarks (``33 x 2`` each, any uniform unit). Points not found
    in the source (NaN: a detector that leaves out a half-body photo's legs) are left out of the match; frames
    without a person (NaN points) or with a degenerate pose are skipped; 0 when none is left."""
    points = list(POSE_MATCH_POINTS)
    try:
        return best_matching_frame(
            np.asarray(source_points, dtype=np.float64)[points],
            [np.asarray(frame, dtype=np.float64)[points] for frame in driving_points],
        )
    except ValueError:  # fewer than three of the points found in the source, or all on a line
        return 0


def best_model_pose_frame(source_points: np.ndarray, driving_points: Sequence[np.ndarray]) -> int:
    """:func:`best_matching_pose` of a body model's landmarks (``33 x 2``, ``(x, y)`` in ``[-1, 1]``), where MediaPipe
    also places the points it cannot see: the source's points outside its frame (a half-body photo's legs) are left
    out of the match, as the evaluation's keypoints leave them out (``enliven eval --find-best-frame``)."""
    source = np.array(source_points, dtype=np.float64)
    source[(np.abs(source) > 1.0).any(axis=-1)] = np.nan
    return best_matching_pose(source, driving_points)
