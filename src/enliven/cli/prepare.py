"""``enliven prepare``: build a training dataset (FOMM layout) from videos, frame folders and manifests.

The project's face set, from the shared data and outside the repository::

    enliven prepare ../shared/data/manifest.csv ~/enliven-data/faces --kind faces --size 256 --workers 2
"""

from __future__ import annotations

import argparse
import sys

from enliven.cli.arguments import positive_float, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prepare",
        help="build a training dataset from videos, frame folders or manifest CSVs",
        description="Clean, crop and split videos into a dataset in the FOMM layout (OUT/train/<clip>/000000.png, "
        "OUT/val, OUT/test, OUT/metadata.json). Runs resume: finished clips are kept and skipped.",
        epilog="example: enliven prepare ../shared/data/manifest.csv ~/enliven-data/faces --kind faces --size 256 "
        "--workers 2",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="folders of videos or frames, videos, manifest CSVs")
    p.add_argument("out", metavar="OUT", help="dataset folder to create or resume")
    p.add_argument(
        "--kind",
        choices=("faces", "bodies", "any"),
        default="faces",
        help="faces: tracked face crop with hair and chin; bodies: person box from pose; any: fixed crop",
    )
    p.add_argument("--size", type=positive_int, default=256, help="output side in pixels (default 256)")
    p.add_argument("--fps", type=positive_float, default=None, help="resample videos to this frame rate")
    p.add_argument("--max-frames", type=positive_int, default=None, help="read at most N frames of each input")
    p.add_argument("--min-frames", type=positive_int, default=16, help="drop inputs and shots shorter than N frames")
    p.add_argument("--workers", type=positive_int, default=1, help="parallel processes (default 1)")
    p.add_argument("--split", default="0.8,0.1,0.1", help="train,val,test shares of frames (default 0.8,0.1,0.1)")
    p.add_argument("--seed", type=int, default=0, help="breaks ties in the split order")
    p.add_argument(
        "--format",
        dest="output_format",
        choices=("png", "mp4"),
        default="png",
        help="write each clip as a folder of PNG frames (default) or one mp4",
    )
    p.add_argument(
        "--any-crop",
        choices=("center", "full"),
        default="center",
        help="with --kind any: centre square (default) or the whole frame padded to a square",
    )
    p.add_argument(
        "--manifest-kind",
        action="append",
        default=None,
        metavar="KIND",
        help="manifest kind to read (repeatable; default: the --kind, every row for any)",
    )
    p.add_argument("--use-extra", action="store_true", help="also use manifest rows whose split is 'extra'")
    p.add_argument(
        "--detect-every",
        type=positive_int,
        default=2,
        help="run the face/pose detector on every N-th frame (default 2)",
    )
    p.add_argument(
        "--no-landmarks",
        dest="landmarks",
        action="store_false",
        help="do not store MediaPipe landmarks beside each clip (face mesh with --kind faces, pose with --kind bodies)",
    )
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    p.set_defaults(handler=run)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from enliven.prepare import prepare_dataset

    try:
        summary = prepare_dataset(
            args.inputs, args.out, args.kind, args.size, fps=args.fps, max_frames=args.max_frames,
            min_frames=args.min_frames, workers=args.workers, split=args.split, seed=args.seed,
            output_format=args.output_format, any_crop=args.any_crop, manifest_kinds=args.manifest_kind,
            use_extra=args.use_extra, detect_every=args.detect_every, landmarks=args.landmarks,
            progress=args.progress,
        )  # fmt: skip
    except KeyboardInterrupt:
        print(f"enliven: interrupted; finished clips are kept in {args.out}, run the same command to resume.",
              file=sys.stderr)  # fmt: skip
        return 130
    print(format_summary(summary))
    return 0


def format_summary(summary) -> str:
    """The printed report: clips, identities and frames per split, then skip reasons."""
    lines = [
        f"Prepared {summary.out} in {summary.seconds:.0f} s "
        f"({summary.processed} inputs processed, {summary.resumed} already done).",
        f"  {'split':<6} {'clips':>6} {'identities':>10} {'frames':>8}",
    ]
    for name, counts in [*summary.splits.items(), ("total", summary.total)]:
        lines.append(f"  {name:<6} {counts.clips:>6} {counts.identities:>10} {counts.frames:>8}")
    if summary.skipped:
        by_reason = ", ".join(f"{n} {reason}" for reason, n in sorted(summary.reasons.items(), key=lambda kv: -kv[1]))
        lines.append(f"Skipped {len(summary.skipped)} inputs: {by_reason}.")
    if summary.dropped:
        lines.append(f"Dropped {len(summary.dropped)} shots of kept inputs.")
    if summary.landmarks is not None:
        lines.append(summary.landmarks.line())
    if summary.skipped or summary.dropped:
        lines.append(f"Every skipped input and dropped shot, with its reason: {summary.out / 'prepare.log'}")
    return "\n".join(lines)
