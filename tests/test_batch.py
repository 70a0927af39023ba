"""Batch runs: job files, resumable runs with a results manifest, local worker processes, and a real Ray cluster
(a head started here with two worker CPUs, one of its workers killed mid-batch)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

import pytest

pytest.importorskip("mediapipe")

from enliven.batch import BatchJob, ResultsManifest, pair_jobs, read_jobs, run_batch  # noqa: E402
from enliven.errors import InputError  # noqa: E402
from enliven.examples import EXAMPLE_DRIVING, EXAMPLE_SOURCE  # noqa: E402
from enliven.inference import AnimateOptions  # noqa: E402
from enliven.io import read_frames  # noqa: E402

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (apt-get install ffmpeg)"
)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Two photos and two 1-second clips (cut from the bundled ones)."""
    folder = tmp_path_factory.mktemp("inputs")
    (folder / "photos").mkdir()
    (folder / "clips").mkdir()
    shutil.copy(EXAMPLE_SOURCE, folder / "photos" / "a.jpg")
    from PIL import Image

    Image.open(EXAMPLE_SOURCE).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "photos" / "b.jpg")
    for name, start in (("one.mp4", 0), ("two.mp4", 1)):
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-ss", str(start), "-i", str(EXAMPLE_DRIVING), "-t", "1",
                        "-c:v", "libx264", "-c:a", "aac", str(folder / "clips" / name)], check=True)  # fmt: skip
    return folder


def test_job_files_csv_and_jsonl(inputs, tmp_path):
    csv_file = tmp_path / "jobs.csv"
    csv_file.write_text(
        f"source,driving,paste_back,mode\n{inputs}/photos/a.jpg,{inputs}/clips/one.mp4,true,absolute\n"
        f"{inputs}/photos/b.jpg,{inputs}/clips/two.mp4,,\n"
    )
    first, second = read_jobs(csv_file, base=AnimateOptions(size=256))
    assert first.options.paste_back and first.options.mode == "absolute" and first.options.size == 256
    assert not second.options.paste_back and second.options.mode == "relative"
    jsonl = tmp_path / "jobs.jsonl"
    jsonl.write_text(json.dumps({"source": "../x.jpg", "driving": "clip.mp4", "options": {"crop": False}}) + "\n")
    (job,) = read_jobs(jsonl)
    assert job.source == tmp_path / "../x.jpg" and not job.options.crop
    jsonl.write_text(json.dumps({"source": "a.jpg", "driving": "b.mp4", "colour": "red"}) + "\n")
    with pytest.raises(InputError, match="jobs.jsonl row 1: unknown option 'colour'"):
        read_jobs(jsonl)
    csv_file.write_text("source\na.jpg\n")
    with pytest.raises(InputError, match="row 1 has no driving"):
        read_jobs(csv_file)
    assert len(pair_jobs(inputs / "photos", inputs / "clips")) == 4


def test_the_key_follows_content_not_names(inputs, tmp_path):
    copy = tmp_path / "renamed.jpg"
    shutil.copy(inputs / "photos" / "a.jpg", copy)
    a = BatchJob(inputs / "photos" / "a.jpg", inputs / "clips" / "one.mp4", AnimateOptions())
    assert a.key == BatchJob(copy, a.driving, AnimateOptions()).key
    assert a.key != BatchJob(a.source, a.driving, AnimateOptions(paste_back=True)).key


def test_a_batch_records_failures_and_a_rerun_skips_what_is_done(inputs, tmp_path):
    jobs = [BatchJob(inputs / "photos" / "a.jpg", inputs / "clips" / "one.mp4", AnimateOptions(paste_back=True)),
            BatchJob(inputs / "photos" / "b.jpg", inputs / "clips" / "one.mp4", AnimateOptions()),
            BatchJob(inputs / "photos" / "a.jpg", inputs / "missing.mp4", AnimateOptions())]  # fmt: skip
    seen = []
    summary = run_batch(jobs, tmp_path / "out", on_result=lambda result, done, total: seen.append((done, total)))
    assert (summary.done, summary.failed, summary.skipped) == (2, 1, 0) and seen[-1] == (3, 3)
    records = ResultsManifest(tmp_path / "out").read()
    failed = [r for r in records if r.status == "failed"]
    assert len(records) == 3 and "missing.mp4 does not exist" in failed[0].error
    done = [r for r in records if r.status == "done"]
    for record in done:
        frames = list(read_frames(tmp_path / "out" / record.output))
        assert len(frames) == record.frames == 25
    assert {f.shape for f in read_frames(tmp_path / "out" / done[0].output)} == {(512, 512, 3)}
    assert not [p for p in (tmp_path / "out").iterdir() if p.suffix not in {".mp4", ".jsonl"}]  # no temporaries
    again = run_batch(jobs, tmp_path / "out")
    assert (again.done, again.failed, again.skipped) == (0, 1, 2)  # the failed job is tried again


