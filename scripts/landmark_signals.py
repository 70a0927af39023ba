"""How well do the face mesh's eyes and lips follow what ``enliven eval`` measures with dlib, on the driving clips?

``enliven eval --protocol animation`` correlates the output's eye aspect ratio and mouth opening (dlib's 68
landmarks) with the driver's. A model driven by MediaPipe's face mesh can only pass on what the mesh sees: this
script measures, clip by clip on real frames (the first 40 of each, as ``--max-frames 40``), the correlation of the
eye aspect ratio and mouth opening of the plain and the refined mesh (tracked from frame to frame, and found in each
frame on its own) with dlib's, and how far each one's measure spans (5th to 95th percentile) against dlib's::

    python scripts/landmark_signals.py ~/enliven-data/faces --split val
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from enliven.data import ClipReader, find_clips
from enliven.evaluate.landmarks import DlibLandmarks, motion_signals
from enliven.preprocess import FaceLandmarker

#: Face-mesh indices of each eye's corners and two lid pairs, and of the inner lips' middle and the eye centres.
MESH_EYES = (((33, 133), ((159, 145), (158, 153))), ((263, 362), ((386, 374), (385, 380))))
MESH_LIPS, MESH_EYE_CENTRES = (13, 14), ((33, 133), (263, 362))


def mesh_signals(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eye aspect ratio (both eyes' mean) and mouth opening over the inter-ocular distance of ``N x 468 x 2``
    face-mesh points, as :func:`enliven.evaluate.landmarks.motion_signals` measures them on dlib's."""

    def dist(i: int, j: int) -> np.ndarray:
        return np.linalg.norm(points[:, i] - points[:, j], axis=-1)

    eyes = np.mean([sum(dist(*pair) for pair in lids) / (2 * dist(*corners)) for corners, lids in MESH_EYES], axis=0)
    centres = [points[:, list(corners)].mean(axis=1) for corners in MESH_EYE_CENTRES]
    interocular = np.linalg.norm(centres[0] - centres[1], axis=-1)
    return eyes, dist(*MESH_LIPS) / interocular


def spread(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.percentile(finite, 95) - np.percentile(finite, 5)) if len(finite) > 2 else float("nan")


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.corrcoef(a[ok], b[ok])[0, 1]) if ok.sum() > 2 and a[ok].std() > 0 and b[ok].std() > 0 else np.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, help="a prepared dataset (FOMM layout)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--frames", type=int, default=40, help="first N frames of each clip (default 40)")
    args = parser.parse_args()
    clips = find_clips(args.dataset.expanduser(), args.split)
    if not clips:
        raise SystemExit(f"no clips in {args.dataset / args.split}; prepare a dataset first (enliven prepare).")
    dlib, reader = DlibLandmarks(), ClipReader()
    # (refined, tracked): the plain and the refined mesh tracked from frame to frame (MediaPipe's video mode), the
    # refined mesh found in each frame on its own (still-image mode), as enliven's driving frames are
    meshes = {"plain, tracked": (False, True), "refined, tracked": (True, True), "refined, each frame": (True, False)}
    rows: dict[str, list[tuple[float, ...]]] = {name: [] for name in meshes}
    print("| clip | dlib eye spread | dlib mouth spread |" + "".join(f" {m}: eyes r / mouth r |" for m in meshes))
    print("|---|---|---|" + "---|" * len(meshes))
    for clip in clips:
        frames = np.stack(reader.read(clip, range(min(args.frames, reader.num_frames(clip)))))
        truth = motion_signals(np.stack([dlib.detect(f) for f in frames]), (frames.shape[2], frames.shape[1]))
        line = f"| {clip.name} | {spread(truth.eyes):.3f} | {spread(truth.mouth):.3f} |"
        for name, (refine, tracked) in meshes.items():
            with FaceLandmarker(video=tracked, refine_landmarks=refine) as landmarker:
                found = [landmarker.landmarks(frame) for frame in frames]
            points = np.stack([p[:468] if p is not None else np.full((468, 2), np.nan) for p in found])
            eyes, mouth = mesh_signals(points)
            scores = (correlation(truth.eyes, eyes), correlation(truth.mouth, mouth),
                      spread(eyes) / spread(truth.eyes), spread(mouth) / spread(truth.mouth))  # fmt: skip
            rows[name].append(scores)
            line += f" {scores[0]:.2f} / {scores[1]:.2f} |"
        print(line)
    print(f"\n{len(clips)} clips of {args.split}, first {args.frames} frames; means over clips:\n")
    print("| face mesh | corr. eyes | corr. mouth | eye spread / dlib's | mouth spread / dlib's |")
    print("|---|---|---|---|---|")
    for name, values in rows.items():
        means = np.nanmean(np.array(values), axis=0)
        print(f"| {name} | {means[0]:.2f} | {means[1]:.2f} | {means[2]:.2f} | {means[3]:.2f} |")


if __name__ == "__main__":
    main()
