"""The live web page in a real browser: Debian's Chromium (headless, through Playwright) plays a face clip as its
fake webcam, sends it to the server over WebRTC, and the frames that come back must follow the speaker's mouth —
not only arrive. Also the avatar-alone page, the JSON API's errors, uploads, and an occupied port."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("aiortc", reason="the live web page needs enliven[live]")
pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright (enliven[dev])")

from enliven.errors import OutputError  # noqa: E402
from enliven.io import read_frames  # noqa: E402
from enliven.live import LiveSession  # noqa: E402
from enliven.live.web import LiveWebServer  # noqa: E402
from enliven.live.web.bench import CAMERA_FPS, CHROMIUM, camera_clip, chromium_page, write_camera_clip  # noqa: E402
from test_live import find_window, mouth_change  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "assets" / "source-astronaut.jpg"
CLIP = REPO / "assets" / "driving-grid-bbaf2n.mpg"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)"
)

#: Grabs ``count`` frames of a video element, ``every`` ms apart, as base64 grey ``width x height`` images.
GRAB = """async ([selector, count, every, width, height]) => {
  const video = document.querySelector(selector);
  const canvas = Object.assign(document.createElement("canvas"), { width, height });
  const context = canvas.getContext("2d", { willReadFrequently: true });
  const frames = [];
  for (let k = 0; k < count; k++) {
    context.drawImage(video, 0, 0, width, height);
    const rgba = context.getImageData(0, 0, width, height).data, grey = new Uint8Array(width * height);
    for (let i = 0; i < grey.length; i++) grey[i] = (rgba[4 * i] + rgba[4 * i + 1] + rgba[4 * i + 2]) / 3;
    let text = "";
    for (let i = 0; i < grey.length; i += 8192) text += String.fromCharCode(...grey.subarray(i, i + 8192));
    frames.push(btoa(text));
    await new Promise((resolve) => setTimeout(resolve, every));
  }
  return frames;
}"""


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return read_frames(CLIP)


@pytest.fixture(scope="module")
def server():
    with LiveSession.load(PHOTO, threads=1) as session, LiveWebServer(session, port=0) as live:
        yield live


@pytest.fixture
def fresh(server):
    server.session.update(overlay="none", paste_back=False, mode="relative", edit=None)
    server.session.select(0)
    return server


@pytest.fixture(scope="module")
def cameras(clip, tmp_path_factory):
    """Fake-webcam files: the speaker (forth and back, so the loop has no jump) and the speaker's first frame held."""
    folder = tmp_path_factory.mktemp("cameras")
    talking = camera_clip(folder / "talking.y4m", 2 * len(clip) / CAMERA_FPS, stamp=False)
    still = write_camera_clip([clip[0]] * 50, folder / "still.y4m", stamp=False)
    return {"talking": talking, "still": still}


def grab(page, selector: str, count: int = 30, every_ms: int = 70) -> list[np.ndarray]:
    width, height = 180, 144
    frames = page.evaluate(GRAB, [selector, count, every_ms, width, height])
    return [np.frombuffer(base64.b64decode(f), np.uint8).reshape(height, width) for f in frames]


def wait_for_animation(page) -> None:
    page.wait_for_function(
        "document.getElementById('animated').videoWidth > 0 && document.getElementById('animated').currentTime > 1",
        timeout=60_000,
    )


def test_the_page_animates_the_photo_with_the_browsers_webcam(fresh, cameras):
    """The frames that come back follow the speaker's mouth: many times the change a still camera gives."""
    changes = {}
    for name in ("talking", "still"):
        with chromium_page(fresh.url, cameras[name]) as page:
            wait_for_animation(page)
            assert page.evaluate("document.getElementById('camera').videoWidth") == 360
            page.wait_for_function("/fps/.test(document.getElementById('status').textContent)", timeout=10_000)
            frames = grab(page, "#animated")
            changes[name] = mouth_change(frames)
            assert np.ptp(frames[-1]) > 60  # a picture, not a black or frozen-blank stream
            assert not page.is_visible("#error")
    assert changes["talking"] > 3 * changes["still"] + 0.5, changes


def test_the_pages_expression_sliders_edit_the_avatar(fresh, cameras):
    """Moving the page's sliders sends one edit; *reset* clears it; a calmed expression moves the mouth less."""
    with chromium_page(fresh.url, cameras["talking"]) as page:
        wait_for_animation(page)
        plain = mouth_change(grab(page, "#animated"))
        page.locator("input.edit[data-name=expression]").fill("0")
        page.locator("input.edit[data-name=head]").fill("0")
        deadline = time.monotonic() + 10
        while str(fresh.session.settings.edit) != "expression=0,head=0" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert str(fresh.session.settings.edit) == "expression=0,head=0"
        time.sleep(1.0)  # frames already on their way
        frozen = mouth_change(grab(page, "#animated"))
        assert frozen < 0.5 * plain, (frozen, plain)
        page.locator("#edit_reset").click()
        deadline = time.monotonic() + 10
        while not fresh.session.settings.edit.is_identity and time.monotonic() < deadline:
            time.sleep(0.1)
        assert fresh.session.settings.edit.is_identity


def test_the_avatar_page_shows_the_avatar_alone(fresh, cameras):
    """The OBS page (/avatar) receives the avatar at its own size while a driving page runs."""
    with chromium_page(fresh.url, cameras["talking"]) as page:
        wait_for_animation(page)
        viewer = page.context.browser.new_page()
        viewer.goto(fresh.url + "avatar")
        viewer.wait_for_function("document.querySelector('video').videoWidth > 0", timeout=30_000)
        size = viewer.evaluate("(v => [v.videoWidth, v.videoHeight])(document.querySelector('video'))")
        assert size == [256, 256]  # the face crop (paste-back off), not the camera's 360 x 288
        frames = grab(viewer, "video", count=10)
        assert np.ptp(frames[-1]) > 60


