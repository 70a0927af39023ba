"""Where does a face model's reconstruction L1 lie: on the face, around it, or in the rest of the frame?

``enliven eval`` (reconstruction) reports the mean L1 over the whole 256 px frame. This script splits it, on the same
clips and frames (the first 40 of each, as ``--max-frames 40``), into the face (the convex hull of the real frame's
face mesh, from the dataset's ``.face_mesh.npy`` sidecars), a 20 px ring around it (hair, ears, neck) and the rest
(shoulders, background), each as its share of the frame's mean, for the model, the unmoved source (static) and the
mesh warp; and scores the rest once more for the source moved by optical flow between the real frames (OpenCV's DIS,
an oracle no landmark-driven model has): how much of the rest motion could explain; and for the source moved by the
head's motion (the affine map of the face mesh, everywhere, or on the source's person mask fading 40 px from the
face): whether the rest follows the head. In reconstruction the source is the driver's first frame, so the flow
between them is also the driver's own motion from its first frame, which a model could measure at inference; a row of
its own keeps the model's face (and ring) and moves the source's person elsewhere by that flow, estimated fast (DIS's
ultrafast preset at 128 px), the background still: what following the driver's body would give, and its cost.
A second table scores the mouth as the protocol does (L1 in the box around dlib's lip landmarks of the real frame)
and AED over the whole frame (every 4th frame, as ``enliven eval``), for the model and the mesh warp as they render,
with the real frame's own mouth interior pasted in (inside dlib's inner-lip polygon: the most any synthesis of the
mouth's inside, teeth, tongue and the dark, could gain) and with the real frame's whole mouth box pasted in (lips
too). ``--mouth-strip`` draws the four widest-open mouths (source, model, model with the real interior, real
frame)::

    python scripts/l1_regions.py ~/enliven-data/faces --split val --model enliven-lite \
        --mouth-strip docs/images/lite-mouth-interior.jpg
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from enliven.data import ClipReader, find_clips
from enliven.evaluate.baselines import MeshWarpBaseline, ModelMethod, StaticBaseline
from enliven.evaluate.identity import FaceIdentity, embedding_distances
from enliven.evaluate.landmarks import DLIB_MOUTH, DlibLandmarks, detect_all, region_box
from enliven.evaluate.protocols import Task, mouth_zoom, read_frames, run_method
from enliven.preprocess.person import PersonSegmenter
from enliven.types import MotionMode
from enliven.weights.loader import load_model

#: The ring around the face: its width in pixels of the 256 px frame.
RING = 20


def regions(mesh: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean ``size x size`` masks of the face (hull of the ``468 x 2`` pixel points), the ring and the rest."""
    face = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(face, cv2.convexHull(mesh.astype(np.int32)), 1)
    grown = cv2.dilate(face, np.ones((2 * RING + 1, 2 * RING + 1), np.uint8)).astype(bool)
    return face.astype(bool), grown & ~face.astype(bool), ~grown


def flow_from(source: np.ndarray, frame: np.ndarray, flow: cv2.DISOpticalFlow, side: int | None = None) -> np.ndarray:
    """``H x W x 2`` float32: for each pixel of ``frame``, the offset to where it came from in ``source`` (optical
    flow, estimated at ``side`` pixels when given and scaled back)."""
    size = frame.shape[0]
    small = [image if side is None else cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
             for image in (frame, source)]  # fmt: skip
    motion = flow.calc(*[cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in small], None)
    return motion if side is None else cv2.resize(motion, (size, size)) * (size / side)


