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
    python benchmarks/animate_cost.py --source PERSON.png --driving DANCE.mp4 --variant 'body=.;--model enliven-body'

``--source`` and ``--driving`` replace the bundled photo and clip (the clip's frames, then played twice).

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

from enliven.io import read_frames

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "assets" / "source-astronaut.jpg"
DRIVING = ROOT / "assets" / "driving-grid-bbaf2n.mpg"


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


def _clips(folder: Path, driving: Path) -> dict[int, Path]:
    """The driving clip once and played twice (N and 2N frames, audio too when it has some), both encoded the same
    way, so that decoding costs the same per frame in both (the ffmpeg that enliven uses)."""
    from enliven.io.ffmpeg import run_ffmpeg
    from enliven.io.media import probe

    info = probe(driving)
    codec = ["-c:v", "libx264", "-crf", "12", *(["-c:a", "aac"] if info.has_audio else [])]
    once, twice = folder / "driving-once.mp4", folder / "driving-twice.mp4"
    run_ffmpeg("-i", str(driving), *codec, str(once))
    if info.has_audio:
        graph, streams = "[0:v][0:v]concat=n=2:v=1[v];[0:a][0:a]concat=n=2:v=0:a=1[a]", ["-map", "[v]", "-map", "[a]"]
    else:
        graph, streams = "[0:v][0:v]concat=n=2:v=1[v]", ["-map", "[v]"]
    run_ffmpeg("-i", str(driving), "-filter_complex", graph, *streams, *codec, str(twice))
    frames = len(read_frames(once))
    return {frames: once, 2 * frames: twice}


def _time(variant: Variant, source: Path, driving: Path, output: Path) -> float:
    path = os.pathsep.join([str(variant.checkout / "src"), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, **dict(variant.env), PYTHONPATH=path)
    command = [
        sys.executable,
        "-m",
        "enliven",
        "animate",
        str(source),
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
    parser.add_argument("--source", type=Path, default=SOURCE, help="photo (default: the bundled astronaut)")
    parser.add_argument("--driving", type=Path, default=DRIVING, help="clip (default: the bundled GRID clip)")
    args = parser.parse_args()
    variants = args.variant or [Variant("this", ROOT, ())]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clips = _clips(folder, args.driving)
        frames_once = min(clips)
        load_before = os.getloadavg()
        times: dict[tuple[str, int], list[float]] = {}
        for variant in variants:  # warm-up: file caches, first-run exports
            _time(variant, args.source, args.driving, folder / "warmup.mp4")
        for _ in range(args.rounds):
            for variant in variants:
                for frames, clip in clips.items():
                    seconds = _time(variant, args.source, clip, folder / "out.mp4")
                    times.setdefault((variant.name, frames), []).append(seconds)
        load_after = os.getloadavg()
    print(
        f"{os.cpu_count()} CPUs; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
        f"{args.rounds} rounds, medians (min-max)"
    )
    print(f"| variant | {frames_once} frames s | {2 * frames_once} frames s | per frame ms | start-up s |")
    print("|---|---|---|---|---|")
    for variant in variants:
        short, long = times[(variant.name, frames_once)], times[(variant.name, 2 * frames_once)]
        per_frame = [(b - a) / frames_once for a, b in zip(short, long, strict=True)]
        startup = [a - frames_once * p for a, p in zip(short, per_frame, strict=True)]

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
