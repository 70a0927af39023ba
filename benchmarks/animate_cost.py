"""Per-frame cost and start-up of ``enliven animate``, end to end, as a user runs it; checkouts side by side.

Each variant animates the bundled photo with the bundled 75-frame GRID clip and with the same clip played twice
(150 frames; both re-encoded alike), with ``--paste-back``, as a whole ``python -m enliven animate`` process. The
difference of the two wall times, divided by 75, is the per-frame cost (start-up cancels); start-up is the 75-frame
time less 75 frames.
Variants run in turn (A75 A150 B75 B150, A75 ...) so that a drift of the machine's speed hits all of them alike;
medians over the rounds are printed, with the load average before and after.

    python benchmarks/animate_cost.py                                   # this checkout
    python benchmarks/animate_cost.py --variant old=../old --variant new=.
    python benchmarks/animate_cost.py --variant 't1=.;--threads 1' --variant 't2=.;--threads 2'

A variant is ``NAME=CHECKOUT[;EXTRA ARGS[;VAR=VALUE ...]]``: CHECKOUT's ``src`` goes first on ``PYTHONPATH`` (the
same virtual environment runs every variant), EXTRA ARGS are added to the command, VAR=VALUE to its environment.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "assets" / "source-astronaut.jpg"
DRIVING = ROOT / "assets" / "driving-grid-bbaf2n.mpg"
FRAMES = 75


@dataclass(frozen=True)
class Variant:
    name: str
    checkout: Path
    extra: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Variant:
        name, _, rest = text.partition("=")
        path, _, rest = rest.partition(";")
        extra, _, env = rest.partition(";")
        if not name or not path:
            raise argparse.ArgumentTypeError(f"expected NAME=CHECKOUT[;ARGS[;VAR=VALUE ...]], got {text!r}")
        pairs = tuple(tuple(item.split("=", 1)) for item in shlex.split(env))
        return cls(name, Path(path).resolve(), tuple(shlex.split(extra)), pairs)  # type: ignore[arg-type]


def _clips(folder: Path) -> dict[int, Path]:
    """The driving clip once and played twice (75 and 150 frames, audio too), both encoded the same way, so that
    decoding costs the same per frame in both (the ffmpeg that enliven uses)."""
    from enliven.io.ffmpeg import run_ffmpeg

    codec = ["-c:v", "libx264", "-crf", "12", "-c:a", "aac"]
    once, twice = folder / "driving-75.mp4", folder / "driving-150.mp4"
    run_ffmpeg("-i", str(DRIVING), *codec, str(once))
    graph = "[0:v][0:v]concat=n=2:v=1[v];[0:a][0:a]concat=n=2:v=0:a=1[a]"
    run_ffmpeg("-i", str(DRIVING), "-filter_complex", graph, "-map", "[v]", "-map", "[a]", *codec, str(twice))
    return {FRAMES: once, 2 * FRAMES: twice}


def _time(variant: Variant, driving: Path, output: Path) -> float:
    path = os.pathsep.join([str(variant.checkout / "src"), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, **dict(variant.env), PYTHONPATH=path)
    command = [
        sys.executable,
        "-m",
        "enliven",
        "animate",
        str(SOURCE),
        str(driving),
        "-o",
        str(output),
        "--paste-back",
        "-q",
        *variant.extra,
    ]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{variant.name} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", type=Variant.parse, action="append", help="NAME=CHECKOUT[;EXTRA ARGS]")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every variant (default 5)")
    args = parser.parse_args()
    variants = args.variant or [Variant("this", ROOT, ())]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clips = _clips(folder)
        load_before = os.getloadavg()
        times: dict[tuple[str, int], list[float]] = {}
        for variant in variants:  # warm-up: file caches, first-run exports
            _time(variant, DRIVING, folder / "warmup.mp4")
        for _ in range(args.rounds):
            for variant in variants:
                for frames, clip in clips.items():
                    times.setdefault((variant.name, frames), []).append(_time(variant, clip, folder / "out.mp4"))
        load_after = os.getloadavg()
    print(
        f"{os.cpu_count()} CPUs; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
        f"{args.rounds} rounds, medians (min-max)"
    )
    print("| variant | 75 frames s | 150 frames s | per frame ms | start-up s |")
    print("|---|---|---|---|---|")
    for variant in variants:
        short, long = times[(variant.name, FRAMES)], times[(variant.name, 2 * FRAMES)]
        per_frame = [(b - a) / FRAMES for a, b in zip(short, long, strict=True)]
        startup = [a - FRAMES * p for a, p in zip(short, per_frame, strict=True)]

        def fmt(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
            return (
                f"{statistics.median(values) * scale:.{digits}f} ({min(values) * scale:.{digits}f}-"
                f"{max(values) * scale:.{digits}f})"
            )

        print(
            f"| {variant.name} {' '.join(variant.extra)} | {fmt(short)} | {fmt(long)} | {fmt(per_frame, 1000, 1)} "
            f"| {fmt(startup)} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