def moved_by(image: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """``image`` sampled where ``motion`` (:func:`flow_from`) says each pixel came from."""
    ys, xs = np.mgrid[: image.shape[0], : image.shape[1]].astype(np.float32)
    return cv2.remap(image, xs + motion[..., 0], ys + motion[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)  # fmt: skip


def body_follows(
    output: np.ndarray, source: np.ndarray, person: np.ndarray, motion: np.ndarray, face: np.ndarray
) -> np.ndarray:
    """``output`` on the face and its ring (``face``: the grown face mask), fading over 10 px into the source's
    person (``person``, ``H x W`` in ``[0, 1]``) moved by ``motion``; the source's background stays as ``output``."""
    outside = np.clip(cv2.distanceTransform((~face).astype(np.uint8), cv2.DIST_L2, 5) / 10, 0, 1)
    weight = (outside * np.clip(moved_by(person, motion), 0, 1))[..., None]
    return (output * (1 - weight) + moved_by(source, motion) * weight).astype(np.float32)


def region_shares(
    images: Sequence[np.ndarray], frames: np.ndarray, masks: Sequence[tuple[np.ndarray, ...]]
) -> np.ndarray:
    """Mean L1 (``[0, 1]`` units) of ``images`` against the real ``frames``, and its shares in each frame's face, ring
    and rest (``masks``, as :func:`regions` gives them): four numbers."""
    errors = np.abs(np.asarray(images, dtype=np.float32) - frames).mean(-1) / 255  # N x H x W
    shares = [np.mean([(e * m[k]).sum() / e.size for e, m in zip(errors, masks, strict=True)]) for k in range(3)]
    return np.array([errors.mean(), *shares])


#: What of the real frame's mouth an output gets pasted into it before it is scored.
MOUTH_PARTS = ("as rendered", "with the real mouth interior", "with the real mouth box")
#: Identity embeddings of every this-many-th frame (``enliven eval``'s default).
IDENTITY_EVERY = 4
#: Side of an enlarged mouth in ``--mouth-strip``.
MOUTH_SIDE = 160


def mouth_box(points: np.ndarray, size: int) -> tuple[int, int, int, int] | None:
    """The protocol's mouth box around dlib's 20 lip landmarks (``points``: ``68 x 2`` of the real frame), or
    ``None`` where the lips were not found."""
    if not np.isfinite(points[DLIB_MOUTH]).all():
        return None
    return region_box(points[DLIB_MOUTH], (size, size), grow=0.2)


def with_real_mouth(image: np.ndarray, frame: np.ndarray, points: np.ndarray, part: str) -> np.ndarray:
    """``image`` with ``part`` (:data:`MOUTH_PARTS`) of the real ``frame``'s mouth pasted in (``points``: dlib's
    ``68 x 2`` landmarks of the real frame, found: see :func:`mouth_box`)."""
    image = image.copy()
    if part == MOUTH_PARTS[1]:
        inside = np.zeros(frame.shape[:2], np.uint8)
        cv2.fillPoly(inside, [np.round(points[60:68]).astype(np.int32)], 1)
        image[inside.astype(bool)] = frame[inside.astype(bool)]
    elif part == MOUTH_PARTS[2]:
        x0, y0, x1, y1 = mouth_box(points, frame.shape[0])  # type: ignore[misc]
        image[y0:y1, x0:x1] = frame[y0:y1, x0:x1]
    return image


def mouth_opening(points: np.ndarray) -> float:
    """How open dlib's inner lips are (``68 x 2`` landmarks): their middle gap over the outer eye corners' distance."""
    return float(np.linalg.norm(points[62] - points[66]) / np.linalg.norm(points[36] - points[45]))


def widest_mouth(frames: np.ndarray, outputs: np.ndarray, lips: np.ndarray) -> list[tuple[float, list[np.ndarray]]]:
    """The clip's frame whose real mouth is open widest, as ``[(opening, cells)]`` for :func:`save_mouth_strip` (none
    where dlib found no lips): the source's mouth (at its own lips where found), the model's, the model's with the real
    interior and the real frame's, each enlarged."""
    found = [i for i, points in enumerate(lips) if mouth_box(points, frames.shape[1]) is not None]
    if not found:
        return []
    i = max(found, key=lambda j: mouth_opening(lips[j]))
    first = 0 if found[0] == 0 else i  # frame 0 is the source
    moved = [outputs[i], with_real_mouth(outputs[i], frames[i], lips[i], MOUTH_PARTS[1]), frames[i]]
    cells = [
        mouth_zoom(frames[0], lips[first], MOUTH_SIDE),
        *(mouth_zoom(image, lips[i], MOUTH_SIDE) for image in moved),
    ]
    return [(mouth_opening(lips[i]), cells)]


def save_mouth_strip(rows: list[tuple[float, list[np.ndarray]]], path: Path, count: int = 4) -> None:
    """The ``count`` rows of enlarged mouths with the widest openings (``(opening, cells)``), under a header, as a
    JPEG (written beside and renamed)."""
    from PIL import Image, ImageDraw

    chosen = [cells for _, cells in sorted(rows, key=lambda row: -row[0])[:count]]
    grid = np.concatenate([np.concatenate(cells, 1) for cells in chosen], 0)
    header = Image.new("RGB", (grid.shape[1], 22), "white")
    for column, title in enumerate(["source (frame 0)", "model", "+ real interior", "real frame"]):
        ImageDraw.Draw(header).text((column * MOUTH_SIDE + 6, 5), title, fill="black")
    partial = path.with_name(f".{path.name}.partial")
    Image.fromarray(np.concatenate([np.asarray(header), grid], 0)).save(partial, format="JPEG", quality=88)
    partial.replace(path)


def mouth_scores(
    images: np.ndarray, frames: np.ndarray, lips: np.ndarray, real: np.ndarray, identity: FaceIdentity, part: str
) -> tuple[list[float], list[float]]:
    """Per frame whose lips were found: L1 (``[0, 1]`` units) in the mouth box, and for every
    :data:`IDENTITY_EVERY`-th frame the identity distance to the real frame (``real``: its ``N x 128`` embeddings),
    once ``part`` of the real mouth is pasted into ``images``."""
    l1, aed = [], []
    for i, (image, frame, points) in enumerate(zip(images, frames, lips, strict=True)):
        box = mouth_box(points, frame.shape[0])
        if box is None:
            continue
        pasted = with_real_mouth(image, frame, points, part)
        x0, y0, x1, y1 = box
        l1.append(float(np.abs(pasted[y0:y1, x0:x1].astype(np.float32) - frame[y0:y1, x0:x1]).mean() / 255))
        if i % IDENTITY_EVERY == 0:
            aed.append(float(embedding_distances(identity.embed(pasted)[None], real[i : i + 1])[0]))
    return l1, aed


ORACLE_ROW = "the source moved by optical flow between the real frames (oracle)"
#: Where the row below comes from: DIS's ultrafast preset at this side, fast enough to run beside the model.
FAST_FLOW_SIDE = 128
#: The head's motion outside the face, by how far from the face it fades (None: it does not, and moves everything).
HEAD_ROWS = {
    "the source moved by the head's affine map, everywhere": None,
    "the same on the source's person mask, fading 40 px from the face": 40.0,
}


def head_moved(
    source: np.ndarray,
    person: np.ndarray,
    source_mesh: np.ndarray,
    mesh: np.ndarray,
    face: np.ndarray,
    fade: float | None,
) -> np.ndarray:
    """The source moved by the head: the least-squares affine map from ``mesh`` to ``source_mesh`` (``468 x 2``
    pixels), everywhere (``fade`` None) or weighted by the ``person`` mask (``H x W`` in ``[0, 1]``) of the source at
    the sampled point and by a Gaussian of the distance from the ``face`` mask, ``fade`` pixels wide."""
    size = source.shape[0]
    ys, xs = np.mgrid[:size, :size].astype(np.float32)
    solution, *_ = np.linalg.lstsq(np.c_[mesh, np.ones(len(mesh))], source_mesh, rcond=None)
    to_x = (xs * solution[0, 0] + ys * solution[1, 0] + solution[2, 0]).astype(np.float32)
    to_y = (xs * solution[0, 1] + ys * solution[1, 1] + solution[2, 1]).astype(np.float32)
    if fade is not None:
        distance = cv2.distanceTransform((~face).astype(np.uint8), cv2.DIST_L2, 5)
        weight = cv2.remap(person, to_x, to_y, cv2.INTER_LINEAR) * np.exp(-0.5 * (distance / fade) ** 2)
        to_x, to_y = xs + weight * (to_x - xs), ys + weight * (to_y - ys)
    return cv2.remap(source, to_x, to_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, help="a prepared face dataset with face-mesh sidecars")
    parser.add_argument("--split", default="val")
    parser.add_argument("--model", default="enliven-lite")
    parser.add_argument("--frames", type=int, default=40, help="first N frames of each clip (default 40)")
    parser.add_argument("--mouth-strip", type=Path, help="write the widest-open mouths here (a .jpg)")
    args = parser.parse_args()
    root = args.dataset.expanduser()
    clips = find_clips(root, args.split)
    if not clips:
        raise SystemExit(f"no clips in {root / args.split}; prepare a dataset first (enliven prepare).")
    methods = [ModelMethod(load_model(args.model).model, args.model, MotionMode.ABSOLUTE), StaticBaseline(),
               MeshWarpBaseline()]  # fmt: skip
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    reader = ClipReader()
    fast_flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
    follows = f"{args.model}'s face and ring, the source's person moved by the driver's flow (fast) elsewhere"
    sums = {method.name: np.zeros(4) for method in methods} | {follows: np.zeros(4)}
    seconds: list[float] = []
    used, segmenter, dlib, identity = 0, PersonSegmenter(), DlibLandmarks(), FaceIdentity()
    mouths: dict[tuple[str, str], tuple[list[float], list[float]]] = {}  # (method, part) -> (mouth L1s, AEDs)
    static_aed: list[float] = []
    strip_rows: list[tuple[float, list[np.ndarray]]] = []  # per clip, its widest-open mouth's cells
    rest = dict.fromkeys([ORACLE_ROW, *HEAD_ROWS], 0.0)
    for clip in clips:
        sidecar = root / args.split / f"{clip.name}.face_mesh.npy"
        if not sidecar.is_file():
            print(f"{clip.name}: no face-mesh sidecar, skipped")
            continue
        frames = read_frames(reader, clip, args.frames, 256)
        meshes = np.load(sidecar)[: len(frames)]
        masks = [regions(mesh, 256) for mesh in meshes]
        person = segmenter.mask(frames[0])
        lips, real = detect_all(dlib, frames), identity.embed_all(frames, IDENTITY_EVERY)
        static_aed += [float(d) for d in embedding_distances(real, identity.embed(frames[0])[None]) if np.isfinite(d)]
        for method in methods:
            outputs, _ = run_method(method, Task(clip, clip), frames[0], frames)
            sums[method.name] += region_shares(outputs, frames, masks)
            if not isinstance(method, StaticBaseline):
                for part in MOUTH_PARTS:
                    l1, aed = mouth_scores(outputs, frames, lips, real, identity, part)
                    mouths.setdefault((method.name, part), ([], []))[0].extend(l1)
                    mouths[method.name, part][1].extend(aed)
            if method is methods[0]:
                if args.mouth_strip is not None:
                    strip_rows += widest_mouth(frames, outputs, lips)
                composed = []
                for output, frame, mask in zip(outputs, frames, masks, strict=True):
                    started = time.perf_counter()
                    motion = flow_from(frames[0], frame, fast_flow, FAST_FLOW_SIDE)
                    composed.append(body_follows(output, frames[0], person, motion, ~mask[2]))
                    seconds.append(time.perf_counter() - started)
                sums[follows] += region_shares(composed, frames, masks)
        oracles = [moved_by(frames[0], flow_from(frames[0], frame, flow)) for frame in frames]
        rest[ORACLE_ROW] += region_shares(oracles, frames, masks)[3]
        for name, fade in HEAD_ROWS.items():
            moved = [head_moved(frames[0], person, meshes[0], mesh, mask[0], fade)
                     for mesh, mask in zip(meshes, masks, strict=True)]  # fmt: skip
            rest[name] += region_shares(moved, frames, masks)[3]
        used += 1
    for method in methods:
        method.close()
    segmenter.close()
    print(f"\n{used} clips of {args.split}, first {args.frames} frames; shares of the frame's mean L1:\n")
    print(f"| method | L1 | face | ring ({RING} px) | rest |")
    print("|---|---|---|---|---|")
    for name, values in sums.items():
        print(f"| {name} | " + " | ".join(f"{v:.4f}" for v in values / used) + " |")
    for name, value in rest.items():
        print(f"| {name} | | | | {value / used:.4f} |")
    print(f"\nThe mouth: L1 in its box, and AED over the frame (static: AED {np.nanmean(static_aed):.4f}):\n")
    print("| method | mouth L1 | mouth L1, real interior pasted | AED | AED, real interior pasted | "
          "AED, real mouth box pasted |\n|---|---|---|---|---|---|")  # fmt: skip
    for method in methods[:1] + methods[2:]:
        l1 = [np.mean(mouths[method.name, part][0]) for part in MOUTH_PARTS[:2]]
        aed = [np.nanmean(mouths[method.name, part][1]) for part in MOUTH_PARTS]
        print(f"| {method.name} | " + " | ".join(f"{value:.4f}" for value in [*l1, *aed]) + " |")
    if args.mouth_strip is not None and strip_rows:
        save_mouth_strip(strip_rows, args.mouth_strip)
        print(f"wrote {args.mouth_strip}")
    cost = 1000 * np.median(seconds)
    print(f"\nthe driver's-flow row: its flow and composition (numpy and OpenCV): {cost:.1f} ms a frame (median)")


if __name__ == "__main__":
    main()
