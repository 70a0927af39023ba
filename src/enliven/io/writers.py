"""Writing frames to videos, GIFs and folders of PNG frames, atomically, with the driving video's sound.

Frames are piped raw to an ffmpeg subprocess as they come (nothing is buffered in Python). The encoder writes
to a hidden temporary file beside the target; on a clean close the driving video's audio is muxed in (a second,
copy-only ffmpeg pass cut to the video's length) and the result is renamed onto the target. On an exception,
``KeyboardInterrupt`` included, ffmpeg is stopped and the temporary file deleted, so the output path never
holds a partial file.

Output kind follows the path: ``.mp4``/``.mov``/``.mkv`` (H.264, yuv420p, BT.709; AAC audio), ``.webm``
(VP9; Opus audio), ``.gif`` (a palette per frame, looping; no audio), and a folder of ``000000.png``,
``000001.png``... for a path ending with ``/`` or having no extension.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from enliven.errors import OutputError
from enliven.io.atomic import AtomicPath, remove_path, temp_path_beside
from enliven.io.ffmpeg import StderrDrain, ffmpeg_command, file_arg, frame_rate_fraction, run_ffmpeg
from enliven.io.media import probe

logger = logging.getLogger(__name__)

Quality = Literal["low", "medium", "high", "live"]
OutputKind = Literal["mp4", "mov", "mkv", "webm", "gif", "frames"]

_FILE_KINDS: dict[str, OutputKind] = {".mp4": "mp4", ".mov": "mov", ".mkv": "mkv", ".webm": "webm", ".gif": "gif"}
_FRAME_NAME = re.compile(r"^\d+\.png$")

# H.264 CRF / x264 preset and VP9 CRF per quality level (lower CRF = better, bigger). "live" is for recording while a
# model shares the CPU: the fastest presets, a low CRF to make up for them (bigger files, little CPU).
_X264 = {"low": ("28", "veryfast"), "medium": ("23", "fast"), "high": ("18", "medium"), "live": ("20", "ultrafast")}
_VP9_CRF = {"low": "40", "medium": "33", "high": "24", "live": "33"}
# Convert with BT.709 (limited range) and tag the stream so that players do not guess BT.601 for small videos.
_BT709_FILTER = (
    "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p,"
    "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv"
)


def output_kind(path: str | os.PathLike) -> OutputKind:
    """What :func:`open_writer` writes for ``path``.

    Raises:
        OutputError: the extension is not one of the supported outputs.
    """
    text = os.fspath(path)
    if text.endswith(("/", os.sep)):
        return "frames"
    suffix = Path(text).suffix.lower()
    if not suffix:
        return "frames"
    if suffix not in _FILE_KINDS:
        raise OutputError(
            f"Cannot write {text}: the extension '{suffix}' is not supported; use .mp4, .webm, .gif, .mov, .mkv, "
            "or a folder path ending with / for PNG frames."
        )
    return _FILE_KINDS[suffix]


def check_output_path(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Check, before any work, that ``path`` can be written by :func:`open_writer`; create missing parent folders.

    Args:
        path: the output path.
        inputs: the files (or frame folders) the output is made from; none of them may be overwritten.

    Returns:
        The target as a :class:`Path` (a frame folder keeps its kind: it has no extension or already exists).

    Raises:
        OutputError: unsupported extension, the output is one of ``inputs`` (or a frame folder holding one), a
            folder where a file is wanted (or the reverse), a frame folder holding other files, or a parent
            folder that cannot be created or written to.
    """
    kind = output_kind(path)
    target = Path(path).expanduser()
    _check_not_an_input(target, kind, inputs)
    if kind == "frames":
        if target.exists() and not target.is_dir():
            raise OutputError(f"Cannot write frames to {target}: it is a file; choose a folder path instead.")
        if target.is_dir() and any(not _FRAME_NAME.match(p.name) for p in target.iterdir()):
            raise OutputError(
                f"Cannot write frames to {target}: the folder already holds other files; choose an empty or new folder."
            )
    elif target.is_dir():
        raise OutputError(f"Cannot write {target}: a folder has that name; choose another file name.")
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as err:
        raise OutputError(
            f"Cannot write to the folder {parent} ({err.strerror or err}); choose a writable output location."
        ) from err
    return target


def _check_not_an_input(target: Path, kind: OutputKind, inputs: Iterable[str | os.PathLike]) -> None:
    """Refuse an output that would replace an input: the output is written beside and then renamed onto the
    target, and a frame folder is replaced as a whole, so the input would be lost only once the work is done."""
    resolved = target.resolve()
    for item in inputs:
        source = Path(item).expanduser()
        if _same_path(target, source):
            raise OutputError(
                f"the output {target} is the input {source}; choose another output path so that your input is not "
                "overwritten."
            )
        if kind == "frames" and source.resolve().is_relative_to(resolved):
            raise OutputError(
                f"the output folder {target} holds the input {source}; choose another output path so that your "
                "input is not overwritten."
            )


