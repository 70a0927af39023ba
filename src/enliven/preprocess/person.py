"""The most prominent person in a frame, from MediaPipe pose landmarks: the body crops of ``enliven prepare`` and
``--model auto``'s choice between the face model and the others."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from enliven.preprocess.boxes import Box
from enliven.preprocess.face import MediaPipeGraphs, pose_found
from enliven.preprocess.track import FaceTrack

#: A person's box is the visible pose landmarks' extent, grown by this factor (hands, feet and hair lie outside).
BODY_BOX_SCALE = 1.25
#: A pose landmark counts when MediaPipe's visibility is above this.
MIN_VISIBILITY = 0.5


class PersonDetector(MediaPipeGraphs):
    """The box of the most prominent person, from MediaPipe pose landmarks (``mediapipe.solutions.pose``).

    MediaPipe is imported on construction; its native start-up messages are kept off the terminal
    (:class:`~enliven.preprocess.face.MediaPipeGraphs`).

    Args:
        video: tracking mode, for consecutive frames of one clip; ``False`` for unrelated photos.
    """

    def __init__(self, video: bool = True) -> None:
        super().__init__()
        self._pose = self._new_pose(static_image_mode=not video)

    def landmarks(self, image: np.ndarray) -> np.ndarray | None:
        """The 33 pose landmarks of the most prominent person in an ``H x W x 3`` uint8 RGB image: ``33 x 2``
        float64 ``(x, y)`` pixel positions (pixel ``(i, j)`` covers ``[i, i + 1)``), every point MediaPipe places,
        also those it guesses (a hidden or cut-off limb); ``None`` if nobody is found."""
        found = self._run(image)
        return None if found is None else found[0]

    def detect(self, image: np.ndarray) -> Box | None:
        """Person box in an ``H x W x 3`` uint8 RGB image, or ``None`` if nobody is found."""
        found = self._run(image)
        if found is None:
            return None
        points = found[0][found[1] > MIN_VISIBILITY]
        if len(points) < 4:
            return None
        (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        return Box(x0, y0, x1, y1).scaled(BODY_BOX_SCALE)

    def _run(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``33 x 2`` pixel positions and ``33`` visibilities in ``[0, 1]``, or ``None``."""
        result = self._process(self._pose, np.ascontiguousarray(image), pose_found)
        if result.pose_landmarks is None:
            return None
        h, w = image.shape[:2]
        marks = result.pose_landmarks.landmark
        points = np.array([(p.x * w, p.y * h) for p in marks], dtype=np.float64)
        return points, np.array([p.visibility for p in marks])


def track_people(frames: Iterable[np.ndarray], detector: PersonDetector, stride: int = 1) -> FaceTrack:
    """Per-frame person boxes (NaN where nobody was found or the frame was skipped by ``stride``)."""
    boxes: list[Box | None] = []
    size = (0, 0)
    for i, frame in enumerate(frames):
        size = (frame.shape[1], frame.shape[0])
        boxes.append(detector.detect(frame) if i % stride == 0 else None)
    return FaceTrack.from_boxes(boxes, size)


def body_box(track: FaceTrack) -> Box:
    """A square around every frame's person box (2nd/98th percentile edges), made to fit the image."""
    found = track.boxes[track.detected]
    lo = np.percentile(found[:, :2], 2, axis=0)
    hi = np.percentile(found[:, 2:], 98, axis=0)
    return Box(lo[0], lo[1], hi[0], hi[1]).square().fitted_inside(*track.image_size)
