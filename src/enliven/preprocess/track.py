"""Face tracks over a clip: per-frame face boxes, gap filling, one stable crop, smoothed per-frame crops.

Tracking is streaming: frames are read one at a time and only their boxes are kept, so a long 1080p clip
costs a few bytes per frame. Boxes are the detector's face boxes (brows to chin, ear to ear, in pixels, see
:mod:`enliven.preprocess.boxes`); crops around them are made with :func:`face_crop_box`'s framing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from enliven.errors import NoFaceError
from enliven.preprocess.boxes import Box
from enliven.preprocess.face import (
    FACE_CROP_SCALE,
    FACE_CROP_SHIFT_UP,
    FaceDetection,
    FaceDetector,
    face_crop_boxes,
)


@dataclass(frozen=True, eq=False)
class FaceTrack:
    """Face boxes of the frames of one clip (or of a segment of it).

    Attributes:
        boxes: ``N x 4`` float64 ``(x0, y0, x1, y1)`` face boxes in pixels, NaN in frames without a face.
        scores: ``N`` detection scores, 0 in frames without a face.
        image_size: ``(width, height)`` of the frames.
        start: index of the first frame of this track in the clip it was cut from (see :func:`split_track`).
    """

    boxes: np.ndarray
    scores: np.ndarray
    image_size: tuple[int, int]
    start: int = 0

    def __post_init__(self) -> None:
        if self.boxes.ndim != 2 or self.boxes.shape[1] != 4 or self.scores.shape != (self.boxes.shape[0],):
            raise ValueError(f"boxes must be N x 4 and scores N, got {self.boxes.shape} and {self.scores.shape}")

    @classmethod
    def from_boxes(cls, boxes: list[Box | None], image_size: tuple[int, int]) -> FaceTrack:
        """Build a track from per-frame boxes (``None`` for a frame without a face), scores 1."""
        arr = np.full((len(boxes), 4), np.nan)
        for i, box in enumerate(boxes):
            if box is not None:
                arr[i] = box.as_array()
        return cls(arr, np.isfinite(arr[:, 0]).astype(np.float64), image_size)

    @property
    def num_frames(self) -> int:
        return self.boxes.shape[0]

    def __len__(self) -> int:
        return self.num_frames

    @property
    def num_detected(self) -> int:
        """Number of frames with a face."""
        return int(self.detected.sum())

    @property
    def detected(self) -> np.ndarray:
        """``N`` booleans: whether a face was found in each frame."""
        return np.isfinite(self.boxes[:, 0])

    @property
    def missing_frames(self) -> np.ndarray:
        """Indices (within this track) of the frames without a face."""
        return np.flatnonzero(~self.detected)

    def _require_face(self) -> np.ndarray:
        found = np.flatnonzero(self.detected)
        if found.size == 0:
            raise NoFaceError(
                "No face was found in any frame of the clip: use a clip showing a face, or turn face cropping off."
            )
        return found

    def filled_boxes(self) -> np.ndarray:
        """``N x 4`` boxes with the missing frames filled: linear interpolation between the nearest frames
        with a face, the first/last detected box repeated before/after them.

        Raises:
            NoFaceError: no frame has a face.
        """
        found = self._require_face()
        frames = np.arange(self.num_frames)
        return np.stack([np.interp(frames, found, self.boxes[found, k]) for k in range(4)], axis=1)

    def stable_box(
        self,
        percentile: float = 100.0,
        scale: float = FACE_CROP_SCALE,
        shift_up: float = FACE_CROP_SHIFT_UP,
        keep_inside: bool = True,
    ) -> Box:
        """One square crop for the whole clip (FOMM ``crop-video`` style: a fixed box around the moving face).

        Every frame's face crop (:func:`face_crop_box` framing, not moved inside the image) is computed, and
        the result is the square around their union, centred on it. ``percentile < 100`` takes the
        ``100 - percentile`` / ``percentile`` percentiles of the crop edges instead of min/max, ignoring
        a few outlying frames. Frames without a face do not count. With ``keep_inside`` the square is then
        moved inside the image, and shrunk to the image's shorter side if larger.

        Args:
            percentile: in ``(50, 100]``; 100 covers every frame's crop.
            scale: crop side as a multiple of the face box side.
            shift_up: upward shift of the crop centre as a fraction of the face height.
            keep_inside: shrink/move the square to need no padding (see :func:`face_crop_box`).

        Raises:
            NoFaceError: no frame has a face.
        """
        if not 50.0 < percentile <= 100.0:
            raise ValueError(f"percentile must be in (50, 100], got {percentile}")
        found = self._require_face()
        crops = face_crop_boxes(self.boxes[found], scale, shift_up)
        lo = np.percentile(crops[:, :2], 100.0 - percentile, axis=0)
        hi = np.percentile(crops[:, 2:], percentile, axis=0)
        box = Box(lo[0], lo[1], hi[0], hi[1]).square()
        return box.fitted_inside(*self.image_size) if keep_inside else box

    def smoothed_boxes(
        self,
        sigma: float = 2.0,
        size_sigma: float | None = None,
        crop: bool = True,
        scale: float = FACE_CROP_SCALE,
        shift_up: float = FACE_CROP_SHIFT_UP,
    ) -> list[Box]:
        """Per-frame boxes following the face, smoothed over time without lag (zero-phase gaussian).

        The centre and the log of the side are filtered separately, the side more strongly (a jittering
        zoom is more visible than a jittering position). Missing frames are filled first
        (:meth:`filled_boxes`).

        Args:
            sigma: gaussian standard deviation for the centre, in frames (0 disables).
            size_sigma: the same for the size; ``None`` means ``2 * sigma``.
            crop: return square crop boxes (:func:`face_crop_box` framing, not moved inside the image,
                so the face stays centred; crops pad what lies outside) rather than face boxes.
            scale: crop side as a multiple of the face side (with ``crop``).
            shift_up: upward shift of the crop centre as a fraction of the face height (with ``crop``).

        Returns:
            ``N`` boxes.

        Raises:
            NoFaceError: no frame has a face.
        """
        boxes = self.filled_boxes()
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        log_size = np.log(boxes[:, 2:] - boxes[:, :2])
        size_sigma = 2 * sigma if size_sigma is None else size_sigma
        from scipy.ndimage import gaussian_filter1d  # 0.23 s to import: only smoothed tracks need it

        if sigma > 0:
            centre = gaussian_filter1d(centre, sigma, axis=0, mode="nearest")
        if size_sigma > 0:
            log_size = gaussian_filter1d(log_size, size_sigma, axis=0, mode="nearest")
        half = np.exp(log_size) / 2
        smooth = np.concatenate([centre - half, centre + half], axis=1)
        if crop:
            smooth = face_crop_boxes(smooth, scale, shift_up)
        return [Box.from_array(row) for row in smooth]

    def segment(self, start: int, stop: int) -> FaceTrack:
        """The frames ``start .. stop - 1`` of this track (indices within this track)."""
        return FaceTrack(self.boxes[start:stop], self.scores[start:stop], self.image_size, self.start + start)


def _pick(faces: list[FaceDetection], previous: Box | None, min_iou: float) -> FaceDetection | None:
    """The detection continuing the track: best overlap with the previous box, or the best-ranked face."""
    if not faces:
        return None
    if previous is None:
        return faces[0]
    overlaps = [face.box.iou(previous) for face in faces]
    best = int(np.argmax(overlaps))
    return faces[best] if overlaps[best] >= min_iou else None


def track_faces(
    frames: Iterable[np.ndarray],
    detector: FaceDetector,
    stride: int = 1,
    min_iou: float = 0.2,
    reacquire_after: int = 15,
) -> FaceTrack:
    """Detect and follow one face through a clip, storing only its boxes.

    The first face is the detector's best-ranked one; later frames keep the detection overlapping the
    last tracked box most (IoU at least ``min_iou``), so another person entering does not take over. After
    ``reacquire_after`` frames without a match, the best-ranked face is taken again (a cut, or the face came
    back elsewhere).

    Args:
        frames: ``H x W x 3`` uint8 RGB frames of one clip, all of the same size (any iterable; read once).
        detector: the face detector.
        stride: run the detector on every ``stride``-th frame only; the others count as missing and are
            filled by :meth:`FaceTrack.filled_boxes` (faster for long, steady clips).
        min_iou: minimum overlap with the previous box to continue the track.
        reacquire_after: frames without a match after which any face may restart the track.

    Returns:
        The track; frames without a face have NaN boxes (:attr:`FaceTrack.missing_frames`).

    Raises:
        ValueError: the clip has no frames or frames of different sizes.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    boxes: list[np.ndarray] = []
    scores: list[float] = []
    size: tuple[int, int] | None = None
    previous: Box | None = None
    since_match = 0
    for i, frame in enumerate(frames):
        frame_size = (frame.shape[1], frame.shape[0])
        if size is None:
            size = frame_size
        elif frame_size != size:
            raise ValueError(f"frame {i} is {frame_size[0]}x{frame_size[1]}, the clip is {size[0]}x{size[1]}")
        face = None
        if i % stride == 0:
            anchor = previous if since_match <= reacquire_after else None
            face = _pick(detector.detect(frame), anchor, min_iou)
        if face is None:
            boxes.append(np.full(4, np.nan))
            scores.append(0.0)
            since_match += 1
        else:
            boxes.append(face.box.as_array())
            scores.append(face.score)
            previous, since_match = face.box, 0
    if size is None:
        raise ValueError("the clip has no frames")
    return FaceTrack(np.array(boxes).reshape(-1, 4), np.array(scores), size)


