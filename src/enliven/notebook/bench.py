"""The notebook app in a real browser: JupyterLab 4, Notebook 7 or Voila on localhost, Debian's headless Chromium
driven by Playwright, the bundled clip as the browser's webcam. The browser tests and the benchmark use it.

Measured in the page (``performance.now()``): the time from opening the notebook to the first animated frame shown
(cold: a new server and kernel), and, for slider moves (clicks on its track), the time from the press to the
result image showing the new frame.

    python -m enliven.notebook.bench                              # JupyterLab, Notebook 7 and Voila: figures
    python -m enliven.notebook.bench --frontend lab --screenshots docs/images
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from enliven.server.client import free_port

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "enliven.ipynb"
FRONTENDS = ("lab", "notebook", "voila")
TOKEN = "enliven-test"


@dataclass(frozen=True)
class Server:
    """A Jupyter (or Voila) server on localhost serving a copy of the notebook."""

    frontend: str
    port: int
    root: Path
    log: Path

    @property
    def url(self) -> str:
        """The notebook's page."""
        if self.frontend == "lab":
            return f"http://127.0.0.1:{self.port}/lab/tree/enliven.ipynb?token={TOKEN}"
        if self.frontend == "notebook":
            return f"http://127.0.0.1:{self.port}/notebooks/enliven.ipynb?token={TOKEN}"
        return f"http://127.0.0.1:{self.port}/"


@contextlib.contextmanager
def jupyter_server(frontend: str = "lab", notebook: Path = NOTEBOOK, timeout: float = 60.0) -> Iterator[Server]:
    """Start ``frontend`` (``lab``, ``notebook`` or ``voila``) on a free localhost port with its own settings and a
    copy of ``notebook`` (autosave never touches the original); stop it afterwards."""
    if frontend not in FRONTENDS:
        raise ValueError(f"frontend must be one of {FRONTENDS}, got {frontend!r}")
    with tempfile.TemporaryDirectory(prefix="enliven-jupyter-") as work:
        root = Path(work) / "root"
        root.mkdir()
        shutil.copy(notebook, root / "enliven.ipynb")
        port = free_port()
        env = dict(os.environ, JUPYTER_CONFIG_DIR=f"{work}/config", JUPYTER_RUNTIME_DIR=f"{work}/runtime",
                   JUPYTERLAB_WORKSPACES_DIR=f"{work}/workspaces", IPYTHONDIR=f"{work}/ipython",
                   JUPYTERLAB_SETTINGS_DIR=f"{work}/settings")  # fmt: skip
        news = Path(work) / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        news.parent.mkdir(parents=True)
        news.write_text('{"fetchNews": "false", "checkForUpdates": false}')  # no pop-up over the app
        common = [f"--port={port}", "--ip=127.0.0.1", "--no-browser"]
        if frontend == "voila":
            command = [sys.executable, "-m", "voila", str(root / "enliven.ipynb"), *common]
        else:
            module = "jupyterlab" if frontend == "lab" else "notebook"
            command = [sys.executable, "-m", module, *common, f"--ServerApp.root_dir={root}",
                       f"--IdentityProvider.token={TOKEN}", "--allow-root"]  # fmt: skip
        log = open(Path(work) / "server.log", "w+")  # noqa: SIM115 - closed below
        process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_until_up(port, process, timeout, log)
            yield Server(frontend, port, root, Path(work) / "server.log")
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()


def _wait_until_up(port: int, process: subprocess.Popen, timeout: float, log) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"the server stopped at start:\n{log.read()[-3000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={TOKEN}", timeout=2)  # noqa: S310
            return
        except OSError as error:
            if getattr(error, "code", None) is not None:  # an HTTP answer (voila has no /api/status): it is up
                return
            time.sleep(0.3)
    log.seek(0)
    raise RuntimeError(f"the server did not start in {timeout:.0f} s:\n{log.read()[-3000:]}")


