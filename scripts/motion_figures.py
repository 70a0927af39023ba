"""Draw the README's generated-motion and edit figures (``docs/images/motion-*.jpg``) with the bundled models.

    python scripts/motion_figures.py [--out docs/images]

``motion-generated.jpg``: one row per label (4 s of motion, seed 0, 8 frames evenly spaced) rendered by enliven-lite
on the bundled portrait; ``motion-edits.jpg``: the portrait at rest under each expression and pose control.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from enliven.examples import EXAMPLE_SOURCE
from enliven.inference.animator import Animator
from enliven.inference.cropper import FaceCropper
from enliven.inference.driving import read_source
from enliven.inference.motion import motion_keypoints
from enliven.motion.edits import ExpressionEdit
from enliven.motion.generator import MotionGenerator
from enliven.motion.sequence import FaceMotion
from enliven.weights import load_model

TILE = 160


def labelled(tiles: list[np.ndarray], title: str) -> np.ndarray:
    row = Image.fromarray(np.concatenate([np.asarray(Image.fromarray(t).resize((TILE, TILE))) for t in tiles], 1))
    ImageDraw.Draw(row).text((6, 4), title, fill=(255, 255, 0))
    return np.asarray(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    generator = MotionGenerator.from_pretrained()
    with Animator(load_model(None).model, device="cpu") as animator, FaceCropper(animator.size) as cropper:
        animator.set_source(cropper.crop_source(read_source(EXAMPLE_SOURCE), "the photo").image)

        def render(motion: FaceMotion, edit: ExpressionEdit | None = None, picks: np.ndarray | None = None) -> list:
            points, reference = motion_keypoints(motion, animator.size, edit)
            animator.set_reference_keypoints(reference)
            picks = np.arange(len(points)) if picks is None else picks
            return list(animator.animate_keypoints(points[picks]))

        rows = []
        for label in ("none", "idle", "happy", "surprised", "sad", "angry"):
            motion = generator.sample(4.0, None if label == "none" else label, seed=0)
            picks = np.linspace(0, len(motion) - 1, 8).round().astype(int)
            rows.append(labelled(render(motion, picks=picks), label if label != "none" else "unlabelled"))
        Image.fromarray(np.concatenate(rows, 0)).save(out / "motion-generated.jpg", quality=88)

        rest = FaceMotion(np.zeros((1, 6), np.float32), np.zeros((1, 468, 2), np.float32), 25.0)
        edits = ["", "smile=1", "smile=-1", "mouth=0.6", "blink=1", "brows=1", "yaw=15", "pitch=10"]
        tiles = [render(rest, ExpressionEdit.parse(text))[0] for text in edits]
        row = Image.fromarray(np.concatenate([np.asarray(Image.fromarray(t).resize((TILE, TILE))) for t in tiles], 1))
        draw = ImageDraw.Draw(row)
        for index, text in enumerate(edits):
            draw.text((index * TILE + 6, 4), text or "as is", fill=(255, 255, 0))
        row.save(out / "motion-edits.jpg", quality=88)
    print(f"wrote {out / 'motion-generated.jpg'} and {out / 'motion-edits.jpg'}")


if __name__ == "__main__":
    main()
