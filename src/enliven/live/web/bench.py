"""The web page's figures, measured in a real browser: delivered fps, dropped share, capture-to-display latency.

Chromium's fake webcam plays the bundled clip (25 fps) with each frame's index stamped into it
(:func:`~enliven.live.overlay.stamp_index`); the session copies the stamp of the camera frame it answers onto the
frame it returns (``LiveSettings.stamp``). The page (``/?bench=1``) reads the stamps of both videos on every frame
they show (``requestVideoFrameCallback``): the latency of frame *i* is the time from the camera frame *i* being
shown on the page to the animated frame answering it being shown — the whole loopback round trip, encoders, the
network stack, decoders and the model included.

    python -m enliven.live.web.bench --seconds 20
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from enliven.live.overlay import stamp_index

ROOT = Path(__file__).resolve().parents[4]
CHROMIUM = "/usr/bin/chromium"
#: Flags for a headless Chromium on a closed network whose webcam is a file (see the README's test notes).
CHROMIUM_ARGS = [
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", "--no-sandbox", "--disable-gpu",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]  # fmt: skip


@dataclass(frozen=True)
class WebFigures:
    seconds: float
    camera_frames: int
    shown_frames: int
    fps: float
    dropped_share: float
    latency_median_ms: float
    latency_p95_ms: float
    server: list[str]

    def lines(self) -> list[str]:
        return [
            f"web page (Chromium, loopback), {self.seconds:.0f} s: {self.shown_frames} animated frames of "
            f"{self.camera_frames} camera frames, {self.fps:.1f} fps, {100 * self.dropped_share:.1f} % dropped",
            f"capture-to-display latency (camera frame shown -> its animation shown): median "
            f"{self.latency_median_ms:.0f} ms, p95 {self.latency_p95_ms:.0f} ms",
            *(f"server side: {line}" for line in self.server),
        ]


def write_camera_clip(frames: list[np.ndarray], target: Path, fps: float = 25.0, *, stamp: bool = True) -> Path:
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


def figures(results: dict, seconds: float, server: list[str] = ()) -> WebFigures:
    """Figures from the page's ``enliven.benchResults()``."""
    shown = sorted(results["animated"], key=lambda item: item[1])
    camera = dict(results["camera"])
    latencies = sorted(results["latencies"])
    times = [at for _, at in shown]
    fps = (len(times) - 1) / ((times[-1] - times[0]) / 1000) if len(times) > 1 else 0.0
    indices = [index for index, _ in shown]
    span = [i for i in camera if indices and min(indices) <= i <= max(indices)]
    dropped = 1 - len(indices) / len(span) if span else 1.0
    return WebFigures(
        seconds=seconds,
        camera_frames=len(span),
        shown_frames=len(indices),
        fps=fps,
        dropped_share=max(0.0, dropped),
        latency_median_ms=statistics.median(latencies) if latencies else float("nan"),
        latency_p95_ms=latencies[int(0.95 * (len(latencies) - 1))] if latencies else float("nan"),
        server=list(server),
    )


def bench_web(session, seconds: float = 20.0, warmup: float = 3.0) -> WebFigures:
    """Run the page against ``session`` in headless Chromium for ``seconds`` (after ``warmup``) and measure it."""
    from playwright.sync_api import sync_playwright

    from enliven.io import read_frames
    from enliven.live.web import LiveWebServer

    clip = list(read_frames(ROOT / "assets" / "driving-grid-bbaf2n.mpg"))
    length = int((seconds + warmup + 10) * 25)  # no loop of the fake camera inside the run: stamps stay unique
    frames = (clip + clip[::-1]) * (length // (2 * len(clip)) + 1)  # forth and back: no jump at the seams
    session.update(stamp=True, overlay="pip")
    with tempfile.TemporaryDirectory() as work, LiveWebServer(session, port=0) as server:
        camera = write_camera_clip(frames[:length], Path(work) / "camera.y4m")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={camera}"]
            )
            try:
                page = browser.new_page()
                page.goto(server.url + "?bench=1")
                page.wait_for_function("document.getElementById('animated').videoWidth > 0", timeout=60_000)
                time.sleep(warmup)
                start = page.evaluate("performance.now()")
                time.sleep(seconds)
                results = page.evaluate("enliven.benchResults()")
            finally:
                browser.close()
        server_lines = server.stop().lines()
    camera_at = dict(results["camera"])
    shown = [(i, at) for i, at in results["animated"] if at >= start]  # after the warm-up only
    latencies = [at - camera_at[i] for i, at in shown if i in camera_at]
    return figures({"animated": shown, "camera": results["camera"], "latencies": latencies}, seconds, server_lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="The live web page's fps and latency in headless Chromium.")
    parser.add_argument("source", nargs="?", default=str(ROOT / "assets" / "source-astronaut.jpg"))
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    from enliven.inference import set_threads
    from enliven.live import LiveSession

    set_threads(args.threads)
    with LiveSession.load(args.source) as session:
        for line in bench_web(session, args.seconds).lines():
            print(line)


if __name__ == "__main__":
    main()
