"""``enliven eval --model M --data DATASET``: score a model beside the static and mesh-warp baselines."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from enliven.cli.arguments import add_device_argument, add_threads_argument, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a model (FOMM reconstruction protocol or cross-identity animation) beside two baselines",
        description="Evaluate a model on one split of a FOMM-layout dataset. reconstruction (the published protocol): "
        "each clip's first frame is animated by the clip and compared with it (L1, PSNR, SSIM, AKD, MKR, AED). "
        "animation: each clip's first frame is driven by another identity's clip (identity distance, correlation "
        "of mouth, eye and head motion). A static baseline (the source repeated) and a mesh warp (no learning) are "
        "scored on the same clips.",
        epilog="example: enliven eval --model fomm-vox --data ~/enliven-data/faces --split test --report reports/vox",
    )
    p.add_argument("--model", default=None, help="model name (see 'enliven models') or checkpoint path")
    p.add_argument("--config", default=None, help="YAML config of an authors' FOMM/TPSMM checkpoint")
    p.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="MODEL",
        help="another model scored on the same clips in the same table (e.g. enliven-lite-2); repeatable",
    )
    p.add_argument(
        "--backend",
        default="torch",
        help="run --model and --compare models on this backend (torch, onnx, tflite, tflite-fp16, tflite-int8, "
        "tensorflow; exported and cached on first use); export folders passed as models run on their own runtime",
    )
    p.add_argument("--data", type=Path, required=True, metavar="DATASET", help="dataset folder (FOMM layout)")
    p.add_argument("--split", default="test", help="split to evaluate (default test)")
    p.add_argument(
        "--protocol",
        choices=("reconstruction", "animation", "motion"),
        default="reconstruction",
        help="what to measure; motion: the motion VAE (realism, conditioning, diversity, smoothness, reconstruction "
        "of the split's landmark motion; --model renders the strips)",
    )
    p.add_argument("--motion-model", default=None, help="with --protocol motion: a motion VAE file (default bundled)")
    p.add_argument("--report", type=Path, default=None, metavar="DIR", help="write results.json, report.md, plots")
    p.add_argument("--max-clips", type=positive_int, default=None, help="at most this many clips, spread evenly")
    p.add_argument(
        "--clips",
        action="append",
        default=[],
        metavar="PATTERN",
        help="only the clips whose names match this shell pattern, e.g. 'MGif_*' (repeatable)",
    )
    p.add_argument("--max-frames", type=positive_int, default=None, help="at most the first N frames of each clip")
    p.add_argument(
        "--landmarks",
        choices=("dlib68", "mesh", "pose", "none"),
        default=None,
        help="keypoints for AKD/MKR (default: dlib68 for faces, pose for bodies)",
    )
    p.add_argument(
        "--identity-every",
        type=positive_int,
        default=4,
        metavar="N",
        help="identity embeddings on every N-th frame (default 4; 1 is the published protocol, ~80 ms a frame)",
    )
    p.add_argument("--no-baselines", dest="baselines", action="store_false", help="evaluate the model only")
    p.add_argument(
        "--find-best-frame",
        action="store_true",
        help="animation: every method's relative motion starts from the driving frame posed most like the source "
        "(by --landmarks), as enliven animate does for a body model, instead of the clip's first (FOMM's protocol)",
    )
    p.add_argument("--samples", type=int, default=3, help="clips drawn as sample strips (default 3)")
    add_device_argument(p)
    add_threads_argument(p)
    p.add_argument("--batch-size", type=positive_int, default=8, help="driving frames per model call")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.protocol == "motion":
        return run_motion(args)
    from enliven.evaluate import EvaluationOptions, LandmarkSet, evaluate, write_report
    from enliven.evaluate.report import summary_table
    from enliven.weights.presets import DEFAULT_MODEL

    options = EvaluationOptions(
        max_clips=args.max_clips,
        clips=tuple(args.clips),
        max_frames=args.max_frames,
        device=args.device,
        batch_size=args.batch_size,
        landmarks=LandmarkSet(args.landmarks) if args.landmarks else None,
        identity_every=args.identity_every,
        samples=max(0, args.samples),
        baselines=args.baselines,
        find_best_frame=args.find_best_frame,
    )
    model = args.model if args.model is not None else DEFAULT_MODEL
    compare = list(args.compare)
    if args.backend != "torch":
        from enliven.backends import get_backend
        from enliven.export.manifest import is_export_folder

        backend = get_backend(args.backend)
        backend.check(device=args.device)

        def on_backend(name):
            return name if is_export_folder(name) else backend.load(name, args.config, threads=args.threads)

        model, compare = on_backend(model), [on_backend(name) for name in compare]
    result = evaluate(
        model,
        args.data,
        args.split,
        args.protocol,
        options,
        config=args.config,
        compare=compare,
        progress=not args.quiet,
    )
    if result.untrained:
        print("enliven: warning: the model has random weights; its scores are not a real model's.", file=sys.stderr)
    print(summary_table(result))
    frames = result.methods[0].frames
    print(f"{result.num_clips} clips, {frames} frames, {result.protocol.value}, {result.seconds:.1f} s")
    for skipped in result.skipped:
        print(f"skipped {skipped.title}: {skipped.reason}")
    if args.report is not None:
        path = write_report(result, args.report)
        print(f"wrote {path}/report.md and results.json")
    return 0


def run_motion(args: argparse.Namespace) -> int:
    """``--protocol motion``: the motion VAE's table (see :mod:`enliven.evaluate.motion`)."""
    import time

    from enliven.evaluate.motion import evaluate_motion

    started = time.perf_counter()
    result = evaluate_motion(args.data, args.split, args.motion_model, render_model=args.model, report=args.report)
    print(result.table())
    print(f"{args.split} split, {time.perf_counter() - started:.0f} s")
    if args.report is not None:
        print(f"wrote {args.report}/report.md and results.json")
    return 0
