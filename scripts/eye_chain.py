"""Where ``enliven eval --protocol animation`` loses the eyes' correlation, pair by pair.

The animation protocol correlates the eye aspect ratio of the output with the driver's, both measured with dlib's 68
landmarks. A face-mesh model passes on what MediaPipe's refined mesh sees in the driver and renders what it is given;
this script measures each link of that chain on the same cross-identity pairs as the protocol (each validation
clip's first frame driven by the next clip)::

    python scripts/eye_chain.py ~/enliven-data/faces --split val --model enliven-lite

Columns: the driver's own eye spread (dlib, 5th to 95th percentile: a driver that does not blink has little to
pass on); the source's eye aspect ratio (dlib and mesh: a source with shut eyes has nothing to close, and no face
model here can open them); dlib vs the mesh on the driver (what the model can know); the output's mesh vs the
driver's mesh (what the renderer reproduces, as the mesh sees it); the output's dlib vs the driver's dlib (the
protocol's figure).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from landmark_signals import correlation, mesh_signals, spread

from enliven.data import ClipReader, find_clips
from enliven.errors import InputError
from enliven.evaluate.baselines import ModelMethod
from enliven.evaluate.landmarks import DlibLandmarks, motion_signals
from enliven.evaluate.protocols import make_tasks, read_frames
from enliven.evaluate.results import Protocol
from enliven.inference.landmarks import face_mesh_landmarker
from enliven.types import MotionMode
from enliven.weights.loader import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, help="a prepared face dataset (FOMM layout)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--model", default="enliven-lite", help="a face-mesh model (preset name or checkpoint)")
    parser.add_argument("--frames", type=int, default=None, help="first N frames of each clip (default: all)")
    args = parser.parse_args()
    try:
        clips = find_clips(args.dataset.expanduser(), args.split)
    except InputError as err:
        raise SystemExit(str(err)) from None
    if len(clips) < 2:
        raise SystemExit(f"fewer than 2 clips in {args.dataset / args.split}; prepare a dataset (enliven prepare).")
    method = ModelMethod(load_model(args.model).model, args.model, MotionMode.RELATIVE, device="cpu")
    dlib, mesh, reader = DlibLandmarks(), face_mesh_landmarker(), ClipReader()

    def eyes(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Eye aspect ratios of ``N`` frames: dlib's and the refined mesh's (each frame on its own)."""
        by_dlib = motion_signals(np.stack([dlib.detect(f) for f in frames]), (frames.shape[2], frames.shape[1]))
        found = [mesh.landmarks(f) for f in frames]
        points = np.stack([p[:468] if p is not None else np.full((468, 2), np.nan) for p in found])
        return by_dlib.eyes, mesh_signals(points)[0]

    print(
        "| source <- driver | driver's eye spread (dlib) | source's eyes (dlib / mesh) | driver: dlib vs mesh "
        "| mesh: output vs driver | dlib: output vs driver (the protocol's) |"
    )
    print("|---|---|---|---|---|---|")
    rows = []
    for task in make_tasks(clips, Protocol.ANIMATION):
        driving = read_frames(reader, task.driving_clip, args.frames, method.image_size)
        source = read_frames(reader, task.source_clip, 1, method.image_size)[0]
        method.set_source(source)
        (driver_dlib, driver_mesh), (out_dlib, out_mesh) = eyes(driving), eyes(method.animate(driving))
        source_dlib, source_mesh = eyes(source[None])
        row = (spread(driver_dlib), source_dlib[0], source_mesh[0], correlation(driver_dlib, driver_mesh),
               correlation(driver_mesh, out_mesh), correlation(driver_dlib, out_dlib))  # fmt: skip
        rows.append(row)
        print(
            f"| {task.title} | {row[0]:.3f} | {row[1]:.2f} / {row[2]:.2f} | {row[3]:.2f} | {row[4]:.2f} "
            f"| {row[5]:.2f} |",
            flush=True,
        )
    means = np.nanmean(np.array(rows), axis=0)
    print(
        f"| **mean of {len(rows)} pairs** | {means[0]:.3f} | {means[1]:.2f} / {means[2]:.2f} | {means[3]:.2f} "
        f"| {means[4]:.2f} | {means[5]:.2f} |"
    )
    method.close()
    mesh.close()


if __name__ == "__main__":
    main()
