"""The most prominent person in a frame, from MediaPipe pose landmarks: the body crops of ``enliven prepare`` and
``--model auto``'s choice between the face model and the others."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from enliven.preprocess._deps import import_mediapipe_solutions
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


#: Selfie-segmentation scores above this count as the person.
PERSON_THRESHOLD = 0.5


class PersonSegmenter(MediaPipeGraphs):
    """Where the person is in an image: MediaPipe's selfie segmentation (``mediapipe.solutions.selfie_segmentation``,
    the general 256 x 256 model the wheel ships), ~6 ms a 256 px image on a CPU core."""

    def __init__(self) -> None:
        super().__init__()
        self._graph = self._new(import_mediapipe_solutions().selfie_segmentation.SelfieSegmentation, model_selection=0)

    def mask(self, image: np.ndarray) -> np.ndarray:
        """``H x W`` float32 in ``[0, 1]``: 1 on the person in an ``H x W x 3`` uint8 RGB image (soft at the edge)."""
        result = self._process(self._graph, np.ascontiguousarray(image))
        return np.asarray(result.segmentation_mask, dtype=np.float32)


#: The person is painted out of a background plate with this margin around its mask (a share of the image side).
PLATE_MARGIN = 0.04
#: The plate is painted at this size (the background behind a person is a guess: it needs no detail) and resized.
PLATE_SIZE = 64


def background_plate(image: np.ndarray, person: np.ndarray) -> np.ndarray:
    """The ``H x W x 3`` uint8 ``image`` with the person (``person``: ``H x W`` weights in ``[0, 1]``, from
    :meth:`PersonSegmenter.mask`) painted out by OpenCV's inpainting (Telea's method), at :data:`PLATE_SIZE`: what a
    body model shows where the person moved away (``H x W x 3`` uint8; the image itself away from the person)."""
    from enliven.preprocess._deps import import_cv2

    cv2 = import_cv2()
    height, width = image.shape[:2]
    grow = 2 * max(1, round(PLATE_MARGIN * max(height, width))) + 1
    hole = cv2.dilate((person > PERSON_THRESHOLD).astype(np.uint8), np.ones((grow, grow), np.uint8))
    if not hole.any():
        return image.copy()
    small = cv2.resize(image, (PLATE_SIZE, PLATE_SIZE), interpolation=cv2.INTER_AREA)
    small_hole = cv2.resize(hole, (PLATE_SIZE, PLATE_SIZE), interpolation=cv2.INTER_NEAREST)
    painted = cv2.resize(cv2.inpaint(small, small_hole, 3, cv2.INPAINT_TELEA), (width, height), cv2.INTER_LINEAR)
    soft = cv2.GaussianBlur(hole.astype(np.float32), (grow, grow), 0)[..., None]
    return (painted * soft + image * (1 - soft)).round().astype(np.uint8)


def person_plate(image: np.ndarray, person: np.ndarray) -> np.ndarray:
    """The background plate of ``image`` (:func:`background_plate`) with the person's mask as a fourth channel: what
    a body model takes once per source (``H x W x 4`` uint8; the mask's ``[0, 1]`` as ``0 .. 255``). The mask tells
    a model that lays the body's parts over each other which pixels are the person's."""
    mask = (np.clip(person, 0.0, 1.0) * 255).round().astype(np.uint8)
    return np.concatenate([background_plate(image, person), mask[..., None]], axis=-1)
