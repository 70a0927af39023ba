"""Streaming frames out of videos, GIFs, frame folders and single images.

A :class:`VideoSource` holds no frames: each iteration starts a fresh decoder (an ffmpeg subprocess piping
raw RGB for videos) and yields one frame at a time, so a pipeline can make two passes over a long video
(for example one to pick a reference frame, one to animate) with memory that does not grow with its length.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from enliven.errors import InputError
from enliven.io.ffmpeg import StderrDrain, ffmpeg_command, file_arg, frame_rate_fraction
from enliven.io.media import MediaInfo, composite_over_white, list_frame_files, probe_streams, read_image

logger = logging.getLogger(__name__)

# Rate given to stills and frame folders, which carry no timing, when the caller asks for none.
DEFAULT_FPS = 25.0

# Decoder pixel formats with an alpha channel: read as RGBA and composited over white like read_image does.
_ALPHA_PIX_FMT = re.compile(r"^(yuva|rgba|bgra|argb|abgr|ya\d|gbrap|pal8)")


class VideoSource:
    """A re-iterable stream of ``H x W x 3`` ``uint8`` RGB frames from a video, GIF, frame folder or image.

    Args:
        path: a video or animated GIF, a folder of frames (natural order: ``2.png`` before ``10.png``) or a
            single image (one frame).
        fps: frame rate to deliver. For videos, frames are resampled to it (dropped or repeated by timestamp,
            as ``ffmpeg -vf fps`` does); ``None`` keeps every decoded frame. Frame folders and images have no
            timing, so their frames are taken as they are and ``fps`` only sets :attr:`fps`.

    Raises:
        InputError: the path is missing, unsupported, unreadable or holds no frames (see :func:`probe`).

    Each ``for frame in source`` decodes from the start. A damaged video that stops decoding early yields
    the frames it has and logs a warning; one that yields no frame at all raises :class:`InputError`.
    """

    def __init__(self, path: str | os.PathLike, fps: float | None = None) -> None:
        if fps is not None and not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        info, report = probe_streams(path)
        self.info: MediaInfo = info
        self._requested_fps = fps
        self._frame_files = tuple(list_frame_files(self.info.path)) if self.info.kind == "frames" else ()
        # Videos whose decoder output has alpha (GIF, VP9/ProRes with alpha) are read as RGBA.
        self._has_alpha = report is not None and bool(_ALPHA_PIX_FMT.match(report.pix_fmt))
        source_fps = self.info.fps
        self._resample = (
            self.info.kind == "video" and fps is not None and (source_fps is None or abs(fps - source_fps) > 1e-6)
        )

    @property
    def path(self) -> Path:
        return self.info.path

    @property
    def fps(self) -> float:
        """Rate of the delivered frames: the requested one, else the video's, else :data:`DEFAULT_FPS`."""
        return self._requested_fps or self.info.fps or DEFAULT_FPS

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of every frame."""
        return self.info.width, self.info.height

    @property
    def num_frames(self) -> int | None:
        """Frames one iteration yields, ``None`` if unknown.

        Exact for images and folders. For videos it is :attr:`MediaInfo.num_frames` (see there: rarely one or
        two more than decode), and for a resampled video ``round(n * fps / source_fps)``, what ffmpeg's ``fps``
        filter gives for constant-rate input. Use it for progress bars, not to preallocate.
        """
        count = self.info.num_frames
        if not self._resample or count is None:
            return count
        if self.info.fps is None:
            return None
        return max(1, int(np.floor(count * self.fps / self.info.fps + 0.5)))

    def __len__(self) -> int:
        count = self.num_frames
        if count is None:
            raise TypeError(f"the number of frames of {self.path} is not known")
        return count

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.info.kind == "image":
            yield read_image(self.path)
        elif self.info.kind == "frames":
            yield from self._iter_folder()
        else:
            yield from self._iter_video()

    def __repr__(self) -> str:
        return f"VideoSource({str(self.path)!r}, fps={self.fps:g}, size={self.size}, num_frames={self.num_frames})"

    def _iter_folder(self) -> Iterator[np.ndarray]:
        expected = (self.info.height, self.info.width, 3)
        for file in self._frame_files:
            frame = read_image(file)
            if frame.shape != expected:
                raise InputError(
                    f"The frame {file} is {frame.shape[1]}x{frame.shape[0]} but the first frame of the folder is "
                    f"{expected[1]}x{expected[0]}; every frame of a folder must have the same size."
                )
            yield frame

    def _iter_video(self) -> Iterator[np.ndarray]:
        has_alpha = self._has_alpha
        channels = 4 if has_alpha else 3
        timing = ["-vf", f"fps={frame_rate_fraction(self.fps)}"] if self._resample else ["-fps_mode", "passthrough"]
        cmd = ffmpeg_command(
            "-i", file_arg(self.path), "-map", "0:v:0", "-an", "-sn", "-dn", *timing,
            "-f", "rawvideo", "-pix_fmt", "rgba" if has_alpha else "rgb24", "pipe:1",
        )  # fmt: skip
        shape = (self.info.height, self.info.width, channels)
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        drain = StderrDrain(proc.stderr)
        count = 0
        try:
            while (frame := _read_frame(proc.stdout, shape)) is not None:
                count += 1
                yield composite_over_white(frame) if has_alpha else frame
            returncode = proc.wait()
        finally:
            # Reached early when the consumer stops iterating (break, exception): stop the decoder now.
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        self._check_decoded(count, returncode, drain.text())

    def _check_decoded(self, count: int, returncode: int, errors: str) -> None:
        if count == 0:
            detail = errors.splitlines()[-1] if errors else "no frame decoded"
            raise InputError(
                f"No video frame could be decoded from {self.path} ({detail}); the file is corrupt or truncated, "
                "replace it with a complete copy."
            )
        # A count below num_frames alone is no sign of damage: an mp4 edit list can hide a packet or two.
        if returncode != 0 or errors:
            expected = self.num_frames
            first_error = errors.splitlines()[0] if errors else f"ffmpeg exit code {returncode}"
            logger.warning(
                "%s looks damaged: decoded %d of %s frames (%s); the output stops where the video does.",
                self.path, count, expected if expected is not None else "?", first_error,
            )  # fmt: skip


def _read_frame(stream, shape: tuple[int, int, int]) -> np.ndarray | None:
    """Read one raw frame from ``stream``; ``None`` at the end (a partial last frame is dropped)."""
    buffer = bytearray(shape[0] * shape[1] * shape[2])
    view = memoryview(buffer)
    filled = 0
    while filled < len(buffer):
        got = stream.readinto(view[filled:])
        if not got:
            return None
        filled += got
    return np.frombuffer(buffer, dtype=np.uint8).reshape(shape)


def read_frames(path: str | os.PathLike, fps: float | None = None, max_frames: int | None = None) -> np.ndarray:
    """All frames (or the first ``max_frames``) of a video, folder or image as one ``N x H x W x 3`` uint8 array.

    Convenient for short clips and tests; use :class:`VideoSource` to stream long videos.
    """
    source = VideoSource(path, fps=fps)
    frames = []
    for frame in source:
        if max_frames is not None and len(frames) >= max_frames:
            break
        frames.append(frame)
    if not frames:
        return np.zeros((0, source.size[1], source.size[0], 3), np.uint8)
    return np.stack(frames)
