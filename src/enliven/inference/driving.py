"""The driving clip and the source image as :func:`~enliven.inference.animate.animate_file` and the driving worker
(:mod:`enliven.inference.face_worker`) read them. No torch here: the worker imports this in a process of its own."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from enliven.errors import InputError
from enliven.io import VideoSource, probe, read_image
from enliven.preprocess import Box

#: Frame rate given to driving frames passed as arrays (they carry no timing).
ARRAY_FPS = 25.0


class DrivingClip:
    """The driving frames: decoded once while they fit the memory budget (kept for the passes after the first),
    else decoded again for each pass."""

    def __init__(self, driving: str | Path | Sequence[np.ndarray], budget_mb: int) -> None:
        self._budget = budget_mb * 2**20
        self._kept: list[np.ndarray] | None = None
        if isinstance(driving, (str, Path)):
            self.path: Path | None = Path(driving)
            self._video: VideoSource | None = VideoSource(self.path)
            self.fps = float(self._video.fps)
            self.length = known_length(self._video)
        else:
            self.path, self._video = None, None
            self._kept = [checked_image(frame, "a driving frame") for frame in driving]
            if not self._kept:
                raise InputError("the driving clip has no frames; pass at least one frame.")
            self.fps, self.length = ARRAY_FPS, len(self._kept)

    @property
    def what(self) -> str:
        return f"the driving video {self.path}" if self.path is not None else "the driving frames"

    @property
    def audio(self) -> Path | None:
        return self.path

    def first_pass(self) -> Sequence[np.ndarray] | Iterator[np.ndarray]:
        """Every frame for the pass that finds the face: all of them decoded into memory (kept for the later
        passes) when they fit the budget, else a stream (later passes decode again)."""
        if self._kept is not None or self._video is None:
            return self._kept or []
        width, height = self._video.size
        if self.length is not None and self.length * width * height * 3 > self._budget:
            return iter(self._video)
        kept: list[np.ndarray] = []
        for frame in self._video:
            kept.append(frame)
            if len(kept) * frame.nbytes > self._budget:  # longer than the probe said: stream instead
                return iter(self._video)
        self._kept = kept
        return kept

    def frames(self) -> Iterator[np.ndarray]:
        """Every frame, from memory when the first pass kept them."""
        if self._kept is not None:
            return iter(self._kept)
        assert self._video is not None
        return iter(self._video)

    def frame_at(self, index: int) -> np.ndarray:
        for i, frame in enumerate(self.frames()):
            if i == index:
                return frame
        raise InputError(
            f"the driving video has fewer than {index + 1} frames on a second read; is it still being written?"
        )


def box_at(boxes: list[Box] | None, index: int) -> Box | None:
    return None if boxes is None else boxes[min(index, len(boxes) - 1)]


def read_source(path: Path) -> np.ndarray:
    info = probe(path)
    if info.kind == "image":
        return read_image(path)
    first = next(iter(VideoSource(path)), None)  # a video as source: its first frame
    if first is None:
        raise InputError(f"the source {path} has no frames; pass an image or a non-empty video.")
    return first


def checked_image(image: np.ndarray, what: str = "the source image") -> np.ndarray:
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise InputError(f"{what} must be an H x W x 3 uint8 RGB array, got {array.dtype} {array.shape}.")
    return array


def known_length(video: VideoSource) -> int | None:
    try:
        return len(video)
    except TypeError:
        return None
