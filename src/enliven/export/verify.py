"""``compare_with_torch``: run an export in its runtime beside the PyTorch model it came from."""

from __future__ import annotations

from pathlib import Path

import torch

from enliven.export.runtime import open_export
from enliven.export.stages import TRACE_BATCH, example_keypoints
from enliven.models.base import KeypointSource, MotionTransferModel
from enliven.models.motion_transfer import movement_scale


@torch.no_grad()
def compare_with_torch(model: MotionTransferModel, folder: Path, seed: int = 1) -> float:
    """Animate a random source with a random driving batch through PyTorch and through the exported graphs (any format).

    Both paths run the steps of :class:`~enliven.inference.animator.Animator` (encode the source, keypoints of
    the frames, relative and absolute transfer, generate) on a batch other than the traced one, and on a batch
    of one.

    Returns:
        The largest absolute difference of the predicted frames.
    """
    exported = open_export(folder)
    generator = torch.Generator().manual_seed(seed)
    size = model.image_size
    source = torch.rand(1, 3, size, size, generator=generator)
    frames = torch.rand(TRACE_BATCH + 1, 3, size, size, generator=generator)
    learned = model.keypoint_source is KeypointSource.LEARNED
    kp_source = None if learned else example_keypoints(model, source, generator)
    kp_frames = None if learned else example_keypoints(model, frames, generator)
    worst = 0.0
    predictions = []
    for candidate in (model, exported):
        encoding = candidate.encode_source(source, kp_source)
        kp_driving = candidate.detect_keypoints(frames) if learned else kp_frames
        reference = kp_driving.index(0)
        scale = movement_scale(encoding.keypoints, reference)
        outputs = [candidate.generate(encoding, kp_driving.index(slice(0, 1))).prediction]
        for mode in exported.supported_modes:
            kp = candidate.transfer_motion(encoding.keypoints, kp_driving, reference, mode, scale=scale)
            outputs.append(candidate.generate(encoding, kp).prediction)
        predictions.append(outputs)
    for expected, actual in zip(*predictions, strict=True):
        worst = max(worst, float((expected - actual).abs().max()))
    return worst
