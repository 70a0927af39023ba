"""External keypoint detectors for AKD and MKR, and the motion signals of the animation protocol.

The published protocol measures keypoints with a detector the model never saw: face landmarks for faces, a pose
network for bodies. Here: dlib's 68-point shape predictor (from ``face_recognition_models``) on dlib's frontal face
detector (default for faces), MediaPipe's face mesh (468 points, an option), and MediaPipe pose (33 points) for
bodies. Each detector returns ``K x 2`` ``(x, y)`` pixel positions (pixel ``(i, j)`` covers ``[i, i + 1)``), with NaN
rows for keypoints it did not find: a face detector misses all of a face at once, the pose network per keypoint.
dlib and MediaPipe are imported when a detector is built.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Protocol

import numpy as np

from enliven.pose import NUM_POSE_POINTS, joint_angles
from enliven.preprocess._deps import import_dlib
from enliven.preprocess.face import MediaPipeGraphs, pose_found

#: A pose keypoint counts as detected when MediaPipe's visibility is at least this.
POSE_MIN_VISIBILITY = 0.5


class LandmarkSet(StrEnum):
    """Which external keypoints measure AKD and MKR."""

    DLIB68 = "dlib68"  # faces: dlib's 68-point shape predictor
    MESH = "mesh"  # faces: MediaPipe face mesh, 468 points
    POSE = "pose"  # bodies: MediaPipe pose, 33 points
    NONE = "none"  # neither faces nor bodies: no keypoint metrics


class KeypointDetector(Protocol):
    """Finds a fixed number of keypoints in ``H x W x 3`` uint8 RGB images."""

    num_keypoints: int

    def detect(self, image: np.ndarray) -> np.ndarray:
        """``num_keypoints x 2`` pixel positions, NaN rows where not found."""
        ...

    def close(self) -> None: ...


class DlibFaces:
    """dlib's HOG frontal face detector; the largest face of an image, looked for again at 2x when none is found."""

    def __init__(self) -> None:
        self.dlib, self.models = import_dlib()
        self._detector = self.dlib.get_frontal_face_detector()

    def largest_face(self, image: np.ndarray) -> Any | None:
        """The largest face's ``dlib.rectangle``, or ``None``."""
        image = np.ascontiguousarray(image)
        for upsample in (0, 1):  # most 256 px crops need no upsampling, which is 4x faster
            faces = self._detector(image, upsample)
            if len(faces):
                return max(faces, key=lambda r: r.area())
        return None


class DlibLandmarks:
    """dlib's 68 face landmarks (iBUG 300-W order: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, lips 48-67)."""

    num_keypoints = 68

    def __init__(self) -> None:
        self._faces = DlibFaces()
        self._predictor = self._faces.dlib.shape_predictor(self._faces.models.pose_predictor_model_location())

    def detect(self, image: np.ndarray) -> np.ndarray:
        image = np.ascontiguousarray(image)
        face = self._faces.largest_face(image)
        if face is None:
            return np.full((68, 2), np.nan)
        shape = self._predictor(image, face)
        # dlib gives integer pixel indices; +0.5 puts them at pixel centres, the convention of the other detectors.
        return np.array([[p.x + 0.5, p.y + 0.5] for p in shape.parts()], dtype=np.float64)

    def close(self) -> None:
        pass


class MeshLandmarks:
    """MediaPipe face mesh, 468 points (see :class:`enliven.preprocess.FaceLandmarker`)."""

    num_keypoints = 468

    def __init__(self) -> None:
        from enliven.preprocess import FaceLandmarker

        self._mesh = FaceLandmarker()

    def detect(self, image: np.ndarray) -> np.ndarray:
        points = self._mesh.landmarks(image)
        return np.full((468, 2), np.nan) if points is None else points

    def close(self) -> None:
        self._mesh.close()


class PoseLandmarks(MediaPipeGraphs):
    """MediaPipe pose, 33 body keypoints; a keypoint below :data:`POSE_MIN_VISIBILITY` counts as not found. Its
    native start-up messages are kept off the terminal (:class:`~enliven.preprocess.face.MediaPipeGraphs`)."""

    num_keypoints = NUM_POSE_POINTS

    def __init__(self) -> None:
        super().__init__()
        self._pose = self._new_pose(static_image_mode=True)

    def detect(self, image: np.ndarray) -> np.ndarray:
        result = self._process(self._pose, np.ascontiguousarray(image), pose_found)
        points = np.full((33, 2), np.nan)
        if result.pose_landmarks is None:
            return points
        h, w = image.shape[:2]
        for i, mark in enumerate(result.pose_landmarks.landmark):
            if mark.visibility >= POSE_MIN_VISIBILITY:
                points[i] = (mark.x * w, mark.y * h)
        return points


