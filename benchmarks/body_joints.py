"""Where a body model loses the driver's joint angles across people: driver -> the pose the model is asked to reach
(its relative motion, ``transfer_motion``) -> its output, each measured with MediaPipe pose as ``enliven eval`` does.
Each clip's first frame is driven by the next clip of the split. Prints the per-joint correlations.
``--find-best-frame`` takes as the relative-motion reference the driving frame posed most like the source (as
``enliven animate --find-best-frame`` does) instead of the driving clip's first frame.

    python benchmarks/body_joints.py --data ~/enliven-data/ted --split val --max-frames 100 [--find-best-frame]
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from enliven.data import ClipReader, find_clips
from enliven.evaluate.baselines import ModelMethod
from enliven.evaluate.landmarks import PoseLandmarks
from enliven.evaluate.metrics import pearson
from enliven.evaluate.protocols import read_frames
from enliven.pose import POSE_JOINTS, joint_angles
from enliven.preprocess.best_frame import best_model_pose_frame
from enliven.types import MotionMode
from enliven.weights.loader import load_model

JOINT_NAMES = ("L elbow", "R elbow", "L shoulder", "R shoulder", "L hip", "R hip", "L knee", "R knee")
assert len(JOINT_NAMES) == len(POSE_JOINTS)


class RecordedTargets:
    """Wraps a model's ``transfer_motion`` and keeps the landmarks it returns (``B x 33 x 2`` in ``[-1, 1]``)."""

    def __init__(self, model) -> None:
        self.frames: list[np.ndarray] = []
        self._transfer = model.transfer_motion
        model.transfer_motion = self

    def __call__(self, *args, **kwargs):
        placed = self._transfer(*args, **kwargs)
        self.frames.append(placed.value.detach().cpu().numpy())
        return placed

    def pixels(self, size: int) -> np.ndarray:
        return (np.concatenate(self.frames) + 1) / 2 * size


def correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([pearson(a[:, j], b[:, j]) for j in range(a.shape[1])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="enliven-body")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--max-frames", type=int, default=100)
    parser.add_argument("--find-best-frame", action="store_true", help="the reference is the best-matching frame")
    args = parser.parse_args()

    clips = find_clips(args.data, args.split)
    if len(clips) < 2:
        parser.error(f"{args.data} {args.split} has {len(clips)} clip(s); the pairs need two or more.")
    model = load_model(args.model).model
    targets = RecordedTargets(model)
    method = ModelMethod(model, args.model, MotionMode.RELATIVE)
    size = method.image_size
    pose, reader = PoseLandmarks(), ClipReader()
    rows = {"driver vs the retargeted pose": [], "retargeted pose vs the output": [], "driver vs the output": []}
    found = {"driver": [], "output": []}
    for i, source_clip in enumerate(clips):
        driving_clip = clips[(i + 1) % len(clips)]
        driving = read_frames(reader, driving_clip, args.max_frames, size)
        method.set_source(read_frames(reader, source_clip, 1, size)[0])
        driver_points = np.stack([pose.detect(frame) for frame in driving])
        reference = 0
        if args.find_best_frame:
            # the animator's landmarks, as `enliven animate` matches them (the evaluation's are NaN outside the frame)
            clip_points = method.animator.driving_keypoints(driving).value.detach().cpu().numpy()
            reference = best_model_pose_frame(method.animator.source_keypoints, list(clip_points))
            method.animator.restart_tracking()  # the clip starts again from its first frame
            method.animator.set_reference_keypoints(clip_points[reference])
        targets.frames.clear()
        output = method.animate(driving)
        driver = joint_angles(driver_points)
        target = joint_angles(targets.pixels(size)[: len(driving)])
        result = joint_angles(np.stack([pose.detect(frame) for frame in output]))
        rows["driver vs the retargeted pose"].append(correlations(driver, target))
        rows["retargeted pose vs the output"].append(correlations(target, result))
        rows["driver vs the output"].append(correlations(driver, result))
        found["driver"].append(np.isfinite(driver).mean(0))
        found["output"].append(np.isfinite(result).mean(0))
        pair = f"{source_clip.name} driven by {driving_clip.name}"
        print(f"{pair}: {len(driving)} frames, reference frame {reference}", flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a joint never seen in any pair: its mean is NaN
        print(f"\n| correlation of joint angles | {' | '.join(JOINT_NAMES)} | mean |")
        print("|---" * (len(JOINT_NAMES) + 2) + "|")
        for name, values in rows.items():
            table = np.array(values)
            cells = " | ".join(f"{v:.2f}" for v in np.nanmean(table, 0))
            print(f"| {name} | {cells} | {np.nanmean(table):.3f} |")
        for name, values in found.items():
            print(f"| {name}: share of frames with the joint found | "
                  + " | ".join(f"{v:.2f}" for v in np.mean(values, 0)) + " | |")  # fmt: skip


if __name__ == "__main__":
    main()
