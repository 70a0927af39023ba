"""``enliven bench``: per-stage milliseconds per frame, fps, GFLOP and peak memory of models, side by side."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from enliven.backends import backend_names
from enliven.cli.arguments import positive_int

_DEFAULT_MODELS = "enliven-lite,enliven-lite-2,fomm-vox,tpsmm-vox"


def _names(allowed: tuple[str, ...] | None = None) -> Callable[[str], tuple[str, ...]]:
    """An argparse type: a comma-separated list of names, each one of ``allowed`` when given."""

    def parse(text: str) -> tuple[str, ...]:
        names = tuple(name.strip() for name in text.split(",") if name.strip())
        if not names:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
        for name in names:
            if allowed is not None and name not in allowed:
                raise argparse.ArgumentTypeError(f"unknown name {name!r}; choose from {', '.join(allowed)}")
        return tuple(dict.fromkeys(names))  # duplicates once, order kept

    return parse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="time models per stage (ms per frame, fps), with GFLOP and peak memory",
        description="Animate the same driving frames (the bundled clip, cropped to the face and decoded before "
        "timing) one at a time with each model on each backend, and print one Markdown table: milliseconds per "
        "frame for pre-processing, driving keypoints, dense motion, generator and post-processing, the total and "
        "frames per second, source encoding, GFLOP and peak memory. Presets whose weights are not installed run "
        "with random weights (speed does not depend on them). Each model and backend runs in a fresh process.",
    )
    p.add_argument(
        "--models",
        type=_names(),
        default=_names()(_DEFAULT_MODELS),
        help=f"comma-separated model names (see 'enliven models') or files (default {_DEFAULT_MODELS})",
    )
    p.add_argument(
        "--backend",
        type=_names(tuple(backend_names())),
        default=("torch", "onnx"),
        help="comma-separated backends: torch, onnx (onnxruntime), tflite, tflite-fp16, tflite-int8 (LiteRT), "
        "tensorflow (the converted ones exported and cached on first use) (default torch,onnx)",
    )
    p.add_argument("--threads", type=positive_int, default=2, help="PyTorch and runtime threads (default 2)")
    p.add_argument("--frames", type=positive_int, default=50, help="timed frames per model and backend (default 50)")
    p.add_argument("--warmup", type=positive_int, default=5, help="untimed frames before them (default 5)")
    p.add_argument("--size", type=positive_int, default=256, help="side of the square frames (default 256)")
    p.add_argument(
        "--source",
        type=Path,
        default=None,
        help="source photo: a face, or a person for body models (default: the bundled astronaut)",
    )
    p.add_argument(
        "--driving", type=Path, default=None, help="driving clip: a face, or a person (default: the bundled GRID clip)"
    )
    p.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="also write every number as JSON")
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run everything in this process (faster to start; peak memory figures then mix)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from enliven.errors import OutputError
    from enliven.pipelines.bench import DEFAULT_DRIVING, DEFAULT_SOURCE, BenchOptions, run_bench

    if args.json is not None and not args.json.expanduser().parent.is_dir():
        raise OutputError(f"the folder of --json {args.json} does not exist; create it or choose another path.")
    options = BenchOptions(
        models=args.models,
        backends=args.backend,
        threads=args.threads,
        frames=args.frames,
        warmup=args.warmup,
        size=args.size,
        source=args.source or DEFAULT_SOURCE,
        driving=args.driving or DEFAULT_DRIVING,
        isolate=not args.in_process,
    )
    report = run_bench(options, progress=None if args.quiet else lambda line: print(line, file=sys.stderr))
    print(report.to_markdown())
    if args.json is not None:
        print(f"wrote {report.write_json(args.json.expanduser())}", file=sys.stderr)
    return 0
