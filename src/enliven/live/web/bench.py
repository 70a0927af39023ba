"""The web page's figures, measured in a real browser: displayed fps, dropped share, round-trip latency.

Chromium's fake webcam plays the bundled clip (:data:`CAMERA_FPS`) with each frame's index stamped into it
(:func:`~enliven.live.overlay.stamp_index`); the session copies the stamp of the camera frame it answers onto the
frame it returns (``LiveSettings.stamp``). The page (``/?bench=1``) reads the stamp of every frame each track
delivers to it (a ``MediaStreamTrackProcessor``: decoded frames, none skipped): the latency of frame *i* is the
time from the camera's frame *i* reaching the page to the animated frame answering it reaching the page, decoded —
the whole loopback round trip, the browser's encoder, the network stack, the server's decoder, the model, the
server's encoder and the browser's decoder. Painting it adds at most one display refresh. The frame rate is the
animated video's presented frames (``requestVideoFrameCallback``'s ``presentedFrames``) per second.

    python -m enliven.live.web.bench --seconds 20
    python -m enliven.live.web.bench --screenshot docs/images/live-page.png
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from enliven.live.overlay import stamp_index
from enliven.pipelines.bench.results import DEFAULT_DRIVING, DEFAULT_SOURCE

CHROMIUM = "/usr/bin/chromium"
#: The fake webcam's rate: the bundled clip's.
CAMERA_FPS = 25.0
#: Flags for a headless Chromium on a closed network whose webcam is a file (see the README's test notes).
CHROMIUM_ARGS = [
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", "--no-sandbox", "--disable-gpu",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]  # fmt: skip


@dataclass(frozen=True)
class WebFigures:
    """What :func:`bench_web` measured over ``seconds`` after its warm-up."""

    seconds: float
    camera_frames: int  #: camera frames that reached the page between the first and last animated answers
    answered_frames: int  #: of those, the ones whose animation reached the page
    fps: float  #: animated frames the page presented per second
    dropped_share: float  #: 1 - answered / camera frames
    latency_median_ms: float
    latency_p95_ms: float
    server: list[str]  #: the server's own report (:meth:`~enliven.live.loop.LiveReport.lines`)

    def lines(self) -> list[str]:
        return [
            f"web page (Chromium, loopback), {self.seconds:.0f} s: {self.answered_frames} of {self.camera_frames} "
            f"camera frames answered, {self.fps:.1f} fps shown, {100 * self.dropped_share:.1f} % dropped",
            f"round-trip latency (camera frame on the page -> its animation on the page): median "
            f"{self.latency_median_ms:.0f} ms, p95 {self.latency_p95_ms:.0f} ms",
            *(f"server side: {line}" for line in self.server),
        ]


def figures(results: dict, start: float, seconds: float, server: list[str] = ()) -> WebFigures:
    """Figures from the page's ``enliven.benchResults()``, counting what happened after ``start`` (page time, ms)."""
    camera = dict(results["camera"])
    answered = sorted((at, index) for index, at in results["animated"] if at >= start)
    latencies = sorted(at - camera[index] for at, index in answered if index in camera)
    indices = [index for _, index in answered]
    span = [i for i in camera if indices and min(indices) <= i <= max(indices)]
    presented = [(at, count) for at, count in results["presented"] if at >= start]
    fps = 0.0
    if len(presented) > 1:
        (t0, n0), (t1, n1) = presented[0], presented[-1]
        fps = (n1 - n0) / ((t1 - t0) / 1000)
    return WebFigures(
        seconds=seconds,
        camera_frames=len(span),
        answered_frames=len(indices),
        fps=fps,
        dropped_share=max(0.0, 1 - len(indices) / len(span)) if span else 1.0,
        latency_median_ms=statistics.median(latencies) if latencies else float("nan"),
        latency_p95_ms=latencies[int(0.95 * (len(latencies) - 1))] if latencies else float("nan"),
        server=list(server),
    )