def make_detector(landmarks: LandmarkSet) -> KeypointDetector | None:
    """The detector of a landmark set (``None`` for :attr:`LandmarkSet.NONE`)."""
    if landmarks is LandmarkSet.DLIB68:
        return DlibLandmarks()
    if landmarks is LandmarkSet.MESH:
        return MeshLandmarks()
    if landmarks is LandmarkSet.POSE:
        return PoseLandmarks()
    return None


def detect_all(detector: KeypointDetector | None, frames: np.ndarray) -> np.ndarray | None:
    """``N x K x 2`` keypoints of ``N`` frames, or ``None`` without a detector."""
    if detector is None:
        return None
    return np.stack([detector.detect(frame) for frame in frames])


@dataclass(frozen=True)
class MotionSignals:
    """Per-frame motion measured from keypoints (``N`` values each, NaN where the keypoints were not found).

    Attributes:
        mouth: inner-lip opening over the distance between the eye centres (faces).
        eyes: eye aspect ratio, mean of both eyes (faces).
        head_x: horizontal position of the keypoints' centroid, as a fraction of the image width.
        head_y: vertical position of the keypoints' centroid, as a fraction of the image height.
        yaw: nose tip position between the jaw ends, -0.5 (turned to one side) to 0.5 (the other) (faces).
        joints: ``N x 8`` angles in radians, ``0`` (folded) to ``pi`` (straight), of the elbows, shoulders, hips and
            knees, left and right (:data:`enliven.pose.POSE_JOINTS`; bodies, MediaPipe pose), or ``None`` for other
            keypoints.
    """

    mouth: np.ndarray
    eyes: np.ndarray
    head_x: np.ndarray
    head_y: np.ndarray
    yaw: np.ndarray
    joints: np.ndarray | None = None

    NAMES: ClassVar[tuple[str, ...]] = ("mouth", "eyes", "head_x", "head_y", "yaw")


def motion_signals(points: np.ndarray, image_size: tuple[int, int]) -> MotionSignals:
    """Motion signals of ``N x K x 2`` keypoints in images of ``(width, height)``.

    Mouth, eyes and yaw need dlib's 68 landmarks (NaN for other keypoint sets), joint angles MediaPipe pose's 33;
    positions work for any set.
    """
    width, height = image_size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN frames give NaN means, as intended
        head_x = np.nanmean(points[..., 0], axis=1) / width
        head_y = np.nanmean(points[..., 1], axis=1) / height
    if points.shape[1] != 68:
        nan = np.full(len(points), np.nan)
        joints = joint_angles(points) if points.shape[1] == NUM_POSE_POINTS else None
        return MotionSignals(nan, nan.copy(), head_x, head_y, nan.copy(), joints)

    def dist(i: int, j: int) -> np.ndarray:
        return np.linalg.norm(points[:, i] - points[:, j], axis=-1)

    right_eye, left_eye = points[:, 36:42].mean(axis=1), points[:, 42:48].mean(axis=1)
    interocular = np.maximum(np.linalg.norm(right_eye - left_eye, axis=-1), 1e-6)
    mouth = (dist(61, 67) + dist(62, 66) + dist(63, 65)) / (3 * interocular)
    right_ear = (dist(37, 41) + dist(38, 40)) / (2 * np.maximum(dist(36, 39), 1e-6))
    left_ear = (dist(43, 47) + dist(44, 46)) / (2 * np.maximum(dist(42, 45), 1e-6))
    jaw_width = points[:, 16, 0] - points[:, 0, 0]
    safe_width = np.where(np.abs(jaw_width) < 1e-6, np.nan, jaw_width)
    yaw = (points[:, 30, 0] - points[:, 0, 0]) / safe_width - 0.5
    return MotionSignals(mouth, (right_ear + left_ear) / 2, head_x, head_y, yaw)


#: dlib's lip landmarks (outer 48-59, inner 60-67).
DLIB_MOUTH = slice(48, 68)


def region_box(
    points: np.ndarray, image_size: tuple[int, int], grow: float = 0.0, square: bool = False
) -> tuple[int, int, int, int] | None:
    """``(x0, y0, x1, y1)`` integer pixels around the found (finite) ``K x 2`` points, grown by ``grow`` of the box's
    size on every side (``square``: around its centre, to a square of its longer side), clipped to the image of
    ``(width, height)``; ``None`` when no point was found or the box is empty."""
    found = points[np.isfinite(points).all(axis=1)]
    if not len(found):
        return None
    (x0, y0), (x1, y1) = found.min(axis=0), found.max(axis=0)
    if square:
        cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) / 2
        x0, x1, y0, y1 = cx - half, cx + half, cy - half, cy + half
    dx, dy = grow * (x1 - x0), grow * (y1 - y0)
    width, height = image_size
    box = (
        max(0, int(x0 - dx)),
        max(0, int(y0 - dy)),
        min(width, int(np.ceil(x1 + dx))),
        min(height, int(np.ceil(y1 + dy))),
    )
    return box if box[2] - box[0] >= 2 and box[3] - box[1] >= 2 else None
