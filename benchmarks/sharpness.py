"""How much of a photo's fine texture the pasted-back animation keeps, per model: the README command's photo and the
portraits of ``../shared/data`` (faces, source images), each driven by the bundled GRID clip.

Sharpness is the variance of the Laplacian of the grey level in the photo's face box (MediaPipe's detection), output
frame over photo, averaged over the frames (:func:`enliven.evaluate.metrics.laplacian_energy`): 1 keeps all of it.
The outputs are the MP4 files the command writes (H.264 at enliven's default quality), so the codec is included.

    python benchmarks/sharpness.py --models enliven-lite,enliven-lite-2 --frames 25
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from enliven.errors import NoFaceError
from enliven.evaluate.metrics import laplacian_energy
from enliven.inference import AnimateOptions, animate_file
from enliven.io import VideoSource, read_image
from enliven.preprocess import FaceDetector

REPO = Path(__file__).resolve().parents[1]


def portraits(shared: Path) -> list[Path]:
    """The bundled astronaut first, then every face source image of the shared data's manifest."""
    found = [REPO / "assets" / "source-astronaut.jpg"]
    manifest = shared / "data" / "manifest.csv"
    if manifest.is_file():
        with manifest.open(newline="") as rows:
            for row in csv.DictReader(rows):
                path = shared / "data" / row["file"]
                if row["kind"] == "faces" and row["role"] == "source_image" and path.is_file():
                    found.append(path)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="enliven-lite,enliven-lite-2")
    parser.add_argument("--frames", type=int, default=25, help="driving frames per photo (default 25)")
    parser.add_argument("--max-photos", type=int, default=None)
    parser.add_argument(
        "--no-detail",
        action="store_true",
        help="paste back the model's 256 px output enlarged, as before enliven-lite 2 (the photo's own pixels unused)",
    )
    args = parser.parse_args()
    if args.no_detail:
        import enliven.inference.animate as animate_module

        animate_module.detail_crop = lambda *_: None
    shared = Path(os.environ.get("ENLIVEN_SHARED_DIR", REPO.parent / "shared"))
    photos = portraits(shared)[: args.max_photos]
    models = args.models.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip"
        clip.mkdir()
        for index, frame in enumerate(VideoSource(REPO / "assets" / "driving-grid-bbaf2n.mpg")):
            if index == args.frames:
                break
            Image.fromarray(frame).save(clip / f"{index:04d}.png")
        ratios: dict[str, list[float]] = {m: [] for m in models}
        skipped = 0
        with FaceDetector() as detector:
            for number, photo_path in enumerate(photos):
                photo = read_image(photo_path)
                faces = detector.detect(photo)
                if not faces:
                    skipped += 1
                    continue
                box = faces[0].box.to_int()
                region = (max(0, box.x0), max(0, box.y0), min(photo.shape[1], box.x1), min(photo.shape[0], box.y1))
                reference = laplacian_energy(photo, region)[0]
                row = []
                try:
                    for model in models:
                        out = Path(tmp) / f"{model}.mp4"
                        animate_file(photo_path, clip, out, AnimateOptions(model=model, paste_back=True))
                        frames = np.stack(list(VideoSource(out)))
                        ratio = float(laplacian_energy(frames, region).mean() / reference)
                        ratios[model].append(ratio)
                        row.append(f"{model} {ratio:.2f}")
                except NoFaceError as err:  # a face too small to animate (or none the crop finds)
                    for model in models[: len(row)]:
                        ratios[model].pop()
                    skipped += 1
                    print(f"{number:3d} {photo_path.name}: skipped ({err})", file=sys.stderr)
                    continue
                print(f"{number:3d} {photo_path.name}: " + ", ".join(row), file=sys.stderr)
    print("| model | photos | sharpness: README photo | mean | median | min | share >= 0.9 |")
    print("|---|---|---|---|---|---|---|")
    for model, values in ratios.items():
        v = np.array(values)
        print(
            f"| {model} | {len(v)} | {v[0]:.3f} | {v.mean():.3f} | {np.median(v):.3f} | {v.min():.3f} | "
            f"{(v >= 0.9).mean():.0%} |"
        )
    print(f"{skipped} photos skipped (no usable face); {args.frames} driving frames each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