def _same_path(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file: by device and inode when both exist (hard links, symlinks, a
    case-insensitive file system), else by their resolved paths."""
    if a.exists() and b.exists():
        try:
            return os.path.samefile(a, b)
        except OSError:
            pass  # e.g. no permission to stat one of them: compare the paths instead
    return a.resolve() == b.resolve()


def _encoder_args(kind: OutputKind, quality: Quality, threads: int | None = None) -> list[str]:
    # x264 and libvpx start about 1.5 threads per core by default; processes that share the cores (batch workers)
    # each give their share instead of competing for all of them.
    limit = ["-threads", str(threads)] if threads is not None else []
    if kind in ("mp4", "mov", "mkv"):
        crf, preset = _X264[quality]
        args = ["-c:v", "libx264", "-preset", preset, "-crf", crf, *limit, "-vf", _BT709_FILTER, "-pix_fmt", "yuv420p"]
        return args + (["-movflags", "+faststart"] if kind != "mkv" else [])
    if kind == "webm":
        live = quality == "live"
        speed = ["-deadline", "realtime", "-cpu-used", "8"] if live else ["-deadline", "good", "-cpu-used", "4"]
        vp9 = ["-c:v", "libvpx-vp9", "-crf", _VP9_CRF[quality], "-b:v", "0", *speed, *limit]
        return [*vp9, "-row-mt", "1", "-vf", _BT709_FILTER, "-pix_fmt", "yuv420p"]
    if kind == "gif":
        # A palette per frame keeps ffmpeg streaming (a global palette would hold every frame until the end).
        # The encoder's inter-frame optimisations compare palette indices, which is wrong once every frame has its
        # own palette (an unchanged index can mean a new colour), so they are turned off with -gifflags 0.
        palette = "split[a][b];[a]palettegen=stats_mode=single[p];[b][p]paletteuse=new=1:dither=bayer:bayer_scale=3"
        return ["-vf", palette, "-gifflags", "0", "-loop", "0", "-f", "gif"]
    return ["-c:v", "png", "-start_number", "0", "-f", "image2"]


_AUDIO_CODECS: dict[OutputKind, list[str]] = {
    "mp4": ["-c:a", "aac", "-b:a", "192k", "-movflags", "+faststart"],
    "mov": ["-c:a", "aac", "-b:a", "192k", "-movflags", "+faststart"],
    "mkv": ["-c:a", "aac", "-b:a", "192k"],
    "webm": ["-c:a", "libopus", "-b:a", "128k"],
}


@dataclass
class _Resources:
    """What an unfinished writer must clean up (kept apart from the writer so a finalizer can reach it)."""

    atomic: AtomicPath
    proc: subprocess.Popen | None = None
    extra: list[Path] = field(default_factory=list)

    def discard(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for path in self.extra:
            remove_path(path)
        self.atomic.discard()


class FrameWriter:
    """Context manager writing ``H x W x 3`` ``uint8`` RGB frames to a video, GIF or PNG folder (see module doc).

    Args:
        path: output path; the kind follows its extension (:func:`output_kind`).
        fps: frame rate of the output (ignored by PNG folders).
        audio_from: a media file whose first audio stream is muxed in, cut to the video's length (mp4, mov, mkv:
            AAC; webm: Opus); ignored if it has no audio, or for GIF and PNG outputs.
        quality: ``"low"``, ``"medium"`` or ``"high"`` (H.264 CRF 28/23/18, VP9 CRF 40/33/24), or ``"live"`` (the
            fastest encoder settings, for recording beside a model running live).
        threads: the encoder's threads (H.264, VP9); ``None``: ffmpeg's default, about 1.5 per core.

    The frame size is fixed by the first frame. H.264/VP9 with 4:2:0 chroma needs even sizes, so an odd
    width or height is padded by one repeated edge row/column (a 65 x 49 frame is stored as 66 x 50).

    Raises:
        OutputError: the path cannot be written (checked on construction) or ffmpeg fails while encoding.
        InputError: ``audio_from`` is given but missing or unreadable.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        audio_from: str | os.PathLike | None = None,
        quality: Quality = "high",
        threads: int | None = None,
    ) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if quality not in _X264:
            raise ValueError(f"quality must be one of {sorted(_X264)}, got {quality!r}")
        self.kind = output_kind(path)
        self.path = check_output_path(path)
        self.fps = float(fps)
        self.quality: Quality = quality
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be 1 or more, got {threads}")
        self.threads = threads
        self.frames_written = 0
        self._audio_from = self._audio_source(audio_from)
        self._size: tuple[int, int] | None = None
        self._pad = (0, 0)
        self._drain: StderrDrain | None = None
        self._res = _Resources(AtomicPath(self.path, is_dir=self.kind == "frames"))
        # If the writer is dropped unclosed (or the interpreter exits), stop ffmpeg and delete the temporary file.
        self._finalizer = weakref.finalize(self, self._res.discard)

    def _audio_source(self, audio_from: str | os.PathLike | None) -> Path | None:
        if audio_from is None:
            return None
        info = probe(audio_from)
        if not info.has_audio:
            return None
        if self.kind not in _AUDIO_CODECS:
            logger.info("%s output cannot carry audio; the sound of %s is left out.", self.kind, info.path)
            return None
        return info.path

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, frame: np.ndarray) -> None:
        """Append one ``H x W x 3`` ``uint8`` RGB frame (all frames must have the first frame's size)."""
        if self.closed:
            raise RuntimeError(f"the writer for {self.path} is closed")
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            desc = f"{frame.dtype} array of shape {frame.shape}" if isinstance(frame, np.ndarray) else type(frame)
            raise ValueError(f"frames must be H x W x 3 uint8 RGB arrays, got a {desc}")
        height, width = frame.shape[:2]
        if self._size is None:
            self._start(width, height)
        elif (width, height) != self._size:
            raise ValueError(
                f"frame size {width}x{height} differs from the first frame's {self._size[0]}x{self._size[1]}"
            )
        if any(self._pad):
            frame = np.pad(frame, ((0, self._pad[1]), (0, self._pad[0]), (0, 0)), mode="edge")
        try:
            self._res.proc.stdin.write(np.ascontiguousarray(frame).data)
        except OSError as err:  # BrokenPipeError: ffmpeg has exited
            raise self._encoder_error() from err
        self.frames_written += 1

    def _start(self, width: int, height: int) -> None:
        self._size = (width, height)
        if self.kind not in ("gif", "frames"):
            self._pad = (width % 2, height % 2)
        out_w, out_h = width + self._pad[0], height + self._pad[1]
        target = self._res.atomic.temp
        if self._audio_from is not None:
            target = temp_path_beside(self.path, "video")
            self._res.extra.append(target)
        output = file_arg(target)
        if self.kind == "frames":
            # The image2 muxer reads % as a pattern, so any % already in the folder's path is doubled.
            output = output.replace("%", "%%") + "/%06d.png"
        cmd = ffmpeg_command(
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{out_w}x{out_h}",
            "-framerate", str(frame_rate_fraction(self.fps)), "-i", "pipe:0",
            *_encoder_args(self.kind, self.quality, self.threads), "-y", output,
        )  # fmt: skip
        # A session of its own: Ctrl-C reaches Python (which then aborts ffmpeg), not ffmpeg halfway through a write.
        self._res.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        self._drain = StderrDrain(self._res.proc.stderr)

    def _encoder_error(self) -> OutputError:
        proc = self._res.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
        if proc is not None:
            proc.wait()
        detail = self._drain.last_line() if self._drain else ""
        return OutputError(
            f"Writing {self.path} failed (ffmpeg: {detail or 'exit code ' + str(proc.returncode if proc else '?')}); "
            "check free disk space and the output location."
        )

    def close(self) -> None:
        """Finish encoding, mux the audio and move the result onto the output path. Does nothing if closed."""
        if self.closed:
            return
        try:
            if self._res.proc is None:
                raise RuntimeError(f"no frame was written to {self.path}; nothing to save")
            self._res.proc.stdin.close()
            if self._res.proc.wait() != 0:
                raise self._encoder_error()
            if self._audio_from is not None:
                self._mux_audio(self._res.extra[-1])
            self._res.atomic.commit()
        except BaseException:
            self.abort()
            raise
        self._finalizer.detach()
        for path in self._res.extra:
            remove_path(path)

    def abort(self) -> None:
        """Stop ffmpeg and delete the temporary output; the output path is left as it was."""
        self._finalizer()

    def _mux_audio(self, video: Path) -> None:
        duration = self.frames_written / self.fps
        result = run_ffmpeg(
            "-i", file_arg(video), "-i", file_arg(self._audio_from), "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
            *_AUDIO_CODECS[self.kind], "-t", f"{duration:.6f}", "-y", file_arg(self._res.atomic.temp),
        )  # fmt: skip
        if result.returncode != 0:
            reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "unknown error"
            logger.warning("Could not add the sound of %s (%s); %s is saved without sound.", self._audio_from,
                           reason, self.path)  # fmt: skip
            remove_path(self._res.atomic.temp)
            os.replace(video, self._res.atomic.temp)


def open_writer(
    path: str | os.PathLike,
    fps: float,
    audio_from: str | os.PathLike | None = None,
    quality: Quality = "high",
    threads: int | None = None,
) -> FrameWriter:
    """Open a :class:`FrameWriter`; use it as ``with open_writer("out.mp4", fps=25) as writer: writer.write(frame)``."""
    return FrameWriter(path, fps, audio_from=audio_from, quality=quality, threads=threads)
