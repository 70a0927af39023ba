"""The REST server under load, as a real process on localhost: ``--clients`` threads submit ``--jobs`` short jobs in
all (a photo and a 1-second clip each, enliven-lite) and poll their status until every one has ended; then every
result is downloaded once. Printed: jobs done / lost / duplicated, status-call latency (median, p95, max, measured
while the workers are busy), the server's memory (API process and workers, sampled every half second), and
``POST /v1/animate-frame``'s round trip against a cached source (before the load).

    python benchmarks/server_load.py --clients 50 --jobs 200 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import psutil

from enliven.examples import EXAMPLE_DRIVING, EXAMPLE_SOURCE
from enliven.io import read_frames
from enliven.server.client import FINAL, Client, LocalServer


def frame_round_trip(client: Client, count: int = 100) -> list[float]:
    source_id = client.add_source(EXAMPLE_SOURCE.read_bytes())
    frames = list(read_frames(EXAMPLE_DRIVING))
    times = []
    for index in range(count):
        jpeg = cv2.imencode(".jpg", frames[index % len(frames)][:, :, ::-1])[1].tobytes()
        started = time.perf_counter()
        client.animate_frame(source_id, jpeg)
        times.append(time.perf_counter() - started)
    return times[10:]  # after warm-up


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        clip = Path(work) / "short.mp4"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(EXAMPLE_DRIVING), "-t", "1", "-c:v",
                        "libx264", "-c:a", "aac", str(clip)], check=True)  # fmt: skip
        server = LocalServer(Path(work) / "data", extra=["--workers", str(args.workers)]).start()
        client = server.client()
        try:
            frame_times = frame_round_trip(client)
            median, p95 = 1000 * statistics.median(frame_times), 1000 * percentile(frame_times, 0.95)
            print(f"animate-frame: median {median:.1f} ms, p95 {p95:.1f} ms over {len(frame_times)} frames", flush=True)
            memory: list[tuple[float, float, float]] = []  # MiB: the API process, the workers, their ffmpeg
            stop = threading.Event()

            def sample() -> None:
                root = psutil.Process(server.process.pid)
                while not stop.is_set():
                    try:
                        children = root.children(recursive=True)
                        workers = [p for p in children if "python" in p.name()]
                        others = [p for p in children if p not in workers]
                        rss = [
                            root.memory_info().rss,
                            *(sum(p.memory_info().rss for p in g) for g in (workers, others)),
                        ]
                        memory.append(tuple(value / 2**20 for value in rss))  # type: ignore[arg-type]
                    except psutil.Error:
                        pass
                    time.sleep(0.5)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            status_times: list[float] = []
            lock = threading.Lock()

            def one_client(count: int) -> list[str]:
                ids = [client.submit(EXAMPLE_SOURCE, clip)["id"] for _ in range(count)]
                pending = set(ids)
                while pending:
                    for job_id in list(pending):
                        started = time.perf_counter()
                        job = client.status(job_id)
                        with lock:
                            status_times.append(time.perf_counter() - started)
                        if job["state"] in FINAL:
                            pending.discard(job_id)
                    time.sleep(0.5)
                return ids

            started = time.perf_counter()
            shares = [args.jobs // args.clients + (i < args.jobs % args.clients) for i in range(args.clients)]
            with ThreadPoolExecutor(args.clients) as pool:
                ids = [job_id for batch in pool.map(one_client, shares) for job_id in batch]
            seconds = time.perf_counter() - started
            stop.set()
            _, health = client.request("GET", "/v1/health")
            results = sorted(p.name for p in (server.data / "results").iterdir())
            for job_id in ids:
                client.result(job_id)  # raises unless it is there
        finally:
            server.stop()
    done = health["jobs"]["done"]
    print(f"{len(ids)} jobs submitted by {args.clients} clients, {done} done, {len(set(ids)) - done} lost, "
          f"{len(results) - len(set(results))} duplicated, {len(results)} result files; {seconds:.0f} s "
          f"({60 * done / seconds:.0f} jobs/min, {args.workers} workers)")  # fmt: skip
    print(f"status calls while busy: {len(status_times)}, median {1000 * statistics.median(status_times):.1f} ms, "
          f"p95 {1000 * percentile(status_times, 0.95):.1f} ms, max {1000 * max(status_times):.1f} ms")  # fmt: skip
    for index, part in enumerate(("API process", "worker processes", "their ffmpeg/ffprobe")):
        values = [sample[index] for sample in memory]
        tenth = max(1, len(values) // 10)
        print(f"memory, {part}: mean of the first tenth {statistics.mean(values[:tenth]):.0f} MiB, of the last "
              f"tenth {statistics.mean(values[-tenth:]):.0f} MiB, peak {max(values):.0f} MiB")  # fmt: skip
    print(f"{len(memory)} samples; load average {os.getloadavg()[0]:.2f} at the end")
    print(json.dumps({"frame_ms_median": 1000 * statistics.median(frame_times),
                      "status_ms_p95": 1000 * percentile(status_times, 0.95)}))  # fmt: skip


if __name__ == "__main__":
    main()
