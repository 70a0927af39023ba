"""Live figures: delivered fps, dropped share, capture-to-output latency per output, and memory over a long run.

The bundled GRID clip (25 fps) is the camera, played at its real rate and looped, each frame's index stamped into it
(``enliven live --bench``). One ``enliven live`` process shows it in a real OpenCV window (on Xvfb when there is no
display), records it, and streams it to a real RTMP receiver (Debian's ffmpeg) at once; this script samples that
process's memory every few seconds and its fps readout every 10 s. ``--web`` then runs the web page's benchmark
(Chromium's fake webcam plays the stamped clip; :mod:`enliven.live.web.bench`).

    python benchmarks/live_latency.py                       # 60 s: window + record + stream
    python benchmarks/live_latency.py --seconds 600         # the 10-minute soak: memory at 1 min vs at the end
    python benchmarks/live_latency.py --outputs window --web

Prints the load average before and after: the machine is shared, so read the figures beside it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "assets" / "source-astronaut.jpg"
CAMERA = ROOT / "assets" / "driving-grid-bbaf2n.mpg"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def memory_mib(pid: int) -> tuple[float, float]:
    """Resident and peak resident memory of a process, MiB."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--outputs", default="window,record,stream", help="comma-separated: window, record, stream")
    parser.add_argument("--threads", type=int, default=None, help="model threads (default: the CLI's, 1 per 2 cores)")
    parser.add_argument("--overlay", default="pip")
    parser.add_argument("--web", action="store_true", help="also run the web page's benchmark (Chromium)")
    parser.add_argument("--web-seconds", type=float, default=30.0)
    args = parser.parse_args()
    outputs = set(args.outputs.split(","))
    print(f"load average before: {os.getloadavg()}", flush=True)

    cleanup: list[subprocess.Popen] = []
    env = dict(os.environ)
    work = Path(tempfile.mkdtemp(prefix="enliven-live-bench-"))
    command = [sys.executable, "-m", "enliven", "live", str(SOURCE), "--camera", str(CAMERA), "--loop",
               "--seconds", str(args.seconds), "--bench", "--overlay", args.overlay]  # fmt: skip
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    try:
        if "window" in outputs:
            command.append("--window")
            if not env.get("DISPLAY"):
                display = f":{free_port() % 500 + 100}"
                cleanup.append(subprocess.Popen(["Xvfb", display, "-screen", "0", "1280x800x24"],
                                                stderr=subprocess.DEVNULL))  # fmt: skip
                env["DISPLAY"] = display
                time.sleep(1)
        if "record" in outputs:
            command += ["--record", str(work / "recorded.mp4")]
        if "stream" in outputs:
            url = f"rtmp://127.0.0.1:{free_port()}/live/bench"
            receiver = subprocess.Popen(
                ["ffmpeg", "-nostdin", "-loglevel", "error", "-listen", "1", "-i", url, "-c", "copy", "-y",
                 str(work / "received.mkv")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            cleanup.append(receiver)
            command += ["--stream", url]
            time.sleep(0.5)
        started = time.perf_counter()
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        samples: list[tuple[float, float, float]] = []
        while process.poll() is None:
            try:
                samples.append((time.perf_counter() - started, *memory_mib(process.pid)))
            except (OSError, KeyError):
                pass
            time.sleep(2.0)
        out, err = process.communicate()
    finally:
        for helper in cleanup:
            helper.terminate()
            helper.wait()
    if process.returncode != 0:
        print(err, file=sys.stderr)
        return process.returncode
    threads = "default" if args.threads is None else args.threads
    print(f"enliven live, {args.seconds:g} s, outputs {args.outputs}, overlay {args.overlay}, threads {threads}:")
    for line in out.splitlines():
        print("  " + line)
    readouts = [float(m.group(1)) for m in re.finditer(r"live: ([\d.]+) fps", err)]
    if readouts:
        print(f"  fps readout every 10 s: min {min(readouts):.1f}, max {max(readouts):.1f} ({len(readouts)} readings)")
    if samples:
        at_minute = [s for s in samples if s[0] <= 60.0]
        peak_minute = max(s[2] for s in at_minute) if at_minute else samples[0][2]
        print(f"  process memory: peak {peak_minute:.0f} MiB after 1 min, {samples[-1][2]:.0f} MiB at the end "
              f"({samples[-1][0]:.0f} s); resident at the end {samples[-1][1]:.0f} MiB")  # fmt: skip
    if "stream" in outputs and (work / "received.mkv").exists():
        frames = subprocess.run(
            ["ffprobe", "-v", "error", "-count_packets", "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0",
             str(work / "received.mkv")], capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        print(f"  RTMP receiver got {frames} frames")
    if args.web:
        web = subprocess.run([sys.executable, "-m", "enliven.live.web.bench", "--seconds", str(args.web_seconds)],
                             cwd=ROOT, capture_output=True, text=True)  # fmt: skip
        print(web.stdout.rstrip() or web.stderr.rstrip())
    print(f"load average after: {os.getloadavg()}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