# -- driving the page -----------------------------------------------------------------------------------------------
_FIRST_FRAME = "() => { const i = document.querySelector('img.enliven-result'); return !!i && i.naturalWidth > 0; }"
_WATCH_RESULT = """() => {
  window.enlivenKeyAt = 0;
  const mark = () => { window.enlivenKeyAt = performance.now(); };
  document.addEventListener("keydown", mark, true);
  document.addEventListener("pointerdown", mark, true);
  window.enlivenLatencies = [];
  document.querySelector("img.enliven-result").addEventListener("load", () => {
    if (window.enlivenKeyAt) window.enlivenLatencies.push(performance.now() - window.enlivenKeyAt);
    window.enlivenKeyAt = 0;
  });
}"""


@dataclass(frozen=True)
class NotebookFigures:
    """What :func:`drive_app` measured in the browser.

    Attributes:
        frontend: ``lab``, ``notebook`` or ``voila``.
        first_frame_s: from opening the page (and, in Jupyter, running all cells) to the first animated frame shown.
        slider_ms: for each slider move (a click on its track), the press to the new result frame loaded in the page.
        frames_seen: the timing line's frame numbers before and after the moves (the slider changed the frame).
        video_s: the rendered video's duration as the page's player reports it.
        played_s: how far it had played when checked.
        audio_bytes: sound decoded by then (Chromium's ``webkitAudioDecodedByteCount``; 0: no sound track).
        webcam_frames: animated webcam frames the page received (``-1``: not checked).
        webcam_fps: animated webcam frames the page received per second, after the first 20.
        motion_s: from pressing *Generate* in the *Generated motion* tab to its first frame shown (``-1``: not run).
        motion_timing: that tab's timing line then.
    """

    frontend: str
    first_frame_s: float
    slider_ms: tuple[float, ...]
    frames_seen: tuple[str, str]
    video_s: float
    played_s: float
    audio_bytes: int
    webcam_frames: int
    webcam_fps: float
    motion_s: float = -1.0
    motion_timing: str = ""

    def lines(self) -> list[str]:
        slider = sorted(self.slider_ms)
        return [
            f"{self.frontend}: first animated frame {self.first_frame_s:.1f} s after opening (cold kernel)",
            f"{self.frontend}: slider move -> new frame shown: median {statistics.median(slider):.0f} ms, "
            f"max {slider[-1]:.0f} ms over {len(slider)} moves ({self.frames_seen[0]} -> {self.frames_seen[1]}; "
            f"in order: {', '.join(f'{ms:.0f}' for ms in self.slider_ms)})",
            f"{self.frontend}: rendered video {self.video_s:.1f} s long, played to {self.played_s:.1f} s in the page "
            f"({self.audio_bytes} bytes of sound decoded)",
            *(
                [f"{self.frontend}: webcam: {self.webcam_frames} frames animated, {self.webcam_fps:.1f} fps"]
                if self.webcam_frames >= 0
                else []
            ),
            *(
                [f"{self.frontend}: generated motion: Generate -> first frame shown {self.motion_s:.2f} s "
                 f"({self.motion_timing})"]
                if self.motion_s >= 0
                else []
            ),
        ]  # fmt: skip


def open_app(page, server: Server, timeout_ms: int = 240_000) -> float:
    """Open the notebook, run all its cells from the Run menu (Voila runs them itself) and wait for the first
    animated frame; seconds from opening. A timeout is raised with what the page and the server showed."""
    started = time.perf_counter()
    try:
        # Voila executes the whole notebook before its page finishes loading: on a loaded machine that is more
        # than Playwright's default 30 s, so the page's own "load" waits as long as the first frame may.
        page.goto(server.url, timeout=timeout_ms)
        if server.frontend != "voila":
            _run_all_cells(page, timeout_ms)
        page.wait_for_function(_FIRST_FRAME, timeout=timeout_ms)
        seconds = time.perf_counter() - started
        # the last cell ran (the kernel is free for the slider)
        page.wait_for_selector(".jp-OutputArea-output:has-text('driving frame')", timeout=timeout_ms)
    except Exception as error:
        raise RuntimeError(f"the app did not show its first frame in {server.frontend}: {error}\n"
                           f"{_page_state(page, server)}") from error  # fmt: skip
    return seconds


