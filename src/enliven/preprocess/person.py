"""The most prominent person in a frame, from MediaPipe pose landmarks: the body crops of ``enliven prepare`` and
``--model auto``'s choice between the face model and the others."""

from __future__ import annotations

import numpy as np

from enliven.preprocess.boxes import Box
from enliven.preprocess.face import MediaPipeGraphs, pose_found

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

    def detect(self, image: np.ndarray) -> Box | None:
        """Person box in an ``H x W x 3`` uint8 RGB image, or ``None`` if nobody is found."""
        result = self._process(self._pose, np.ascontiguousarray(image), pose_found)
        if result.pose_landmarks is None:
            return None
        h, w = image.shape[:2]
        points = np.array([(p.x * w, p.y * h) for p in result.pose_landmarks.landmark if p.visibility > MIN_VISIBILITY])
        if len(points) < 4:
            return None
        (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        return Box(x0, y0, x1, y1).scaled(BODY_BOX_SCALE)
