"""The REST server as a real process on a free localhost port: jobs round trip, bad requests get one-sentence 4xx
answers and the server keeps serving, a SIGKILL with jobs queued and running loses none, one-frame animation."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("mediapipe")

from enliven.examples import EXAMPLE_DRIVING, EXAMPLE_SOURCE  # noqa: E402
from enliven.io import read_frames  # noqa: E402
from enliven.server.client import FINAL, Client, LocalServer  # noqa: E402

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (apt-get install ffmpeg)"
)
TOKEN = "test-token-123"


class Server(LocalServer):
    """``enliven serve`` in a process of its own, with the tests' limits and token."""

    def __init__(self, data: Path, inputs: Path | None = None, extra: tuple[str, ...] = ()) -> None:
        limits = ["--max-upload-mb", "20", "--max-video-seconds", "10", *extra]
        super().__init__(data, token=TOKEN, extra=limits + (["--inputs", str(inputs)] if inputs else []))

    def request(self, method: str, path: str, fields=None, files=None, token: str = TOKEN):
        return self.client().request(method, path, fields, files, token=token)

    def submit(self, source: Path = EXAMPLE_SOURCE, driving: Path | None = None, **fields) -> dict:
        files = {"source": (source.name, source.read_bytes())}
        if driving is not None:
            files["driving"] = (driving.name, driving.read_bytes())
        status, answer = self.request("POST", "/v1/jobs", fields, files)
        assert status == 202, answer
        return answer

    def wait(self, job_id: str, states=FINAL, timeout: float = 120) -> dict:
        job = self.client().wait(job_id, states, timeout)
        assert job["state"] in states, job
        return job


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory) -> Path:
    clip = tmp_path_factory.mktemp("clips") / "short.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(EXAMPLE_DRIVING), "-t", "1", "-c:v", "libx264",
                    "-c:a", "aac", str(clip)], check=True)  # fmt: skip
    return clip


@pytest.fixture(scope="module")
def server(tmp_path_factory, short_clip):
    inputs = tmp_path_factory.mktemp("inputs")
    shutil.copy(short_clip, inputs / "talk.mp4")
    running = Server(tmp_path_factory.mktemp("data"), inputs).start()
    yield running
    running.stop()


def test_a_job_round_trip(server, short_clip, tmp_path):
    job = server.submit(driving=short_clip, options=json.dumps({"paste_back": True}))
    assert job["state"] == "queued" and job["options"] == {"paste_back": True, "model": "enliven-lite"}
    assert job["model_choice"].startswith("model auto: enliven-lite (a face, ")  # the photo's model, and why
    assert server.wait(job["id"])["state"] == "done"
    status, video = server.request("GET", job["result_url"])
    assert status == 200
    (tmp_path / "result.mp4").write_bytes(video)
    frames = list(read_frames(tmp_path / "result.mp4"))
    assert len(frames) == 25 and frames[0].shape == (512, 512, 3)
    assert not (server.data / "jobs" / job["id"]).exists()  # the inputs go when the job ends


def test_model_auto_gives_a_photo_without_a_face_the_generic_model(server, short_clip):
    wall = __import__("cv2").imencode(".png", np.full((300, 300, 3), 90, np.uint8))[1].tobytes()
    status, job = server.request(
        "POST", "/v1/jobs", {}, {"source": ("w.png", wall), "driving": ("s.mp4", short_clip.read_bytes())}
    )
    assert status == 202 and job["options"]["model"] == "enliven-any", job
    assert job["model_choice"] == "model auto: enliven-any (no face and no person: animals, drawings and objects)"
    assert server.wait(job["id"])["state"] == "done"


def test_a_job_may_name_a_file_in_the_input_folder(server):
    status, job = server.request("POST", "/v1/jobs", {"driving_name": "talk.mp4"},
                                 {"source": ("me.jpg", EXAMPLE_SOURCE.read_bytes())})  # fmt: skip
    assert status == 202 and server.wait(job["id"])["state"] == "done"


