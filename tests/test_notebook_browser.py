"""The notebook for real: executed headless by nbclient, and opened in JupyterLab 4, Notebook 7 and Voila by
Debian's headless Chromium (Playwright), which runs it, moves the frame slider, renders, plays the video, uploads
bad files and lets its (fake) webcam drive the photo. The figures are printed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("nbclient")
pytest.importorskip("mediapipe")

from enliven.notebook.bench import NOTEBOOK, chromium, drag_box, jupyter_server, open_app, upload  # noqa: E402


def test_the_notebook_runs_headless_without_errors(tmp_path):
    import nbclient
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError on any error
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error" or o.get("name") == "stderr"]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    assert any("driving frame 37: 512 x 512" in o.get("text", "") for o in outputs)


browser = pytest.mark.skipif(
    not Path("/usr/bin/chromium").exists() or shutil.which("ffmpeg") is None,
    reason="Debian's chromium and ffmpeg are not installed (apt-get install chromium ffmpeg)",
)


@browser
# Notebook 7 is built from JupyterLab's parts: the classic frontend runs with -m slow (36 s), and so does Voila (28 to
# 41 s; it serves the same widgets without the notebook around them); JupyterLab, with the webcam, by default.
@pytest.mark.parametrize(
    "frontend", ["lab", pytest.param("notebook", marks=pytest.mark.slow), pytest.param("voila", marks=pytest.mark.slow)]
)
def test_the_app_in_a_browser(frontend, capsys):
    from enliven.notebook.bench import drive_app

    figures = drive_app(frontend, webcam=frontend == "lab")
    with capsys.disabled():
        print("\n" + "\n".join(figures.lines()))
    assert figures.first_frame_s < 120 and len(figures.slider_ms) == 10
    before, after = figures.frames_seen
    assert before.startswith("frame 1 of 75") and not after.startswith("frame 1 of 75")
    assert figures.video_s == pytest.approx(3.0, abs=0.2) and figures.played_s > 1.0 and figures.audio_bytes > 0
    if frontend == "lab":
        assert figures.webcam_frames >= 20
    assert 0 <= figures.motion_s < 30 and figures.motion_timing.startswith("frame 1 of 150")


@browser
def test_box_drag_bad_uploads_and_cancel_in_the_page(tmp_path):
    corrupt = tmp_path / "holiday.jpg"
    corrupt.write_bytes(b"not an image" * 100)
    huge = tmp_path / "huge.mp4"
    with huge.open("wb") as sparse:
        sparse.truncate(200 * 2**20)  # 200 MB, refused by the page before a byte is sent
    import cv2
    import numpy as np

    wall = tmp_path / "wall.png"
    cv2.imwrite(str(wall), np.full((300, 300, 3), 90, np.uint8))
    with jupyter_server("lab") as server, chromium() as page:
        open_app(page, server)
        drag_box(page, right=0.2)
        assert page.locator(".enliven-app .widget-readout").first.inner_text() in {"0.19", "0.20", "0.21"}  # box x
        assert "Cannot read the image holiday.jpg" in upload(page, 0, corrupt)
        assert "huge.mp4 is 200 MB" in upload(page, 1, huge)
        # no face: model auto moves on to the generic model, and says so (a named face model refuses: test_notebook)
        assert "wall.png: model auto: enliven-any (no face and no person" in upload(page, 0, wall)
        timing = page.locator(".enliven-timing").inner_text()
        page.locator(".enliven-frame .noUi-base").first.click()  # still answering: a new frame
        page.wait_for_function(
            "before => document.querySelector('.enliven-timing').innerText !== before", arg=timing, timeout=30_000
        )
        page.locator("button.enliven-render").click()
        page.wait_for_function("!document.querySelector('button.enliven-cancel').disabled", timeout=30_000)
        page.locator("button.enliven-cancel").click()
        page.wait_for_function(
            "document.querySelector('.enliven-render-state').innerText.startsWith('cancelled')", timeout=60_000
        )
        assert not page.locator(".enliven-download").inner_text().strip()  # no video offered
        assert not page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count()