_EXECUTING = "() => [...document.querySelectorAll('.jp-InputPrompt')].some(p => /\\[(\\*|\\d+)\\]/.test(p.innerText))"
_FIRST_CELL_DONE = (
    "() => /\\[\\d+\\]/.test((document.querySelector('.jp-CodeCell .jp-InputPrompt') || {}).innerText || '')"
)
#: JupyterLab's and Notebook 7's kernel indicator (``data-status``: initializing, starting, idle, busy, ...).
_KERNEL_IDLE = ".jp-Notebook-ExecutionIndicator[data-status='idle']"


def _run_all_cells(page, timeout_ms: int, tries: int = 3, first_cell_ms: int = 60_000) -> None:
    """Run > Run All Cells, once the kernel is connected and idle and the notebook is the active panel (on a loaded
    machine JupyterLab may still have the launcher or file browser active, and the command is then a silent no-op);
    pressed again if no cell starts. The first cell only assigns parameters: when it has not finished within
    ``first_cell_ms`` the kernel is not answering (seen in full test runs: every prompt ``[*]`` for minutes), and the
    kernel is restarted with all cells run again, once."""
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=timeout_ms)
    page.wait_for_selector(_KERNEL_IDLE, timeout=timeout_ms)
    for _ in range(tries):
        _click_menu(page, "Run", "Run All Cells", timeout_ms)
        try:
            page.wait_for_function(_EXECUTING, timeout=30_000)
            break
        except Exception:  # noqa: BLE001 - Playwright's TimeoutError: nothing started, press again
            page.keyboard.press("Escape")
    else:
        raise TimeoutError(f"Run All Cells started no cell in {tries} tries")
    try:
        page.wait_for_function(_FIRST_CELL_DONE, timeout=first_cell_ms)
    except Exception:  # noqa: BLE001 - Playwright's TimeoutError: the kernel did not answer
        _click_menu(page, "Kernel", "Restart Kernel and Run All Cells", timeout_ms)
        page.locator(".jp-Dialog .jp-mod-accept").first.click(timeout=timeout_ms)  # "Restart"


def _click_menu(page, menu: str, item_label: str, timeout_ms: int) -> None:
    """Click ``menu`` > ``item_label`` in the menu bar, with the notebook the active panel."""
    page.locator(".jp-Notebook .jp-Cell .jp-InputPrompt").first.click()  # makes the notebook the active panel
    page.locator(".lm-MenuBar-itemLabel", has_text=menu).first.click()
    item = page.locator(".lm-Menu-item:not(.lm-mod-disabled) .lm-Menu-itemLabel", has_text=item_label)
    item.first.click(timeout=timeout_ms)


def _page_state(page, server: Server) -> str:
    """What a person would look at when the app does not come up: the cells' prompts and outputs, the kernel's
    status and the end of the server's log."""
    try:
        state = page.evaluate("""() => ({
          prompts: [...document.querySelectorAll('.jp-InputPrompt')].map(p => p.innerText).join(' '),
          outputs: [...document.querySelectorAll('.jp-OutputArea-output')].map(o => o.innerText).join('\\n'),
          kernel: (document.querySelector('.jp-Notebook-ExecutionIndicator') || {dataset: {}}).dataset.status,
          dialog: (document.querySelector('.jp-Dialog') || {}).innerText,
        })""")
    except Exception as error:  # noqa: BLE001 - the page itself is gone; say so
        state = {"page": repr(error)}
    log = server.log.read_text(errors="replace")[-3000:] if server.log.exists() else ""
    return "\n".join(f"page {key}: {str(value)[-2000:]}" for key, value in state.items()) + f"\nserver log:\n{log}"


def move_slider(page, moves: int = 10, pause_s: float = 0.4) -> tuple[list[float], tuple[str, str]]:
    """Click the frame slider's track at ``moves`` places, left to right (Notebook 7 takes the arrow keys for its
    own shortcuts, so the mouse, as most users move it); the latencies from the press to the new result frame
    loaded in the page (ms), and the timing line before and after."""
    timing = page.locator(".enliven-timing")
    before = timing.inner_text()
    page.evaluate(_WATCH_RESULT)
    track = page.locator(".enliven-frame .noUi-base").first
    track.scroll_into_view_if_needed()
    box = track.bounding_box()
    for step in range(moves):
        count = page.evaluate("window.enlivenLatencies.length")
        page.mouse.click(box["x"] + box["width"] * (step + 1) / (moves + 1), box["y"] + box["height"] / 2)
        page.wait_for_function(f"window.enlivenLatencies.length > {count}", timeout=30_000)
        time.sleep(pause_s)
    return list(page.evaluate("window.enlivenLatencies")), (before, timing.inner_text())


