"""``enliven animate SOURCE DRIVING -o OUT``: animate a photo with a driving video."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING

from enliven.backends import backend_names
from enliven.cli.arguments import add_device_argument, add_threads_argument, model_size, positive_int

if TYPE_CHECKING:
    from enliven.inference.face_worker import FaceWorker


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "animate",
        help="animate a source image with the motion of a driving video",
        description="Animate SOURCE (an image) with the motion of DRIVING (a video, gif or folder of frames). "
        "OUT is an .mp4, .webm or .gif file, or a folder of PNG frames when it ends with '/'.",
    )
    p.add_argument("source", help="source image (jpg, png, webp, ...)")
    p.add_argument("driving", help="driving video (mp4, avi, mov, mkv, webm, gif, mpg) or folder of frames")
    p.add_argument("-o", "--output", required=True, help="output file, or folder ending with '/' for PNG frames")
    p.add_argument("--model", default=None, help="model name (see 'enliven models') or checkpoint path")
    p.add_argument("--config", default=None, help="YAML config of an authors' FOMM/TPSMM checkpoint")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--relative",
        dest="mode",
        action="store_const",
        const="relative",
        help="move the source by the driving motion relative to a reference frame (default)",
    )
    mode.add_argument(
        "--absolute", dest="mode", action="store_const", const="absolute", help="use the driving keypoints as they are"
    )
    mode.add_argument(
        "--avd", dest="mode", action="store_const", const="avd", help="TPSMM's animation-via-disentanglement network"
    )
    p.set_defaults(mode="relative")
    p.add_argument(
        "--adapt-scale",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="scale the movement to the source's proportions (relative mode; default on)",
    )
    p.add_argument(
        "--find-best-frame",
        action="store_true",
        help="take as reference the driving frame whose face best matches the source",
    )
    p.add_argument(
        "--crop",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="crop the face (face models) or pad to a square (others); --no-crop takes inputs as they "
        "are, resized to the model's size (default on)",
    )
    p.add_argument(
        "--smooth-track",
        action="store_true",
        help="follow the driving face with a smoothed track instead of one stable box",
    )
    p.add_argument(
        "--paste-back", action="store_true", help="blend the animation back into the full-resolution source photo"
    )
    p.add_argument(
        "--size", type=model_size, default=None, help="side of the square the model runs at (multiple of 16)"
    )
    add_device_argument(p)
    add_threads_argument(p)
    p.add_argument("--batch-size", type=positive_int, default=1, help="driving frames per model call (default 1)")
    p.add_argument(
        "--backend",
        choices=backend_names(),
        default="torch",
        help="run the model with PyTorch, or with onnxruntime on the CPU (exported and cached on first use; "
        "relative and absolute modes; needs the 'export' extra) (default torch)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="animate the source's face even when it is too small a part of the image (a body or a scene), "
        "which a face model refuses by default",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run, before_torch=start_face_worker)


def start_face_worker(args: argparse.Namespace) -> contextlib.AbstractContextManager[object]:
    """Start the face worker (it finds the faces while this process imports torch); the CLI closes it after ``run``."""
    from enliven.inference.face_worker import FaceWorker, worker_applies

    args.face_worker = None
    if worker_applies(args.source, args.driving, crop=args.crop, find_best_frame=args.find_best_frame):
        args.face_worker = FaceWorker.start(
            args.source, args.driving, smooth_track=args.smooth_track, any_face=args.force
        )
        return args.face_worker
    return contextlib.nullcontext()


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from enliven.inference import AnimateOptions, animate_file
    from enliven.types import MotionMode

    worker: FaceWorker | None = getattr(args, "face_worker", None)  # from start_face_worker, run first by the CLI

    options = AnimateOptions(
        model=args.model,
        config=args.config,
        mode=MotionMode(args.mode),
        adapt_scale=args.adapt_scale,
        find_best_frame=args.find_best_frame,
        crop=args.crop,
        smooth_track=args.smooth_track,
        paste_back=args.paste_back,
        size=args.size,
        device=args.device,
        batch_size=args.batch_size,
        backend=args.backend,
        threads=args.threads,
        force=args.force,
    )
    bar: tqdm | None = None  # made at the first frame, so that an error before it prints no empty bar

    def progress(done: int, total: int | None) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="frame", desc="animating")
        bar.update(done - bar.n)

    try:
        result = animate_file(
            args.source,
            args.driving,
            args.output,
            options,
            on_progress=None if args.quiet else progress,
            face_worker=worker,
        )
    finally:
        if bar is not None:
            bar.close()
    if result.untrained_model:
        print(
            "enliven: warning: the model has random weights (no trained default model is installed yet); "
            "pass --model with a trained checkpoint for a real animation.",
            file=sys.stderr,
        )
    rate = result.frames / result.seconds if result.seconds > 0 else 0.0
    best = f", reference frame {result.best_frame}" if result.best_frame is not None else ""
    print(
        f"wrote {result.output} ({result.frames} frames at {result.fps:g} fps{best}; "
        f"{result.seconds:.1f} s, {rate:.1f} frames/s overall)"
    )
    return 0
