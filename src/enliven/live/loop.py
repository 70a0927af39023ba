"""``run_live``: camera → track → render → outputs, on two threads, always working on the newest frame.

Two stages overlap on a 2-core CPU: a tracking thread takes the camera's newest frame and finds the face crop and
its keypoints (MediaPipe); the calling thread renders the newest tracked frame (the model), composes what to show
and hands it to every output in turn. Between the camera and each stage sits a one-frame :class:`Latest` slot, so a
stage that falls behind skips to the newest frame instead of queueing stale ones: latency stays one or two frames
whatever happens. :class:`LiveStats` counts what was shown, what was dropped and how late it was.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from enliven.live.camera import Camera, Latest
from enliven.live.session import LiveFrame, LiveSession, Tracked


class FrameSource(Protocol):
    """Where live frames come from: a :class:`~enliven.live.camera.Camera`, or a web page's incoming track."""

    def latest(self, timeout: float | None = None): ...

    @property
    def finished(self) -> bool: ...

    @property
    def delivered(self) -> int: ...


class Output(Protocol):
    """Something that shows, records or sends live frames. ``show`` is called from the render thread, once per
    frame; ``close`` once at the end (after an error too), on that thread. An output may also have ``idle()``,
    called on that thread every 0.1 s while no frame comes (a window handles its keys). A window may set the
    loop's stop event (quit key)."""

    name: str

    def show(self, frame: LiveFrame) -> None: ...

    def close(self) -> None: ...


def rss_mib() -> tuple[float, float]:
    """This process's resident memory now and at its peak, in MiB (Linux; zeros elsewhere)."""
    now = peak = 0.0
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    now = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024
    except OSError:
        pass
    return now, peak


@dataclass(frozen=True)
class LiveReport:
    """Figures of a live run (see :class:`LiveStats`): ``latency_ms`` per output as (median, p95)."""

    seconds: float
    camera_frames: int
    shown_frames: int
    fps: float
    dropped_share: float
    latency_ms: dict[str, tuple[float, float]]
    face_lost_frames: int
    rss_mib: float
    peak_rss_mib: float

    def lines(self) -> list[str]:
        out = [
            f"{self.shown_frames} of {self.camera_frames} camera frames shown in {self.seconds:.1f} s: "
            f"{self.fps:.1f} fps, {100 * self.dropped_share:.1f} % dropped, face lost in {self.face_lost_frames}",
        ]
        for name, (median, p95) in self.latency_ms.items():
            out.append(f"capture-to-{name} latency: median {median:.0f} ms, p95 {p95:.0f} ms")
        out.append(f"memory: {self.rss_mib:.0f} MiB resident, peak {self.peak_rss_mib:.0f} MiB")
        return out


class LiveStats:
    """Counts of a live run, safe to read from other threads while it runs (a window's readout, a web page)."""

    def __init__(self, source: FrameSource) -> None:
        self._source = source
        self.started = time.perf_counter()
        self.first_index: int | None = None
        self.last_index = -1
        self.shown = 0
        self.face_lost = 0
        self._latencies: dict[str, list[float]] = {}
        self.first_shown_at: float | None = None
        self.last_shown_at = 0.0
        self._recent: deque[float] = deque(maxlen=50)  # render times of the last frames, for the rolling fps
        self._recent_latency: deque[float] = deque(maxlen=25)

    def record(self, frame: LiveFrame, latencies: dict[str, float]) -> None:
        if self.first_index is None:
            self.first_index = frame.camera.index
        self.last_index = frame.camera.index
        self.shown += 1
        now = time.perf_counter()
        if self.first_shown_at is None:
            self.first_shown_at = now
        self.last_shown_at = now
        self.face_lost += not frame.face_found
        for name, value in latencies.items():
            self._latencies.setdefault(name, []).append(value)
        self._recent.append(now)
        if latencies:
            self._recent_latency.append(max(latencies.values()))

    @property
    def fps(self) -> float:
        """Frames shown per second over the last ~2 s."""
        recent = [t for t in self._recent if t > time.perf_counter() - 2.0]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / (recent[-1] - recent[0])

    @property
    def latency_ms(self) -> float:
        """Median capture-to-output latency of the last frames, in ms."""
        recent = list(self._recent_latency)
        return 1000 * statistics.median(recent) if recent else 0.0

    def report(self) -> LiveReport:
        seconds = time.perf_counter() - self.started
        camera_frames = self._source.delivered
        if self.first_index is not None:  # frames before the first shown one were the models' warm-up
            camera_frames = self.last_index - self.first_index + 1
        now, peak = rss_mib()
        latency = {}
        for name, values in self._latencies.items():
            ordered = sorted(values)
            latency[name] = (1000 * statistics.median(ordered), 1000 * ordered[int(0.95 * (len(ordered) - 1))])
        # Delivered rate once frames flow (the first frame waits for the models' warm-up).
        span = self.last_shown_at - (self.first_shown_at or 0.0)
        return LiveReport(
            seconds=seconds,
            camera_frames=camera_frames,
            shown_frames=self.shown,
            fps=(self.shown - 1) / span if self.shown > 1 and span > 0 else 0.0,
            dropped_share=max(0.0, 1 - self.shown / camera_frames) if camera_frames else 0.0,
            latency_ms=latency,
            face_lost_frames=self.face_lost,
            rss_mib=now,
            peak_rss_mib=peak,
        )