def track_faces_sampled(
    frames: Sequence[np.ndarray],
    detector: FaceDetector,
    stride: int = 3,
    tolerance: float = 0.02,
    min_iou: float = 0.2,
) -> FaceTrack:
    """:func:`track_faces` for a clip held in memory, detecting in fewer frames.

    Every ``stride``-th frame (and the last) is searched first; wherever the face moved between two searched frames
    by more than ``tolerance`` of its side (an edge of the box), or was missing in either, every frame between them
    is searched too. Frames not searched count as missing: :meth:`FaceTrack.stable_box` takes the union over the
    searched ones (the box moved by less than ``tolerance`` in between), :meth:`FaceTrack.smoothed_boxes`
    interpolates them. On the bundled GRID clip 34 of 75 frames are searched and the stable box is within 0.3 px of
    the every-frame result; on 12 driving clips of the shared face data, 70% of the frames (2045 in all), and the
    stable box's edges within 1.2% of its side (3.3 px at most).

    Args:
        frames: ``H x W x 3`` uint8 RGB frames of one clip, all of the same size.
        detector: the face detector.
        stride: distance between the frames searched first.
        tolerance: largest box movement between searched frames, as a fraction of the face side, that is not
            refined.
        min_iou: minimum overlap with the previous box to continue the track.

    Raises:
        ValueError: the clip has no frames.
    """
    count = len(frames)
    if count == 0:
        raise ValueError("the clip has no frames")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    boxes = np.full((count, 4), np.nan)
    scores = np.zeros(count)
    previous: Box | None = None

    def search(index: int) -> None:
        nonlocal previous
        face = _pick(detector.detect(frames[index]), previous, min_iou)
        if face is not None:
            boxes[index], scores[index], previous = face.box.as_array(), face.score, face.box

    samples = sorted({*range(0, count, stride), count - 1})
    for index in samples:
        search(index)
    for start, stop in zip(samples, samples[1:], strict=False):
        a, b = boxes[start], boxes[stop]
        side = np.nanmax(np.concatenate([a[2:] - a[:2], b[2:] - b[:2]])) if np.isfinite(a).any() else np.nan
        moved = np.abs(a - b).max() if np.isfinite(a).all() and np.isfinite(b).all() else np.inf
        if stop - start > 1 and not moved <= tolerance * side:
            previous = Box.from_array(a) if np.isfinite(a).all() else None
            for index in range(start + 1, stop):
                search(index)
    size = (frames[0].shape[1], frames[0].shape[0])
    return FaceTrack(boxes, scores, size)


