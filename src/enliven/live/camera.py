"""Cameras for live sessions: a device, a stream URL, or a video file played as a camera would deliver it.

A :class:`Camera` reads on its own thread and keeps only the newest frame (a :class:`Latest` slot): a consumer that
falls behind skips frames instead of working through a queue of stale ones, so latency never builds up. Frames are
``H x W x 3`` uint8 RGB :class:`CameraFrame`s stamped with the moment they were captured (``time.perf_counter``).

    >>> with Camera.open("talk.mp4") as camera:                   # doctest: +SKIP
    ...     while (frame := camera.latest(timeout=1.0)) is not None:
    ...         show(frame.image)

* A device index (``0``) or a URL (``rtsp://``, ``http://``, ...) is read by OpenCV. A device that stops delivering
  is reopened a few times (:data:`RETRIES`), then :class:`CameraLost` says so in one sentence.
* A video file is decoded by ffmpeg and played at its own frame rate (frame *i* is delivered at ``i / fps`` after
  the start): a consumer sees what a real camera would give it. It ends at the file's end, or repeats with ``loop``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from enliven.errors import EnlivenError, InputError

#: Times a device or stream that stopped delivering is reopened before the session ends.
RETRIES = 5
#: Seconds between two tries to reopen a device.
RETRY_DELAY = 1.0

T = TypeVar("T")


class CameraLost(EnlivenError):
    """The camera stopped delivering frames and could not be reopened."""

    exit_code = 3


@dataclass(frozen=True, eq=False)
class CameraFrame:
    """A frame as the camera delivered it.

    Attributes:
        image: ``H x W x 3`` uint8 RGB.
        index: the frame's number in the camera's stream (0, 1, 2, ...; frames skipped by a slow consumer keep
            their numbers, so gaps count the drops).
        captured_at: ``time.perf_counter()`` when the frame became available.
    """

    image: np.ndarray
    index: int
    captured_at: float


class Latest(Generic[T]):
    """A one-item slot that keeps only the newest value: ``put`` replaces what was not taken yet (a drop);
    ``get`` waits for a value newer than the last one taken. ``close`` wakes every waiter; ``get`` then returns
    ``None`` once the last value has been taken."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._value: T | None = None
        self._fresh = False
        self._closed = False
        self.put_count = 0
        self.dropped = 0

    def put(self, value: T) -> None:
        with self._cond:
            if self._fresh:
                self.dropped += 1
            self._value, self._fresh = value, True
            self.put_count += 1
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> T | None:
        """The newest value not taken yet; ``None`` after ``timeout`` seconds or once closed and empty."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._fresh or self._closed, timeout):
                return None
            if not self._fresh:
                return None
            self._fresh = False
            return self._value

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


class NewestFrameSource:
    """A :class:`~enliven.live.loop.FrameSource` over a :class:`Latest` slot that a producer thread fills: the
    newest frame only, the count delivered, finished once the slot is closed."""

    def __init__(self) -> None:
        self._slot: Latest[CameraFrame] = Latest()

    def latest(self, timeout: float | None = None) -> CameraFrame | None:
        """The newest frame not returned yet, waiting up to ``timeout`` seconds; ``None`` on timeout or at the end."""
        return self._slot.get(timeout)

    @property
    def finished(self) -> bool:
        """No more frames will come."""
        return self._slot.closed

    @property
    def delivered(self) -> int:
        """Frames delivered so far."""
        return self._slot.put_count


class Camera(NewestFrameSource):
    """Frames from a device, a URL or a file, captured on a thread of their own (see the module docstring).

    Use :meth:`Camera.open` to make one from what the user typed. ``frames()`` yields raw frames as fast as the
    underlying reader gives them; ``fps`` paces a file; the thread stamps frames and puts them into the slot.

    Args:
        frames: a function starting a fresh reader (called again to reopen or loop).
        name: what to call the camera in messages.
        fps: frames per second to play at (files); ``None``: as the reader delivers them (devices, streams).
        loop: start again at the end (files).
        retries: reopen a reader that fails this many times before giving up (devices, streams).
        audio: the file whose audio goes with the frames (a file camera), for recordings.
        transform: applied to every frame before it is published (e.g. stamping its index for benchmarks).
    """

    def __init__(
        self,
        frames: Callable[[], Iterator[np.ndarray]],
        *,
        name: str,
        fps: float | None,
        loop: bool = False,
        retries: int = 0,
        audio: Path | None = None,
        transform: Callable[[np.ndarray, int], np.ndarray] | None = None,
        nominal_fps: float | None = None,
    ) -> None:
        self._open_frames = frames
        self.name = name
        self.fps = fps
        self.nominal_fps = float(nominal_fps or fps or 30.0)
        self.loop = loop
        self.retries = retries
        self.audio = audio
        self._transform = transform
        super().__init__()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="enliven-camera", daemon=True)
        self.started_at: float | None = None
        self.ended = False

    # -- construction ------------------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        spec: str | int | Path,
        *,
        loop: bool = False,
        transform: Callable[[np.ndarray, int], np.ndarray] | None = None,
    ) -> Camera:
        """A camera from what a user types: a device index (``0``), a URL (``scheme://...``) or a video file.

        Raises:
            InputError: the file is missing or unreadable, or the device or URL cannot be opened.
        """
        text = str(spec)
        if text.isdigit():
            return cls._device(int(text), text, transform=transform)
        if "://" in text:
            return cls._device(text, text, transform=transform)
        return cls._file(Path(text), loop=loop, transform=transform)

    @classmethod
    def _file(cls, path: Path, *, loop: bool, transform) -> Camera:
        from enliven.io import VideoSource

        source = VideoSource(path)  # InputError for a missing or unreadable file
        if source.info.kind != "video":
            raise InputError(f"the camera {path} is not a video; give a video file, a device index or a stream URL.")
        audio = path if source.info.has_audio else None
        return cls(lambda: iter(source), name=str(path), fps=source.fps, loop=loop, audio=audio, transform=transform)

    @classmethod
    def _device(cls, target: int | str, name: str, *, transform) -> Camera:
        cv2 = _cv2()
        level = cv2.getLogLevel()
        cv2.setLogLevel(0)  # silent: our one sentence replaces OpenCV's warnings
        try:
            capture = cv2.VideoCapture(target)
        finally:
            cv2.setLogLevel(level)
        if not capture.isOpened():
            capture.release()
            what = f"camera {name}" if isinstance(target, int) else f"the stream {name}"
            raise InputError(
                f"{what} could not be opened; check that it is connected (and not used by another program), or give "
                "a video file as --camera."
            )
        fps = capture.get(cv2.CAP_PROP_FPS) or None
        first = [capture]

        def frames() -> Iterator[np.ndarray]:
            reader = first.pop() if first else cv2.VideoCapture(target)
            try:
                while True:
                    ok, bgr = reader.read()
                    if not ok:
                        return
                    yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            finally:
                reader.release()

        return cls(frames, name=name, fps=None, retries=RETRIES, transform=transform, nominal_fps=fps)

    # -- running -----------------------------------------------------------------------------------------------
    def start(self) -> Camera:
        if not self._thread.is_alive() and self.started_at is None:
            self.started_at = time.perf_counter()
            self._thread.start()
        return self

    def latest(self, timeout: float | None = None) -> CameraFrame | None:
        """The newest frame not returned yet, waiting up to ``timeout`` seconds for one; ``None`` on timeout or
        after the end of a file.

        Raises:
            CameraLost: the device stopped and could not be reopened.
        """
        frame = super().latest(timeout)
        if frame is None and self._error is not None:
            raise self._error
        return frame

    def close(self) -> None:
        self._stop.set()
        self._slot.close()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def __enter__(self) -> Camera:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        index = 0
        failures = 0
        try:
            while not self._stop.is_set():
                played = 0
                start = time.perf_counter()
                for image in self._open_frames():
                    if self._stop.is_set():
                        return
                    if self.fps:  # a file: deliver frame i at start + i / fps, as a camera would
                        delay = start + played / self.fps - time.perf_counter()
                        if delay > 0 and self._stop.wait(delay):
                            return
                    if self._transform is not None:
                        image = self._transform(image, index)
                    self._slot.put(CameraFrame(image, index, time.perf_counter()))
                    index += 1
                    played += 1
                    failures = 0
                if self.fps is not None:  # a file ended
                    if self.loop and played:
                        continue
                    self.ended = True
                    return
                failures += 1  # a device or stream stopped delivering: reopen it a few times
                if failures > self.retries:
                    self._error = CameraLost(
                        f"the camera {self.name} stopped delivering frames and did not come back after "
                        f"{self.retries} tries; check its connection (or whether another program took it) and start "
                        "again."
                    )
                    return
                if self._stop.wait(RETRY_DELAY):
                    return
        except EnlivenError as err:
            self._error = err
        except Exception as err:  # noqa: BLE001 - reported to the consumer as one sentence
            self._error = CameraLost(f"the camera {self.name} failed: {err}")
        finally:
            self._slot.close()


def _cv2():
    from enliven.preprocess._deps import import_cv2

    return import_cv2()