def render_and_play(page, timeout_ms: int = 180_000) -> tuple[float, float, int]:
    """Press Render, wait for the inline player, play it; its duration and how far it played (seconds), and the
    bytes of sound Chromium decoded meanwhile (the clip's audio is in the video)."""
    page.locator("button.enliven-render").click()
    page.wait_for_function(
        "() => { const v = document.querySelector('video.enliven-video'); return !!v && v.readyState >= 2 && "
        "v.duration > 0; }",
        timeout=timeout_ms,
    )
    page.evaluate("() => { const v = document.querySelector('video.enliven-video'); v.muted = true; v.play(); }")
    page.wait_for_function("document.querySelector('video.enliven-video').currentTime > 1.0", timeout=30_000)
    return page.evaluate(
        "() => { const v = document.querySelector('video.enliven-video'); "
        "return [v.duration, v.currentTime, v.webkitAudioDecodedByteCount || 0]; }"
    )


def run_webcam(page, frames: int = 20, seconds: float = 5.0, timeout_ms: int = 60_000) -> tuple[int, float]:
    """Open the Webcam tab, start the (fake) webcam, wait for ``frames`` animated answers, then count them for
    ``seconds``; the answers in all and the rate over those seconds."""
    answered = "Number(document.querySelector('.enliven-webcam').dataset.answered || 0)"
    page.locator(".lm-TabBar-tabLabel", has_text="Webcam").first.click()
    page.locator("button.enliven-webcam-start").click()
    page.wait_for_function(f"{answered} >= {frames}", timeout=timeout_ms)
    start, first = time.perf_counter(), page.evaluate(answered)
    time.sleep(seconds)
    last = page.evaluate(answered)
    return int(last), (last - first) / (time.perf_counter() - start)


def upload(page, which: int, path: Path, timeout_ms: int = 60_000) -> str:
    """Upload ``path`` through picker ``which`` (0: photo, 1: clip); the app's message line afterwards."""
    message = page.locator(".enliven-message")
    before = message.inner_text()
    page.locator("input.enliven-file-input").nth(which).set_input_files(str(path))
    page.wait_for_function(
        "before => { const text = document.querySelector('.enliven-message').innerText; "
        "return text !== before && !text.endsWith('...'); }",
        arg=before,
        timeout=timeout_ms,
    )
    return message.inner_text()


def drag_box(page, right: float = 0.2, timeout_ms: int = 30_000) -> str:
    """Drag the green box on the photo right by ``right`` of its width, with the mouse; the crop image's new
    address once the kernel sent the new crop."""
    editor = page.locator(".enliven-box-editor").first
    editor.scroll_into_view_if_needed()
    canvas = editor.locator("canvas").bounding_box()
    x0, y0, x1, y1 = page.evaluate("JSON.parse(document.querySelector('.enliven-box-editor').dataset.box)")
    crop = page.locator("img.enliven-crop")
    before = crop.get_attribute("src")
    start_x, start_y = canvas["x"] + (x0 + x1) / 2 * canvas["width"], canvas["y"] + (y0 + y1) / 2 * canvas["height"]
    page.mouse.move(start_x, start_y)
    page.mouse.down()
    for step in range(1, 6):
        page.mouse.move(start_x + step / 5 * right * (x1 - x0) * canvas["width"], start_y)
    page.mouse.up()
    page.wait_for_function(
        "before => document.querySelector('img.enliven-crop').src !== before", arg=before, timeout=timeout_ms
    )
    return crop.get_attribute("src")


_MOTION_SHOWN = """() => {
  const timing = document.querySelector(".enliven-motion-timing");
  return timing !== null && timing.textContent.includes("frame 1 of");
}"""


