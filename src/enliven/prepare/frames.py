"""Streaming the frames of one clip source, whatever it is (video, GIF, frame folder), re-iterably.

Frame folders are read here rather than by :class:`enliven.io.VideoSource` so that odd folders are converted
instead of rejected: a frame of another size is resized to the first frame's size, an unreadable frame is
left out (logged).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from enliven.errors import InputError
from enliven.io import DEFAULT_FPS, VideoSource, list_frame_files, probe, read_image
from enliven.prepare.sources import ClipSource
from enliven.preprocess import resize_image

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipFrames:
    """A re-iterable stream of ``H x W x 3`` uint8 RGB frames of one clip.

    Attributes:
        path: the video or frame folder.
        width, height: frame size in pixels.
        fps: rate of the delivered frames (frame folders: the requested rate, else 25).
        num_frames: frames one iteration yields at most (after ``max_frames``); ``None`` if unknown.
        is_still: the input is a single image.
    """

    path: Path
    width: int
    height: int
    fps: float
    num_frames: int | None
    is_still: bool
    _video: VideoSource | None
    _files: tuple[Path, ...]
    _max_frames: int | None

    def __iter__(self) -> Iterator[np.ndarray]:
        frames = self._video if self._video is not None else self._iter_files()
        yield from itertools.islice(frames, self._max_frames)

    def _iter_files(self) -> Iterator[np.ndarray]:
        for file in self._files:
            try:
                frame = read_image(file)
            except InputError as err:
                logger.warning("%s; the frame is left out.", err)
                continue
            if frame.shape[:2] != (self.height, self.width):
                frame = resize_image(frame, (self.width, self.height))
            yield frame


def open_clip(clip: ClipSource, fps: float | None = None, max_frames: int | None = None) -> ClipFrames:
    """Open a clip source for streaming.

    Args:
        clip: the source.
        fps: resample videos to this rate (``None`` keeps their own).
        max_frames: deliver at most this many frames.

    Raises:
        InputError: the file or folder cannot be read as media.
    """
    if clip.frame_folder or clip.path.is_dir():
        files = tuple(list_frame_files(clip.path))
        if not files:
            raise InputError(f"The folder {clip.path} holds no image frames; point to a folder of frames.")
        width = height = 0
        for file in files:  # the first readable frame sets the size
            try:
                info = probe(file)
            except InputError:
                continue
            width, height = info.width, info.height
            break
        if width == 0:
            raise InputError(f"No frame of the folder {clip.path} can be read; replace the frames with valid images.")
        count = len(files) if max_frames is None else min(len(files), max_frames)
        return ClipFrames(clip.path, width, height, fps or DEFAULT_FPS, count, False, None, files, max_frames)
    video = VideoSource(clip.path, fps=fps)
    count = video.num_frames
    if count is not None and max_frames is not None:
        count = min(count, max_frames)
    is_still = video.info.kind == "image"
    return ClipFrames(clip.path, video.size[0], video.size[1], video.fps, count, is_still, video, (), max_frames)