# -- the JSON API --------------------------------------------------------------------------------------------------
def call(server, path: str, body: dict | bytes | None = None, content_type: str = "application/json"):
    """(status, JSON reply) of a GET (no body) or POST."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(server.url + path.lstrip("/"), data=data)
    if data is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def multipart(data: bytes, field: str = "image", filename: str = "photo.jpg") -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n")  # fmt: skip
    body = head.encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_state_and_settings(fresh):
    status, state = call(fresh, "/api/state")
    assert status == 200 and state["avatars"] == [PHOTO.name] and state["settings"]["overlay"] == "none"
    status, state = call(fresh, "/api/settings", {"overlay": "pip", "corner": "top-left", "paste_back": True})
    assert status == 200 and state["settings"]["overlay"] == "pip" and state["settings"]["paste_back"] is True
    status, state = call(fresh, "/api/settings", {"edit": "expression=1.5,smile=0.3"})
    assert status == 200 and state["settings"]["edit"] == "smile=0.3,expression=1.5"
    status, state = call(fresh, "/api/settings", {"edit": ""})
    assert status == 200 and state["settings"]["edit"] == ""
    status, _ = call(fresh, "/api/recalibrate", {})
    assert status == 200


@pytest.mark.parametrize(
    ("path", "body", "code", "words"),
    [
        ("/api/settings", {"colour": "red"}, 400, "unknown setting 'colour'"),
        ("/api/settings", {"overlay": "sideways"}, 400, "sideways"),
        ("/api/settings", {"paste_back": "yes"}, 400, "true or false"),
        ("/api/settings", {"edit": "grin=1"}, 400, "cannot read the edit"),
        ("/api/settings", {"edit": 3}, 400, "edit must be text"),
        ("/api/settings", b"not json", 400, "must be JSON"),
        ("/api/avatar", {"index": 7}, 400, "from 0 to 0"),
        ("/offer", {"sdp": "x"}, 400, '"role"'),
    ],
)
def test_bad_requests_get_one_sentence(fresh, path, body, code, words):
    status, reply = call(fresh, path, body)
    assert status == code and words in reply["error"], reply
    assert call(fresh, "/api/state")[1]["settings"]["overlay"] == "none"  # nothing changed


def test_uploads(fresh):
    status, reply = call(fresh, "/api/upload", *multipart(b"GIF89a but not really an image"))
    assert status == 415 and "image" in reply["error"]
    wall = _png(np.full((240, 240, 3), 70, np.uint8))
    status, reply = call(fresh, "/api/upload", *multipart(wall, filename="wall.png"))
    assert status == 422 and "face" in reply["error"]
    status, reply = call(fresh, "/api/upload", *multipart(b"\0" * (21 * 1024 * 1024)))
    assert status == 413 and "20 MB" in reply["error"]
    status, reply = call(fresh, "/api/upload", *multipart(PHOTO.read_bytes(), field="file"))
    assert status == 400 and "'image'" in reply["error"]
    # a real photo (named like anything: the content counts) becomes the current avatar
    status, state = call(fresh, "/api/upload", *multipart(PHOTO.read_bytes(), filename="me.txt"))
    try:
        assert status == 200 and state["avatars"] == [PHOTO.name, "me.txt"] and state["avatar"] == 1
    finally:
        fresh.session._avatars.pop()


def _png(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def test_cli_serve_with_a_window_and_a_recording(xvfb, cameras, tmp_path):
    """``enliven live --serve --window --record``: the page's frames go to the window and the recording too; the run
    ends cleanly at --seconds and the recording is complete."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    target = tmp_path / "shown.mp4"
    env = {**os.environ, "DISPLAY": xvfb}
    command = [sys.executable, "-m", "enliven", "live", str(PHOTO), "--serve", "--port", str(port), "--window",
               "--no-paste-back", "--record", str(target), "--seconds", "25"]  # fmt: skip
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.time() + 60
        while "open " + url not in (line := process.stdout.readline()) and time.time() < deadline:
            assert line or process.poll() is None, process.stderr.read()
        with chromium_page(url, cameras["talking"]) as page:
            wait_for_animation(page)
            find_window(env)
            time.sleep(3)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert f"recorded {target}" in out
    frames = read_frames(target)
    assert len(frames) > 50 and frames[0].shape == (288, 360, 3)  # the browser camera's size
    assert mouth_change(frames[10:]) > 1.0  # the face crop's mouth follows the speaker


def test_an_occupied_port(server, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OutputError, match=f"127.0.0.1:{port} is already in use.*--port"):
            LiveWebServer(server.session, port=port).start()
        record = tmp_path / "shown.mp4"
        result = subprocess.run(
            [sys.executable, "-m", "enliven", "live", str(PHOTO), "--serve", "--port", str(port), "--record",
             str(record), "-q"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert result.returncode != 0 and "already in use" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # no recording, no temp file


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg writes the fake-webcam files")
def test_stamps_survive_the_camera_file_and_scaling(clip, tmp_path):
    """The benchmark's stamps read back from Chromium's camera file (YUV 4:2:0) and from frames a browser or WebRTC
    scaled."""
    import av
    import cv2

    from enliven.live.overlay import read_stamp, stamp_index

    camera = write_camera_clip(list(clip[:5]), tmp_path / "stamped.y4m")
    with av.open(str(camera)) as container:
        assert [read_stamp(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)] == [0, 1, 2, 3, 4]
    stamped = stamp_index(clip[7].copy(), 1234)
    for scale in (0.5, 0.8, 1.7):
        assert read_stamp(cv2.resize(stamped, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)) == 1234
    assert read_stamp(clip[7]) is None