def generate_motion(page, timeout_ms: int = 60_000) -> tuple[float, str]:
    """Open the *Generated motion* tab, press *Generate* and wait for the motion's first frame on the photo;
    seconds from the press, and the tab's timing line."""
    page.locator(".lm-TabBar-tabLabel", has_text="Generated motion").first.click()
    button = page.locator(".enliven-generate").first
    button.scroll_into_view_if_needed()
    started = time.perf_counter()
    button.click()
    page.wait_for_function(_MOTION_SHOWN, timeout=timeout_ms)
    return time.perf_counter() - started, page.locator(".enliven-motion-timing").first.inner_text()


@contextlib.contextmanager
def chromium(camera: Path | None = None, viewport: tuple[int, int] = (1400, 1000)) -> Iterator:
    """A page in Debian's headless Chromium (Playwright), its webcam playing ``camera`` (a ``.y4m``) if given."""
    from playwright.sync_api import sync_playwright

    from enliven.live.web.bench import CHROMIUM, CHROMIUM_ARGS

    args = [*CHROMIUM_ARGS, *([f"--use-file-for-fake-video-capture={camera}"] if camera else [])]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        finally:
            browser.close()


def drive_app(frontend: str, *, webcam: bool = True, screenshots: Path | None = None) -> NotebookFigures:
    """Open the notebook in ``frontend``, move the slider, render and play, drive it by the webcam; the figures.
    With ``screenshots`` (a folder), ``notebook-<frontend>.jpg`` (and ``notebook-webcam.jpg``) are saved there.

    A kernel that never runs a cell (seen a few times in full test runs, in JupyterLab and in Voila, never when the
    tests ran alone: the kernel started, then nothing for minutes) gets one more try with a new server, kernel and
    browser, said on stderr; a second failure is raised."""
    from enliven.live.web.bench import camera_clip

    with tempfile.TemporaryDirectory() as work:
        camera = camera_clip(Path(work) / "camera.y4m", 20, stamp=False) if webcam else None
        for attempt in (1, 2):
            with jupyter_server(frontend) as server, chromium(camera, viewport=(1400, 2000)) as page:
                try:
                    first = open_app(page, server, timeout_ms=150_000)
                except RuntimeError as error:
                    if attempt == 2:
                        raise
                    print(f"{frontend}: {str(error).splitlines()[0]}; once more with a new server", file=sys.stderr)
                    continue
                return _use_app(page, frontend, first, webcam, screenshots)
    raise AssertionError("unreachable")


def _use_app(page, frontend: str, first: float, webcam: bool, screenshots: Path | None) -> NotebookFigures:
    """What :func:`drive_app` does once the app shows its first frame."""
    latencies, seen = move_slider(page)
    video, played, sound = render_and_play(page)
    if screenshots is not None:
        _save_screenshot(page, screenshots / f"notebook-{frontend}.jpg")
    frames, rate = run_webcam(page) if webcam else (-1, 0.0)
    if screenshots is not None and webcam:
        time.sleep(1.0)
        _save_screenshot(page, screenshots / "notebook-webcam.jpg", ".enliven-webcam")
    motion_s, motion_timing = generate_motion(page)
    if screenshots is not None and frontend == "lab":
        page.get_by_text("Expression and pose").first.click()  # the sliders, shown open
        time.sleep(1.0)
        _save_screenshot(page, screenshots / "notebook-motion.jpg")
    return NotebookFigures(
        frontend, first, tuple(latencies), seen, video, played, sound, frames, rate, motion_s, motion_timing
    )


def _save_screenshot(page, target: Path, selector: str = ".enliven-app") -> None:
    from enliven.io import atomic_output

    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(target) as temporary:
        page.locator(selector).first.screenshot(path=str(temporary), type="jpeg", quality=85)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m enliven.notebook.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--frontend", choices=FRONTENDS, action="append", help="default: all three")
    parser.add_argument("--screenshots", type=Path, default=None, help="save the app's screenshots in this folder")
    args = parser.parse_args(argv)
    for frontend in args.frontend or FRONTENDS:
        figures = drive_app(frontend, webcam=frontend == "lab", screenshots=args.screenshots)
        print("\n".join(figures.lines()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
