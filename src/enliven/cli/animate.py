"""``enliven animate SOURCE DRIVING -o OUT``: animate a photo with a driving video."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING

from enliven.cli.arguments import add_animation_options, options_from_args

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
    add_animation_options(p)
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

    from enliven.inference import animate_file

    worker: FaceWorker | None = getattr(args, "face_worker", None)  # from start_face_worker, run first by the CLI

    options = options_from_args(args)
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