def split_track(track: FaceTrack, max_gap: int = 10, min_frames: int = 1) -> list[FaceTrack]:
    """Cut a track where the face is lost for more than ``max_gap`` consecutive frames.

    Args:
        track: a clip's track.
        max_gap: longest run of frames without a face that stays inside one segment (filled later).
        min_frames: drop segments shorter than this (counted from the first to the last detected frame).

    Returns:
        Segments that start and end on frames with a face, in order; each knows its position in the clip
        (:attr:`FaceTrack.start`). Empty if no frame has a face.
    """
    found = np.flatnonzero(track.detected)
    if found.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(found) > max_gap + 1)
    starts = np.concatenate([[found[0]], found[breaks + 1]])
    stops = np.concatenate([found[breaks], [found[-1]]]) + 1
    return [track.segment(a, b) for a, b in zip(starts, stops, strict=True) if b - a >= min_frames]


class OneEuroBoxFilter:
    """Causal smoothing of a box stream for live video (one-euro filter on centre and log size).

    The zero-phase smoothing of :meth:`FaceTrack.smoothed_boxes` needs future frames; a webcam cannot wait
    for them. The one-euro filter (Casiez et al., CHI 2012) low-passes strongly while the face is still
    (no jitter) and opens up as it moves (little lag). Positions are measured in face sides of the first
    box, so the defaults do not depend on the resolution. On three real clips (25-30 fps) the defaults cut
    the frame-to-frame jitter (mean second difference) 4-6x, staying within ~1% of a face side of the
    zero-phase result.

    Args:
        fps: frame rate of the stream.
        min_cutoff: cutoff frequency at rest, in Hz (lower: smoother and more lag when still).
        beta: how fast the cutoff rises with speed, per (face side per second).
        d_cutoff: cutoff of the speed estimate, in Hz.
    """

    def __init__(self, fps: float = 30.0, min_cutoff: float = 1.0, beta: float = 1.0, d_cutoff: float = 1.0) -> None:
        if fps <= 0 or min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("fps, min_cutoff and d_cutoff must be positive and beta non-negative")
        self.fps, self.min_cutoff, self.beta, self.d_cutoff = fps, min_cutoff, beta, d_cutoff
        self.reset()

    def reset(self) -> None:
        """Forget the past (e.g. after a cut, or when the face was lost)."""
        self._unit = 0.0
        self._value: np.ndarray | None = None
        self._speed = np.zeros(4)

    def _alpha(self, cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2 * np.pi * cutoff)
        return 1.0 / (1.0 + tau * self.fps)

    def update(self, box: Box) -> Box:
        """Feed the next frame's box; return the smoothed box for this frame."""
        if self._value is None:
            self._unit = max(box.width, box.height)
        cx, cy = box.center
        value = np.array([cx / self._unit, cy / self._unit, np.log(box.width), np.log(box.height)])
        if self._value is None:
            self._value = value
        else:
            speed = (value - self._value) * self.fps
            self._speed += self._alpha(self.d_cutoff) * (speed - self._speed)
            cutoff = self.min_cutoff + self.beta * np.abs(self._speed)
            self._value = self._value + self._alpha(cutoff) * (value - self._value)
        x, y, log_w, log_h = self._value
        return Box.from_center(x * self._unit, y * self._unit, float(np.exp(log_w)), float(np.exp(log_h)))