def _nothing() -> None:
    pass


def run_live(
    session: LiveSession,
    source: FrameSource | Camera,
    outputs: Sequence[Output],
    *,
    stop: threading.Event | None = None,
    seconds: float | None = None,
    on_frame: Callable[[LiveFrame, LiveStats], None] | None = None,
    stats: LiveStats | None = None,
) -> LiveReport:
    """Run a live session until the camera ends (a file without ``loop``), ``stop`` is set (a window's quit key,
    Ctrl-C handled by the caller), or ``seconds`` pass; then close every output and return the figures.

    Args:
        session: what to animate.
        source: a started camera (or any :class:`FrameSource`).
        outputs: where frames go, in this order (put a window first: its latency is the one that matters most).
        stop: set to end the run from another thread.
        seconds: end after this long.
        on_frame: called after the outputs with each frame and the running stats.
        stats: counters to fill (default: new ones); readable while the run goes on.

    Raises:
        CameraLost: the camera stopped and could not be reopened (the outputs are closed; files they write are
            finished up to the last frame shown).
    """
    stop = stop or threading.Event()
    stats = stats or LiveStats(source)
    tracked_slot: Latest[Tracked] = Latest()
    failures: list[BaseException] = []
    deadline = None if seconds is None else time.perf_counter() + seconds

    def track() -> None:
        try:
            while not stop.is_set():
                frame = source.latest(timeout=0.1)
                if frame is None:
                    if source.finished:
                        return
                    continue
                tracked_slot.put(session.track(frame))
        except BaseException as err:  # noqa: BLE001 - raised in the caller's thread
            failures.append(err)
        finally:
            tracked_slot.close()

    tracker = threading.Thread(target=track, name="enliven-live-track", daemon=True)
    tracker.start()
    try:
        while not stop.is_set():
            if deadline is not None and time.perf_counter() >= deadline:
                break
            tracked = tracked_slot.get(timeout=0.1)
            if tracked is None:
                if tracked_slot.closed:
                    break
                for output in outputs:  # a window stays responsive (keys, quit) while no frame comes
                    getattr(output, "idle", _nothing)()
                continue
            frame = session.render(tracked)
            latencies = {}
            for output in outputs:
                output.show(frame)
                latencies[output.name] = time.perf_counter() - frame.camera.captured_at
            stats.record(frame, latencies)
            if on_frame is not None:
                on_frame(frame, stats)
    finally:
        stop.set()
        tracker.join(timeout=10)
        close_errors = []
        for output in outputs:
            try:
                output.close()
            except BaseException as err:  # noqa: BLE001 - every output gets closed; the first error is raised
                close_errors.append(err)
    if failures:
        raise failures[0]
    if close_errors:
        raise close_errors[0]
    return stats.report()
