"""Where live frames go besides a window or a web page: a recording, a stream to a server, a virtual camera.

Each is an :class:`~enliven.live.loop.Output` (``show(frame)``, ``close()``). Recordings and streams keep the
camera's clock: a frame the loop skipped is filled by repeating the last one shown, so the file plays in real
time and stays in sync with the camera's sound.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np

from enliven.errors import OutputError
from enliven.io.ffmpeg import StderrDrain, ffmpeg_command, frame_rate_fraction
from enliven.live.overlay import fit
from enliven.live.session import LiveFrame


class _CameraClock:
    """How many times to write each shown frame so that a file keeps the camera's timeline (frame ``i`` of the
    camera at ``i / fps``); frames before the first shown one are filled with it (the models' warm-up)."""

    def __init__(self, start_index: int = 0) -> None:
        self._next = start_index

    def repeats(self, index: int) -> int:
        count = max(1, index - self._next + 1) if index >= self._next else 0
        self._next = max(self._next, index + 1)
        return count


class RecordOutput:
    """Write what was shown to a video file (``.mp4``, ``.webm``, ``.mkv``, ...) at the camera's frame rate, with the
    camera file's sound when it has one. The file appears when the run ends (Ctrl-C included), complete.

    Args:
        path: the output file (checked before the run starts; an input path is refused).
        fps: the camera's frame rate.
        audio_from: a file camera's path (its sound is muxed in), or ``None``.
        inputs: paths the recording must not overwrite.
    """

    name = "record"

    def __init__(self, path: str | os.PathLike, fps: float, audio_from: Path | None = None, inputs=()) -> None:
        from enliven.io import check_output_path, open_writer

        check_output_path(path, inputs=inputs)
        self._writer = open_writer(path, fps=fps, audio_from=audio_from, quality="live")
        self._clock = _CameraClock()
        self._size: tuple[int, int] | None = None
        self.path = Path(path)

    def show(self, frame: LiveFrame) -> None:
        image = frame.image
        if self._size is None:
            self._size = (image.shape[1], image.shape[0])
        elif (image.shape[1], image.shape[0]) != self._size:
            image = fit(image, self._size)  # the browser's camera may change size mid-run
        for _ in range(self._clock.repeats(frame.camera.index)):
            self._writer.write(image)

    @property
    def frames_written(self) -> int:
        return self._writer.frames_written

    def close(self) -> None:
        if self._writer.frames_written:
            self._writer.close()
        else:
            self._writer.abort()  # nothing was shown: no empty file


class StreamOutput:
    """Push H.264 to a streaming server through ffmpeg: ``rtmp://`` / ``rtmps://`` (FLV) or ``srt://`` (MPEG-TS),
    encoded with x264's ``ultrafast`` preset tuned for zero latency, a keyframe every 2 s, at the camera's rate.

    Raises:
        OutputError: the URL's scheme is not rtmp, rtmps or srt; the server refused or dropped the stream.
    """

    name = "stream"

    def __init__(self, url: str, fps: float, bitrate_kbps: int = 2500) -> None:
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in ("rtmp", "rtmps", "srt"):
            raise OutputError(f"--stream needs an rtmp://, rtmps:// or srt:// URL, got {url!r}.")
        self.url = url
        self.fps = fps
        self._muxer = "flv" if scheme.startswith("rtmp") else "mpegts"
        self._bitrate = bitrate_kbps
        self._proc: subprocess.Popen | None = None
        self._drain: StderrDrain | None = None
        self._size: tuple[int, int] | None = None
        self._clock = _CameraClock()
        self.frames_sent = 0

    def _start(self, width: int, height: int) -> None:
        self._size = (width - width % 2, height - height % 2)  # 4:2:0 needs even sides
        rate = str(frame_rate_fraction(self.fps))
        cmd = ffmpeg_command(
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{self._size[0]}x{self._size[1]}", "-framerate", rate,
            "-i", "pipe:0", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
            "-b:v", f"{self._bitrate}k", "-maxrate", f"{self._bitrate}k", "-bufsize", f"{2 * self._bitrate}k",
            "-g", str(max(1, round(2 * self.fps))), "-pix_fmt", "yuv420p", "-f", self._muxer, self.url,
        )  # fmt: skip
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        self._drain = StderrDrain(self._proc.stderr)

    def show(self, frame: LiveFrame) -> None:
        image = frame.image
        if self._proc is None:
            self._start(image.shape[1], image.shape[0])
        assert self._size is not None and self._proc is not None
        if (image.shape[1], image.shape[0]) != self._size:
            image = fit(image, self._size)
        data = np.ascontiguousarray(image).data
        for _ in range(self._clock.repeats(frame.camera.index)):
            try:
                self._proc.stdin.write(data)
            except OSError as err:  # ffmpeg exited: the server refused or closed the connection
                raise self._error() from err
            self.frames_sent += 1

    def _error(self) -> OutputError:
        assert self._proc is not None
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        detail = self._drain.last_line() if self._drain else ""
        return OutputError(
            f"streaming to {self.url} stopped (ffmpeg: {detail or 'exit code ' + str(self._proc.returncode)}); check "
            "that the server is running and accepts this stream key."
        )

    def close(self) -> None:
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


#: What to say when no virtual camera device exists.
VIRTUAL_CAMERA_HELP = (
    "no virtual camera device was found: on Linux install v4l2loopback and load it with "
    "'sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=enliven'; on Windows or macOS install OBS "
    "Studio and start its virtual camera once; or use --serve and add the avatar page to OBS as a Browser Source."
)


class VirtualCameraOutput:
    """Send frames to a virtual camera (pyvirtualcam: v4l2loopback on Linux, OBS Virtual Camera on Windows and
    macOS) that Zoom, Meet or a browser can pick like a webcam. The device opens on the first frame, at its size
    and the camera's rate; :meth:`check_available` tells before a run whether one exists.

    Raises:
        MissingDependencyError: pyvirtualcam is not installed. OutputError: no virtual camera device.
    """

    name = "virtual-camera"

    def __init__(self, fps: float, device: str | None = None) -> None:
        self._module = import_pyvirtualcam()
        self.fps = fps
        self.device = device
        self._camera = None
        self._size: tuple[int, int] | None = None

    @staticmethod
    def check_available(device: str | None = None) -> None:
        """Open and close a small virtual camera, so a missing device is one sentence before the model loads.

        Raises:
            OutputError: no device (see :data:`VIRTUAL_CAMERA_HELP`).
        """
        module = import_pyvirtualcam()
        try:
            with module.Camera(width=64, height=48, fps=25, device=device):
                pass
        except (RuntimeError, ValueError) as err:
            raise OutputError(f"{VIRTUAL_CAMERA_HELP} ({err})") from err

    def show(self, frame: LiveFrame) -> None:
        image = frame.image
        if self._camera is None:
            self._size = (image.shape[1], image.shape[0])
            try:
                self._camera = self._module.Camera(
                    width=self._size[0], height=self._size[1], fps=self.fps, device=self.device
                )
            except (RuntimeError, ValueError) as err:
                raise OutputError(f"{VIRTUAL_CAMERA_HELP} ({err})") from err
        assert self._size is not None
        if (image.shape[1], image.shape[0]) != self._size:
            image = fit(image, self._size)
        self._camera.send(np.ascontiguousarray(image))

    @property
    def device_name(self) -> str | None:
        return None if self._camera is None else self._camera.device

    def close(self) -> None:
        if self._camera is not None:
            self._camera.close()
            self._camera = None


def import_pyvirtualcam():
    try:
        import pyvirtualcam
    except ImportError as err:
        from enliven.preprocess._deps import MissingDependencyError

        raise MissingDependencyError(
            "--virtual-camera needs pyvirtualcam, which is not installed: run pip install 'enliven[live]'."
        ) from err
    return pyvirtualcam
