"""``enliven data``: look at and complete training data.

``enliven data preview DATASET -o sheet.png`` draws augmented pairs; ``enliven data landmarks DATASET`` stores the
face-mesh landmarks of every frame beside each clip (needed by models trained on landmarks); ``enliven data pack
DATASET OUTPUT`` writes the dataset with each clip as one mp4, to carry it to another machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from enliven.cli.arguments import positive_int
from enliven.types import LandmarkKind


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="inspect training datasets",
        description="Inspect training datasets in the FOMM layout (as written by 'enliven prepare').",
    )
    commands = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    preview = commands.add_parser(
        "preview",
        help="write a contact sheet of augmented training pairs",
        description="Draw training pairs (source | driving, one pair per row, labelled with clip, identity and "
        "frame numbers) exactly as the training loader delivers them, augmentation included.",
        epilog="example: enliven data preview ~/enliven-data/faces -o sheet.png --pairs 8 --seed 1",
    )
    preview.add_argument("dataset", type=Path, metavar="DATASET", help="dataset folder (FOMM layout)")
    preview.add_argument("-o", "--output", type=Path, required=True, help="the sheet to write (.png or .jpg)")
    preview.add_argument(
        "--config",
        type=Path,
        default=None,
        help="augmentation YAML (ours or FOMM's; default: the packaged augmentation.yaml)",
    )
    preview.add_argument("--pairs", type=positive_int, default=8, help="number of pairs (rows, default 8)")
    preview.add_argument("--seed", type=int, default=0, help="picks the pairs and their augmentation (default 0)")
    preview.add_argument("--split", default="train", help="split to draw from (default train)")
    preview.add_argument("--size", type=positive_int, default=256, help="frame side in pixels (default 256)")
    preview.set_defaults(handler=_preview)
    landmarks = commands.add_parser(
        "landmarks",
        help="store MediaPipe face-mesh (or pose) landmarks beside every clip",
        description="Run MediaPipe's face mesh on every stored frame of every clip and write "
        "<split>/<clip>.face_mesh.npy (468 landmarks per frame, NaN where no face was found); with --kind pose, "
        "MediaPipe's pose and <split>/<clip>.pose.npy (33 body landmarks per frame, NaN where nobody was found). "
        "Runs resume: complete landmark files are kept.",
        epilog="examples: enliven data landmarks ~/enliven-data/faces --workers 2\n"
        "          enliven data landmarks ~/enliven-data/bodies --kind pose --workers 2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    landmarks.add_argument("dataset", type=Path, metavar="DATASET", help="dataset folder (FOMM layout)")
    landmarks.add_argument(
        "--kind",
        choices=[kind.value for kind in LandmarkKind],
        default=LandmarkKind.FACE_MESH.value,
        help="face_mesh (faces, the default) or pose (bodies)",
    )
    landmarks.add_argument("--workers", type=positive_int, default=1, help="parallel processes (default 1)")
    landmarks.add_argument(
        "--splits", type=_split_list, default=None, help="comma-separated splits (default: every split)"
    )
    landmarks.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    landmarks.set_defaults(handler=_landmarks)
    pack = commands.add_parser(
        "pack",
        help="write a dataset with each frame-folder clip as one mp4, to carry it to another machine",
        description="Copy a prepared dataset to a new folder with every clip stored as a folder of frames written as "
        "one H.264 mp4 (CRF 18; a few percent of the PNGs' size), its landmark sidecars (in half precision: at most "
        "1/16 px off) and metadata.json alongside: "
        "'enliven train' and 'enliven eval' read the packed folder as they read the original. Clips already stored "
        "as videos are copied. The new folder appears only when complete.",
        epilog="example: enliven data pack ~/enliven-data/faces faces-packed --splits train,val",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pack.add_argument("dataset", type=Path, metavar="DATASET", help="dataset folder (FOMM layout)")
    pack.add_argument("output", type=Path, metavar="OUTPUT", help="the packed dataset's folder (new, or empty)")
    pack.add_argument("--splits", type=_split_list, default=None, help="comma-separated splits (default: every split)")
    pack.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    pack.set_defaults(handler=_pack)


def _split_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected split names such as train,val,test, got {text!r}")
    return names


def _landmarks(args: argparse.Namespace) -> int:
    from enliven.prepare.landmarks import add_landmarks

    summary = add_landmarks(
        args.dataset, splits=args.splits, workers=args.workers, progress=args.progress, kind=LandmarkKind(args.kind)
    )
    print(summary.line())
    return 1 if summary.failed else 0


def _pack(args: argparse.Namespace) -> int:
    from enliven.prepare.pack import pack_dataset

    summary = pack_dataset(args.dataset, args.output, tuple(args.splits or ()), progress=args.progress)
    print(
        f"Packed {summary.clips} clips ({summary.frames} frames) into {summary.output}: "
        f"{summary.bytes_out / 2**20:.1f} MiB from {summary.bytes_in / 2**20:.1f} MiB."
    )
    return 0


def _preview(args: argparse.Namespace) -> int:
    from enliven.data.config import load_augmentation
    from enliven.data.preview import PreviewRequest, write_preview

    request = PreviewRequest(
        dataset=args.dataset,
        output=args.output,
        augmentation=load_augmentation(args.config),
        pairs=args.pairs,
        seed=args.seed,
        split=args.split,
        size=args.size,
    )
    path = write_preview(request)
    print(f"Wrote {args.pairs} augmented pairs from {args.dataset} to {path}.")
    return 0