def _bad_requests(short_clip: Path) -> list[tuple[str, dict, dict, int, str]]:
    clip, photo = short_clip.read_bytes(), EXAMPLE_SOURCE.read_bytes()
    wall = __import__("cv2").imencode(".png", np.full((300, 300, 3), 90, np.uint8))[1].tobytes()
    return [
        ("corrupt video", {}, {"source": ("a.jpg", photo), "driving": ("c.mp4", os.urandom(5000))}, 415, "not a video"),
        ("truncated video", {}, {"source": ("a.jpg", photo), "driving": ("t.mp4", clip[: len(clip) // 3])}, 422,
         "driving cannot be read"),
        ("text named .mp4", {}, {"source": ("a.jpg", photo), "driving": ("x.mp4", b"hello\n" * 50)}, 415,
         "not a video"),
        ("a face model and a photo without a face", {"options": '{"model": "enliven-lite"}'},
         {"source": ("w.png", wall), "driving": ("s.mp4", clip)}, 422, '"crop": false'),
        ("a video as the photo", {}, {"source": ("a.jpg", clip), "driving": ("s.mp4", clip)}, 415, "not an image"),
        ("path traversal", {"driving_name": "../../etc/passwd"}, {"source": ("a.jpg", photo)}, 400,
         "inside the server's input folder"),
        ("absolute path", {"driving_name": "/etc/passwd"}, {"source": ("a.jpg", photo)}, 400, "inside"),
        ("unknown option", {"options": '{"colour": "red"}'}, {"source": ("a.jpg", photo), "driving": ("s.mp4", clip)},
         422, "unknown option 'colour'"),
        ("a path as the model", {"options": '{"model": "/etc/passwd"}'},
         {"source": ("a.jpg", photo), "driving": ("s.mp4", clip)}, 422, "not available on this server"),
        ("options not JSON", {"options": "paste_back"}, {"source": ("a.jpg", photo), "driving": ("s.mp4", clip)},
         422, "JSON object"),
        ("no driving clip", {}, {"source": ("a.jpg", photo)}, 422, "driving file or a driving_name"),
    ]  # fmt: skip


def test_bad_requests_get_one_sentence_and_the_server_goes_on(server, short_clip):
    for what, fields, files, code, words in _bad_requests(short_clip):
        status, answer = server.request("POST", "/v1/jobs", fields, files)
        assert (status, words in answer.get("error", "")) == (code, True), (what, status, answer)
        assert "/jobs/" not in answer["error"], (what, answer)  # no server paths
    status, answer = server.request("GET", "/v1/jobs", token="wrong-token")
    assert status == 401 and "Bearer" in answer["error"]
    status, answer = server.request("GET", "/v1/jobs/nope")
    assert status == 404 and "no job" in answer["error"]
    assert not list((server.data / "jobs").iterdir())  # nothing refused was kept
    assert server.request("GET", "/v1/health")[0] == 200


def test_a_2_gb_upload_is_refused_before_it_is_stored(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.putrequest("POST", "/v1/jobs")
    connection.putheader("Authorization", f"Bearer {TOKEN}")
    connection.putheader("Content-Type", "multipart/form-data; boundary=x")
    connection.putheader("Content-Length", str(2 * 2**30))
    connection.endheaders()
    try:
        connection.send(b"x" * 2**20)
    except OSError:
        pass  # the server may close before it has read the first megabyte
    response = connection.getresponse()
    assert response.status == 413 and "upload limit (20 MB)" in json.loads(response.read())["error"]
    assert server.request("GET", "/v1/health")[0] == 200


def test_cancel(server, short_clip):
    running = server.submit(driving=Path(EXAMPLE_DRIVING))
    queued = server.submit(driving=short_clip)
    server.wait(running["id"], states=("running",))
    assert server.request("DELETE", f"/v1/jobs/{queued['id']}")[1]["state"] == "cancelled"
    server.request("DELETE", f"/v1/jobs/{running['id']}")
    assert server.wait(running["id"])["state"] in {"cancelled", "done"}  # a job may finish before it sees the cancel
    assert server.request("GET", f"/v1/jobs/{queued['id']}/result")[0] == 409


def test_animate_frame_against_a_cached_source(server):
    import cv2

    status, answer = server.request("POST", "/v1/sources", files={"image": ("me.jpg", EXAMPLE_SOURCE.read_bytes())})
    assert status == 201
    for frame in list(read_frames(EXAMPLE_DRIVING))[:3]:
        jpeg = cv2.imencode(".jpg", frame[:, :, ::-1])[1].tobytes()
        status, image = server.request("POST", "/v1/animate-frame", {"source_id": answer["source_id"]},
                                       {"frame": ("f.jpg", jpeg)})  # fmt: skip
        assert status == 200 and cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR).shape == (256, 256, 3)
    status, error = server.request("POST", "/v1/animate-frame", {"source_id": "nope"}, {"frame": ("f.jpg", jpeg)})
    assert status == 422 and "POST /v1/sources" in error["error"]


def test_a_killed_server_loses_no_job(tmp_path):
    import psutil

    first = Server(tmp_path / "data").start()
    try:
        ids = [first.submit(driving=Path(EXAMPLE_DRIVING))["id"] for _ in range(3)]
        first.wait(ids[0], states=("running",))
        workers = psutil.Process(first.process.pid).children(recursive=True)
        first.kill()
        psutil.wait_procs(workers, timeout=10)
        assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    finally:
        first.kill()
    second = Server(tmp_path / "data", extra=("--jobs-per-worker", "1")).start()  # and a fresh worker per job
    try:
        pids = set()
        for job_id in ids:
            while second.request("GET", f"/v1/jobs/{job_id}")[1]["state"] not in FINAL:
                pids.update(p.pid for p in psutil.Process(second.process.pid).children() if "python" in p.name())
                time.sleep(0.1)
        jobs = [second.wait(job_id) for job_id in ids]
    finally:
        second.stop()
    assert len(pids) >= 2  # the worker was replaced after its job
    assert [job["state"] for job in jobs] == ["done"] * 3
    assert jobs[0]["attempts"] == 2 and all(job["attempts"] <= 2 for job in jobs)
    results = sorted(p.name for p in (tmp_path / "data" / "results").iterdir())
    assert results == sorted(f"{job_id}.mp4" for job_id in ids)  # each once, no temporaries
    for name in results:
        assert len(list(read_frames(tmp_path / "data" / "results" / name))) == 75


@pytest.mark.skipif(
    not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed (apt-get install chromium)"
)
def test_the_live_page_is_mounted_in_the_same_server(tmp_path):
    """``--live PHOTO``: /live/ serves the live page beside the job API; a browser's fake webcam animates the photo
    through it (the WebRTC offer goes through the server's proxy), and the token guards it."""
    pytest.importorskip("aiortc")
    pytest.importorskip("playwright")
    from enliven.live.web.bench import camera_clip, chromium_page

    running = Server(tmp_path / "data", extra=("--live", str(EXAMPLE_SOURCE))).start(timeout=120)
    try:
        base = f"http://127.0.0.1:{running.port}"
        assert Client("127.0.0.1", running.port, None).request("GET", "/live/api/state")[0] == 401
        status, state = running.client().request("GET", "/live/api/state")  # the bearer token works too
        assert status == 200 and state["avatars"] == [EXAMPLE_SOURCE.name]
        assert running.request("GET", "/v1/health")[0] == 200  # the job API beside it
        camera = camera_clip(tmp_path / "camera.y4m", 6.0, stamp=False)
        with chromium_page(f"{base}/live/?token={TOKEN}", camera) as page:
            page.wait_for_function(
                "document.getElementById('animated').videoWidth > 0 && "
                "document.getElementById('animated').currentTime > 1",
                timeout=60_000,
            )
            page.wait_for_function("/fps/.test(document.getElementById('status').textContent)", timeout=10_000)
            assert not page.is_visible("#error")
    finally:
        running.stop()