def test_two_local_workers_share_the_jobs(inputs, tmp_path):
    summary = run_batch(pair_jobs(inputs / "photos", inputs / "clips"), tmp_path / "out", workers=2)
    assert summary.done == 4 and len({r.worker for r in summary.results}) == 2


def test_a_worker_is_handed_the_next_job_of_its_clip():
    from enliven.batch.local import ClipQueues

    jobs = [{"source": f"p{i}", "driving": clip} for clip in ("a", "b", "c") for i in range(3)] + [
        {"source": "p9", "driving": "c"}
    ]
    queues = ClipQueues(jobs)
    first = queues.take(None, set())
    second = queues.take(None, {first["driving"]})
    assert (first["driving"], second["driving"]) == ("c", "a")  # the most jobs first, then a clip nobody holds
    assert queues.take("a", {"c"})["driving"] == "a"  # the clip its worker just animated
    assert queues.take("a", {"c"})["driving"] == "a"
    assert queues.take("a", {"c"})["driving"] == "b"  # a's jobs are done: b, which no other worker holds
    queues.put_back(second)
    assert len(queues) == 6 and queues.take("a", set()) is second


def test_a_job_that_kills_its_worker_is_recorded_and_the_rest_finish(tmp_path):
    from crashing_runner import run
    from enliven.batch.local import run_on_processes

    jobs = [{"source": name, "driving": clip} for clip in ("x", "y") for name in ("a", "poison", "b")]
    recorded: list[dict] = []
    run_on_processes(jobs, str(tmp_path), 2, 1, recorded.append, run)
    done = sorted((r["source"], r["driving"]) for r in recorded if r["status"] == "done")
    assert done == [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")]  # each once
    failed = [r for r in recorded if r["status"] == "failed"]
    assert sorted(r["driving"] for r in failed) == ["x", "y"] and all(r["source"] == "poison" for r in failed)
    assert "worker process died" in failed[0]["error"]


def test_a_job_handed_to_a_broken_pool_waits_for_the_next_one():
    """A worker died while another's result came in: the job chosen for the freed worker is refused by the broken
    pool and must stay queued (it was lost once, so a batch finished without it), and a suspect runs alone."""
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from enliven.batch.local import ClipQueues, _submit

    class Pool:  # stands in for ProcessPoolExecutor
        broken = False

        def submit(self, run_job, job, output_dir, threads):
            if self.broken:
                raise BrokenProcessPool("a worker died")
            return Future()

    pool, queues, suspects, running = Pool(), ClipQueues([{"source": "b", "driving": "y"}]), deque(), {}
    pool.broken = True
    with pytest.raises(BrokenProcessPool):
        _submit(pool, running, queues, suspects, 2, (None, "", 1), "x")
    assert len(queues) == 1 and not running  # still queued
    suspects.append({"source": "poison", "driving": "x"})
    with pytest.raises(BrokenProcessPool):
        _submit(pool, running, queues, suspects, 2, (None, "", 1), None)
    assert len(suspects) == 1
    pool.broken = False
    _submit(pool, running, queues, suspects, 2, (None, "", 1), None)
    assert [job["source"] for job in running.values()] == ["poison"] and len(queues) == 1  # alone
    running.clear()
    _submit(pool, running, queues, suspects, 2, (None, "", 1), None)
    assert [job["source"] for job in running.values()] == ["b"]  # no suspect left: the queue goes on


def test_the_cli_runs_a_job_file_and_says_what_failed(inputs, tmp_path):
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(f"source,driving\n{inputs}/photos/a.jpg,{inputs}/clips/one.mp4\n{inputs}/photos/a.jpg,nope.mp4\n")
    run = subprocess.run([sys.executable, "-m", "enliven", "batch", str(jobs), "-o", str(tmp_path / "out"), "-q"],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 1 and "1 done, 1 failed, 0 already done" in run.stdout
    assert "nope.mp4" in run.stderr and "Traceback" not in run.stderr


@pytest.fixture
def ray_head():
    """A real Ray head on this machine with two worker CPUs, stopped afterwards."""
    pytest.importorskip("ray")
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    ray_bin = str(Path(sys.executable).parent / "ray")
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    subprocess.run([ray_bin, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                    f"--temp-dir={temp}", "--disable-usage-stats"], check=True, capture_output=True, env=env,
                   timeout=120)  # fmt: skip
    try:
        yield "auto"  # the cluster this machine runs (what --ray auto finds)
    finally:
        subprocess.run([ray_bin, "stop", "--force"], capture_output=True, env=env, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def test_a_ray_cluster_finishes_every_job_when_a_worker_is_killed(inputs, tmp_path, ray_head):
    import psutil

    clips = [inputs / "clips" / "one.mp4", inputs / "clips" / "two.mp4"]
    jobs = [BatchJob(inputs / "photos" / "a.jpg", clips[i % 2], AnimateOptions(size=192 + 16 * i)) for i in range(10)]
    summary, killed = {}, []

    def run() -> None:
        summary["value"] = run_batch(jobs, tmp_path / "out", ray_address=ray_head)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 120
    while not killed and time.monotonic() < deadline and thread.is_alive():
        for process in psutil.process_iter(["cmdline"]):
            if any("ray::run_job" in part for part in process.info["cmdline"] or []):
                os.kill(process.pid, signal.SIGKILL)  # a worker in the middle of a job
                killed.append(process.pid)
                break
        time.sleep(0.2)
    thread.join(600)
    assert killed, "no Ray worker was seen running a job"
    result = summary["value"]
    assert result.done == 10 and result.failed == 0
    assert len(ResultsManifest(tmp_path / "out").done_keys()) == 10


def test_model_auto_picks_each_photos_model_and_records_it(inputs, tmp_path):
    import numpy as np
    from PIL import Image

    wall = tmp_path / "wall.png"
    Image.fromarray(np.full((300, 300, 3), 90, np.uint8)).save(wall)
    clip = inputs / "clips" / "one.mp4"
    jobs = [BatchJob(inputs / "photos" / "a.jpg", clip, AnimateOptions()), BatchJob(wall, clip, AnimateOptions())]
    summary = run_batch(jobs, tmp_path / "out")
    assert summary.done == 2 and sorted(r.model for r in summary.results) == ["enliven-any", "enliven-lite"]
    recorded = [json.loads(line)["model"] for line in (tmp_path / "out" / "results.jsonl").open()]
    assert sorted(recorded) == ["enliven-any", "enliven-lite"]


def test_a_clips_keypoints_are_found_once_and_give_the_same_frames(inputs, tmp_path):
    import numpy as np

    from enliven.inference import animate_file, load_for_options
    from enliven.inference.driving_cache import DrivingCache

    options = AnimateOptions(paste_back=True)
    loaded, _ = load_for_options(options)
    cache = DrivingCache()
    outputs = []
    for run, photo in enumerate(("a.jpg", "a.jpg", "b.jpg")):
        folder = tmp_path / f"run{run}/"
        animate_file(inputs / "photos" / photo, inputs / "clips" / "one.mp4", str(folder) + "/", options,
                     model=loaded, driving_cache=cache if run else None)  # fmt: skip
        outputs.append(read_frames(folder))
    assert (cache.misses, cache.hits, cache.frames) == (1, 1, 25)
    assert np.array_equal(outputs[0], outputs[1])  # the first uncached, the second from the cache: the same frames


def test_the_driving_cache_keeps_whole_clips_within_its_bound(tmp_path):
    import numpy as np

    from enliven.inference.driving_cache import DrivingCache

    model = object()
    cache = DrivingCache(max_frames=30)
    clips = []
    for name in ("a", "b", "c"):
        (tmp_path / name).write_bytes(name.encode())
        clips.append(cache.key(tmp_path / name, model, ("crop",)))
    batches = [np.zeros((10, 478, 2), np.float32)] * 2
    stream = cache.recording(clips[0], model, iter(batches))
    next(stream)
    stream.close()  # a job cancelled half-way stores nothing
    assert cache.get(clips[0], model) is None
    for key in clips:
        list(cache.recording(key, model, iter(batches)))
    assert cache.frames == 20 and cache.get(clips[0], model) is None  # the oldest clip made room
    assert len(list(cache.get(clips[2], model))) == 2 and cache.get(clips[2], object()) is None  # another model
    (tmp_path / "c").write_bytes(b"changed")
    assert cache.key(tmp_path / "c", model, ("crop",)) != clips[2]  # a clip rewritten is found again
