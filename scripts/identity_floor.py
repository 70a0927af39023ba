"""How small can AED get? Identity distances between real frames of the same clip, and after mild degradations.

``enliven eval`` reports AED as the Euclidean distance between dlib face-identity embeddings of each output frame
and the real frame (:mod:`enliven.evaluate.identity`). This script scores things that are not model outputs on the
same frames (every 4th of the first 40 of each clip, as ``enliven eval --max-frames 40`` does) to show the metric's
floor: the real frame 1 or 4 frames away, the real frame blurred, halved in resolution, JPEG-compressed::

    python scripts/identity_floor.py ~/enliven-data/faces --split val
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from enliven.data import ClipReader, find_clips
from enliven.evaluate.identity import FaceIdentity, embedding_distances


def degradations() -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Mild changes of one ``H x W x 3`` uint8 frame, by name."""

    def halved(frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        small = cv2.resize(frame, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)

    def jpeg(frame: np.ndarray) -> np.ndarray:
        return cv2.imdecode(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 50])[1], cv2.IMREAD_UNCHANGED)

    return {
        "blurred (Gaussian sigma 1 px)": lambda frame: cv2.GaussianBlur(frame, (0, 0), 1.0),
        "half resolution, upsampled": halved,
        "JPEG quality 50": jpeg,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, help="a prepared dataset (FOMM layout)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--frames", type=int, default=40, help="first N frames of each clip (default 40)")
    parser.add_argument("--every", type=int, default=4, help="score every N-th frame (default 4)")
    args = parser.parse_args()
    identity, reader = FaceIdentity(), ClipReader()
    changes = degradations()
    rows: dict[str, list[float]] = {"the clip's first frame (the static baseline)": [],
                                    "the real frame 1 frame later": [], "the real frame 4 frames earlier": [],
                                    **{name: [] for name in changes}}  # fmt: skip
    clips = find_clips(args.dataset.expanduser(), args.split)
    if not clips:
        raise SystemExit(f"no clips in {args.dataset / args.split}; prepare a dataset first (enliven prepare).")
    for clip in clips:
        count = min(args.frames + 1, reader.num_frames(clip))
        frames = np.stack(reader.read(clip, range(count)))
        scored = list(range(args.every, count - 1, args.every))  # each has a frame before and after it
        real = identity.embed_all(frames[scored])
        others = {
            "the clip's first frame (the static baseline)": frames[[0] * len(scored)],
            "the real frame 1 frame later": frames[[i + 1 for i in scored]],
            "the real frame 4 frames earlier": frames[[max(0, i - 4) for i in scored]],
            **{name: np.stack([change(frames[i]) for i in scored]) for name, change in changes.items()},
        }
        for name, images in others.items():
            rows[name].append(float(np.nanmean(embedding_distances(identity.embed_all(images), real))))
    print(f"{len(clips)} clips of {args.split}, frames {args.every}, {2 * args.every}, ... of the first {args.frames}")
    print("| compared with the real frame | AED (dlib, Euclidean) |\n|---|---|")
    for name, values in rows.items():
        print(f"| {name} | {np.mean(values):.3f} |")


if __name__ == "__main__":
    main()
