"""The web page's frames in and out: the browser's webcam as a :class:`~enliven.live.loop.FrameSource`, and the
live frames as aiortc video tracks (each viewer subscribes to its own newest-frame slot).

Threads: :meth:`BrowserFeed.push` is called on the server's asyncio loop, :meth:`WebOutput.show` on the live loop's
render thread, :meth:`OutgoingTrack.recv` on the asyncio loop (it waits in the default executor, never blocking the
loop). Frames are ``H x W x 3`` uint8 RGB.
"""

from __future__ import annotations

import asyncio
import threading
import time
from fractions import Fraction
from typing import Literal

import numpy as np
from aiortc import VideoStreamTrack
from av import VideoFrame

from enliven.live.camera import CameraFrame, Latest, NewestFrameSource
from enliven.live.session import LiveFrame

#: What a viewer receives: the frame as the main page shows it, or the avatar alone (the OBS page).
View = Literal["shown", "avatar"]
#: RTP's video clock.
VIDEO_CLOCK = 90_000


class BrowserFeed(NewestFrameSource):
    """The driving browser's webcam frames, newest only (a :class:`~enliven.live.loop.FrameSource`).

    ``captured_at`` is the frame's arrival here (decoded), so latency figures measured by the server leave out the
    browser's capture and the uplink; the page's own benchmark measures the whole round trip.
    """

    def __init__(self) -> None:
        super().__init__()
        self._index = 0

    def push(self, image: np.ndarray) -> None:
        self._slot.put(CameraFrame(image, self._index, time.perf_counter()))
        self._index += 1

    def close(self) -> None:
        self._slot.close()


class WebOutput:
    """Hands each live frame to every subscribed track (an :class:`~enliven.live.loop.Output`); remembers the last
    frame's face state and size for the page's status line."""

    name = "web"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[tuple[View, Latest[np.ndarray]]] = []
        self.face_found = True
        self.last_shown_at = 0.0

    def subscribe(self, view: View) -> Latest[np.ndarray]:
        slot: Latest[np.ndarray] = Latest()
        with self._lock:
            self._subscribers.append((view, slot))
        return slot

    def unsubscribe(self, slot: Latest[np.ndarray]) -> None:
        with self._lock:
            self._subscribers = [(v, s) for v, s in self._subscribers if s is not slot]
        slot.close()

    def show(self, frame: LiveFrame) -> None:
        self.face_found = frame.face_found
        self.last_shown_at = time.perf_counter()
        with self._lock:
            subscribers = list(self._subscribers)
        for view, slot in subscribers:
            slot.put(frame.image if view == "shown" else frame.avatar)

    def close(self) -> None:
        with self._lock:
            subscribers, self._subscribers = self._subscribers, []
        for _, slot in subscribers:
            slot.close()


class OutgoingTrack(VideoStreamTrack):
    """An aiortc video track sending the newest frame of a :class:`WebOutput` subscription (even-sized: VP8 and
    H.264 need even sides), timestamped on the 90 kHz RTP clock by wall time."""

    def __init__(self, output: WebOutput, view: View) -> None:
        super().__init__()
        self._output = output
        self._slot = output.subscribe(view)
        self._started = time.perf_counter()
        self._blank = np.zeros((240, 320, 3), np.uint8)  # until the first frame: black, not a stalled stream

    async def recv(self) -> VideoFrame:
        loop = asyncio.get_running_loop()
        image = await loop.run_in_executor(None, self._slot.get, 0.2)
        if image is None:
            if self._slot.closed:
                self.stop()
            image = self._last if hasattr(self, "_last") else self._blank
        self._last = image
        height, width = image.shape[0] - image.shape[0] % 2, image.shape[1] - image.shape[1] % 2
        frame = VideoFrame.from_ndarray(np.ascontiguousarray(image[:height, :width]), format="rgb24")
        frame.pts = int((time.perf_counter() - self._started) * VIDEO_CLOCK)
        frame.time_base = Fraction(1, VIDEO_CLOCK)
        return frame

    def stop(self) -> None:
        self._output.unsubscribe(self._slot)
        super().stop()
