"""The FFmpeg binary shipped with ``imageio-ffmpeg``: locating it, running it, and reading its stream report.

There is no ``ffprobe`` in that wheel, so streams are described by parsing what ``ffmpeg -i FILE`` prints
(:func:`describe_streams`), and an exact frame count comes from copying the video packets to the null muxer
(:func:`count_video_packets`), which reads the file without decoding it.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path

from enliven.errors import InputError

# Lines of ffmpeg's stderr kept for error messages; older lines are dropped so a long run stays small.
_STDERR_LINES = 40


@cache
def ffmpeg_exe() -> str:
    """Path of the FFmpeg executable bundled with ``imageio-ffmpeg`` (or named by ``IMAGEIO_FFMPEG_EXE``)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def file_arg(path: Path) -> str:
    """``path`` as an ffmpeg file argument; ``file:`` stops a name like ``a:b.mp4`` from reading as a protocol."""
    return f"file:{os.fspath(path)}"


def ffmpeg_command(*args: str) -> list[str]:
    """An ffmpeg command line that never reads the terminal and prints only errors."""
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", *args]


class StderrDrain:
    """Reads a subprocess's stderr on a thread, so a chatty ffmpeg never blocks on a full pipe.

    Only the last lines are kept: enough to explain a failure, bounded however long ffmpeg runs.
    """

    def __init__(self, stream) -> None:
        self._lines: deque[str] = deque(maxlen=_STDERR_LINES)
        self._thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self._thread.start()

    def _run(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").strip()
            if line:
                self._lines.append(line)
        stream.close()

    def text(self, timeout: float = 5.0) -> str:
        """Everything kept so far, once the stream has closed (or ``timeout`` seconds passed)."""
        self._thread.join(timeout)
        return "\n".join(self._lines)

    def last_line(self, timeout: float = 5.0) -> str:
        """The last line ffmpeg printed, the usual summary of what went wrong ("" if none)."""
        text = self.text(timeout)
        return text.splitlines()[-1] if text else ""


def run_ffmpeg(*args: str, loglevel: str = "error") -> subprocess.CompletedProcess:
    """Run ffmpeg to completion and return its result (stderr as text); never raises on a non-zero exit."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", loglevel, *args]
    return subprocess.run(cmd, capture_output=True, text=True, errors="replace", check=False)


@dataclass(frozen=True)
class StreamReport:
    """What ``ffmpeg -i`` says about a media file.

    Attributes:
        has_video: a real video stream exists (cover art attached to an audio file does not count).
        width, height: displayed size of the first video stream, after its rotation metadata (ffmpeg rotates
            decoded frames by default, so this is the size the frames come out with).
        fps: average frame rate of the first video stream, ``None`` if ffmpeg does not know it.
        duration: container duration in seconds, ``None`` if unknown (``N/A``).
        has_audio: at least one audio stream exists.
        pix_fmt: the decoder's pixel format (``yuv420p``, ``bgra``, ...), ``""`` if not reported.
    """

    has_video: bool
    width: int
    height: int
    fps: float | None
    duration: float | None
    has_audio: bool
    pix_fmt: str


_DURATION = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")
_STREAM = re.compile(r"^\s*Stream #\d+:\d+.*?: (Video|Audio): (.*)$")
_SIZE = re.compile(r"(?:^|[ ,])(\d+)x(\d+)(?=[ ,\[]|$)")
_FPS = re.compile(r"([\d.]+)(k?) (fps|tbr)\b")
_ROTATION = re.compile(r"(?:rotation of|rotate\s*:)\s*(-?[\d.]+)")
# A pixel format follows the codec name: "h264 (High) (avc1 / 0x31637661), yuv420p(progressive), ...".
_PIX_FMT = re.compile(r"^[^,]*,\s*([a-z0-9_]+)")


def _parse_rate(text: str) -> float | None:
    found = {kind: float(num) * (1000 if kilo else 1) for num, kilo, kind in _FPS.findall(text)}
    rate = found.get("fps") or found.get("tbr")
    return snap_frame_rate(rate) if rate else None


def snap_frame_rate(rate: float) -> float:
    """Undo ffmpeg's two-decimal printing of NTSC rates: 29.97 becomes 30000/1001, 25 stays 25."""
    return float(frame_rate_fraction(rate))


def frame_rate_fraction(rate: float) -> Fraction:
    """The exact rational frame rate nearest to ``rate``: integers, the NTSC ``N*1000/1001`` rates, else x/1000."""
    if abs(rate - round(rate)) < 1e-3:
        return Fraction(round(rate))
    ntsc = round(rate * 1.001)
    if ntsc > 0 and abs(rate - ntsc * 1000 / 1001) < 6e-3:
        return Fraction(ntsc * 1000, 1001)
    return Fraction(rate).limit_denominator(1000)


def describe_streams(path: Path) -> StreamReport:
    """Parse ``ffmpeg -i path``.

    Raises:
        InputError: ffmpeg cannot open the file as media (corrupt, truncated header, not media at all).
    """
    out = run_ffmpeg("-i", file_arg(path), loglevel="info").stderr
    lines = out.splitlines()
    if not any(line.lstrip().startswith("Input #") for line in lines):
        reason = lines[-1].split(": ", 1)[-1].strip() if lines else "unknown error"
        raise InputError(
            f"Cannot read {path}: FFmpeg does not recognise it as media ({reason}); check that the file is a "
            "complete, valid video or re-encode it."
        )
    duration = None
    if match := _DURATION.search(out):
        hours, minutes, seconds = match.groups()
        duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    video: tuple[int, int, float | None, str] | None = None
    rotation = 0.0
    has_audio = False
    for i, line in enumerate(lines):
        match = _STREAM.match(line)
        if not match:
            continue
        kind, desc = match.groups()
        if kind == "Audio":
            has_audio = True
        elif video is None and "(attached pic)" not in desc and (size := _SIZE.search(desc)):
            pix = _PIX_FMT.match(desc)
            video = (int(size.group(1)), int(size.group(2)), _parse_rate(desc), pix.group(1) if pix else "")
            # Side data (rotation) is printed on the indented lines up to the next stream.
            for follow in lines[i + 1 :]:
                if _STREAM.match(follow) or not follow.startswith("    "):
                    break
                if rot := _ROTATION.search(follow):
                    rotation = float(rot.group(1))
    if video is None:
        return StreamReport(False, 0, 0, None, duration, has_audio, "")
    width, height, fps, pix_fmt = video
    if round(rotation / 90) % 2:
        width, height = height, width
    return StreamReport(True, width, height, fps, duration, has_audio, pix_fmt)


_FRAME_COUNT = re.compile(r"frame=\s*(\d+)")


def count_video_packets(path: Path) -> int | None:
    """Number of packets in the first video stream, read without decoding (milliseconds for a short clip).

    For every common container this equals the number of decoded frames; ``None`` if ffmpeg reports no count.
    """
    cmd = [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-i",
        file_arg(path),
        "-map",
        "0:v:0",
        "-c",
        "copy",
        "-f",
        "null",
        "-",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, errors="replace", check=False).stderr
    counts = _FRAME_COUNT.findall(out)
    return int(counts[-1]) if counts else None
