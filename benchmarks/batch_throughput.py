"""Batch throughput: jobs per minute of ``enliven batch`` with one worker process and with ``--workers N``, on the
same short jobs (photos x 1-second clips cut from the bundled clip, enliven-lite, paste-back), side by side, each run
as the command a user types (a new process: imports, workers' start and model loading included) into a fresh output
folder, alternating the settings.

    python benchmarks/batch_throughput.py --jobs 20 --workers 2 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from enliven.examples import EXAMPLE_DRIVING, EXAMPLE_SOURCE


def make_jobs(folder: Path, count: int) -> Path:
    """A JSONL job file of ``count`` distinct jobs: 5 variants of the bundled photo x 1-second clips from the bundled
    clip, with paste-back."""
    photos = []
    for angle in range(5):
        path = folder / f"photo{angle}.jpg"
        Image.open(EXAMPLE_SOURCE).rotate(angle * 2).save(path)
        photos.append(path)
    clips = []
    for start in range(max(1, -(-count // len(photos)))):
        path = folder / f"clip{start}.mp4"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-ss", f"{0.4 * start:.1f}", "-i", str(EXAMPLE_DRIVING),
                        "-t", "1", "-c:v", "libx264", "-c:a", "aac", str(path)], check=True)  # fmt: skip
        clips.append(path)
    pairs = [(photo, clip) for clip in clips for photo in photos][:count]
    jobs = folder / "jobs.jsonl"
    jobs.write_text("".join(json.dumps({"source": str(photo), "driving": str(clip), "paste_back": True}) + "\n"
                            for photo, clip in pairs))  # fmt: skip
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each setting")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        jobs = make_jobs(Path(work), args.jobs)
        rates: dict[int, list[float]] = {1: [], args.workers: []}
        for round_number in range(args.rounds):
            for workers in (1, args.workers):
                out = Path(work) / f"out-{workers}-{round_number}"
                command = [str(Path(sys.executable).parent / "enliven"), "batch", str(jobs), "-o", str(out),
                           "--workers", str(workers), "-q"]  # fmt: skip
                started = time.perf_counter()
                subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
                seconds = time.perf_counter() - started
                done = sum(json.loads(line)["status"] == "done" for line in (out / "results.jsonl").open())
                assert done == args.jobs, f"{done} of {args.jobs} jobs done"
                rates[workers].append(60 * args.jobs / seconds)
                print(f"workers={workers}: {args.jobs} jobs in {seconds:.1f} s = {rates[workers][-1]:.1f} jobs/min",
                      flush=True)  # fmt: skip
                shutil.rmtree(out)
    one, many = (sum(rates[w]) / len(rates[w]) for w in (1, args.workers))
    load = os.getloadavg()[0]
    print(f"mean: 1 worker {one:.1f} jobs/min, {args.workers} workers {many:.1f} jobs/min: {many / one:.2f}x "
          f"({os.cpu_count()} CPUs, load average {load:.2f} at the end)")  # fmt: skip


if __name__ == "__main__":
    main()