def write_camera_clip(frames: list[np.ndarray], target: Path, fps: float = CAMERA_FPS, *, stamp: bool = True) -> Path:
    """A ``.y4m`` for Chromium's fake webcam from ``H x W x 3`` uint8 RGB frames (indices stamped when asked)."""
    height, width = frames[0].shape[:2]
    command = ["ffmpeg", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
               "-framerate", str(fps), "-i", "pipe:0", "-pix_fmt", "yuv420p", "-y", str(target)]  # fmt: skip
    with subprocess.Popen(command, stdin=subprocess.PIPE) as encoder:
        for index, frame in enumerate(frames):
            image = stamp_index(frame.copy(), index) if stamp else frame
            encoder.stdin.write(np.ascontiguousarray(image).tobytes())
        encoder.stdin.close()
        if encoder.wait() != 0:
            raise RuntimeError(f"ffmpeg could not write {target}")
    return target


def camera_clip(target: Path, seconds: float, *, stamp: bool) -> Path:
    """The bundled speaker clip, played forth and back for ``seconds`` (no jump at the seams, and with ``stamp``
    no repeated index), written as Chromium's fake webcam file ``target``."""
    from enliven.io import read_frames

    clip = list(read_frames(DEFAULT_DRIVING))
    length = int(seconds * CAMERA_FPS)
    frames = (clip + clip[::-1]) * (length // (2 * len(clip)) + 1)
    return write_camera_clip(frames[:length], target, stamp=stamp)


@contextlib.contextmanager
def chromium_page(url: str, camera: Path, viewport: tuple[int, int] = (1280, 720)) -> Iterator:
    """A Playwright page at ``url`` in Debian's headless Chromium whose webcam plays the ``.y4m`` file ``camera``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={camera}"]
        )
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.goto(url)
            yield page
        finally:
            browser.close()


def bench_web(session, seconds: float = 20.0, warmup: float = 3.0) -> WebFigures:
    """Run the page against ``session`` in headless Chromium for ``seconds`` (after ``warmup``) and measure it."""
    from enliven.live.web import LiveWebServer

    session.update(stamp=True, overlay="pip")
    with tempfile.TemporaryDirectory() as work, LiveWebServer(session, port=0) as server:
        # longer than the run: the fake camera does not loop inside it, so every stamp is unique
        camera = camera_clip(Path(work) / "camera.y4m", seconds + warmup + 10, stamp=True)
        with chromium_page(server.url + "?bench=1", camera) as page:
            page.wait_for_function("enliven.benchResults().animated.length > 0", timeout=60_000)
            time.sleep(warmup)
            start = page.evaluate("performance.now()")
            time.sleep(seconds)
            results = page.evaluate("enliven.benchResults()")
        server_lines = server.stop().lines()
    return figures(results, start, seconds, server_lines)


def screenshot_page(session, target: Path, after: float = 5.0) -> Path:
    """Save a screenshot of the page (``target``, PNG) ``after`` seconds of the speaker driving ``session``."""
    from enliven.io import atomic_output
    from enliven.live.web import LiveWebServer

    with tempfile.TemporaryDirectory() as work, LiveWebServer(session, port=0) as server:
        camera = camera_clip(Path(work) / "camera.y4m", after + 20, stamp=False)
        with chromium_page(server.url, camera, viewport=(1100, 690)) as page:
            page.wait_for_function("/fps/.test(document.getElementById('status').textContent)", timeout=60_000)
            time.sleep(after)
            with atomic_output(target) as temp:
                page.screenshot(path=str(temp), type="png")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description="The live web page's fps and latency in headless Chromium.")
    parser.add_argument("source", nargs="?", default=str(DEFAULT_SOURCE))
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--screenshot", type=Path, help="save a screenshot of the page here instead (PNG)")
    args = parser.parse_args()
    from enliven.inference import set_threads
    from enliven.live import LiveSession

    set_threads(args.threads)
    with LiveSession.load(args.source) as session:
        if args.screenshot:
            print(f"saved {screenshot_page(session, args.screenshot)}")
            return
        for line in bench_web(session, args.seconds).lines():
            print(line)


if __name__ == "__main__":
    main()
