"""FOMM occlusion-aware generator: encode the source, warp its features, inpaint, decode (paper Sec. 3.2-3.3).

The generator is split so that the source is encoded once (:meth:`OcclusionAwareGenerator.encode_source`) and
each driving frame only pays for the dense motion, the warp and the decoder (:meth:`~OcclusionAwareGenerator.decode`).
Warps use ``grid_sample``/``interpolate`` with ``align_corners=False``, PyTorch's default that the authors' code
(which passes none) gets and that the published weights were trained with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enliven.geometry import grid_sample
from enliven.models.base import SourceEncoding
from enliven.models.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d
from enliven.models.fomm.dense_motion import DenseMotionNetwork, DenseMotionSource, expand_batch
from enliven.types import GeneratorOutput, Keypoints


@dataclass(frozen=True)
class FommSourceEncoding(SourceEncoding):
    """What FOMM computes from the source alone.

    Attributes:
        features: ``S x F x H/2^n x W/2^n`` encoder output (``n = num_down_blocks``), before warping.
        motion: the dense motion network's source-only inputs.
    """

    features: Tensor
    motion: DenseMotionSource


def warp(image: Tensor, deformation: Tensor) -> Tensor:
    """Sample ``image`` (``B x C x H x W``) at ``deformation`` (``B x h x w x 2``), resized bilinearly to ``H x W``."""
    _, h_def, w_def, _ = deformation.shape
    h, w = image.shape[2:]
    if (h_def, w_def) != (h, w):
        grid = F.interpolate(deformation.permute(0, 3, 1, 2), size=(h, w), mode="bilinear", align_corners=False)
        deformation = grid.permute(0, 2, 3, 1)
    return grid_sample(image, deformation, mode="bilinear", padding_mode="zeros", align_corners=False)


def _width(block_expansion: int, max_features: int, level: int) -> int:
    return min(max_features, block_expansion * 2**level)


class OcclusionAwareGenerator(nn.Module):
    """Johnson-style generator whose bottleneck features are warped by the dense motion and masked by occlusion.

    Attribute names are those of the published checkpoints' ``generator`` entry.

    Args:
        num_channels: image channels.
        block_expansion: width after the first 7x7 convolution.
        max_features: channel cap.
        num_down_blocks: number of x2 down (and up) blocks.
        num_bottleneck_blocks: residual blocks at the lowest resolution.
        dense_motion_network: the network predicting the motion (its ``num_kp`` is the generator's).
    """

    def __init__(
        self,
        num_channels: int,
        block_expansion: int,
        max_features: int,
        num_down_blocks: int,
        num_bottleneck_blocks: int,
        dense_motion_network: DenseMotionNetwork,
    ) -> None:
        super().__init__()
        self.dense_motion_network = dense_motion_network
        self.first = SameBlock2d(num_channels, block_expansion, kernel_size=7, padding=3, norm="batch")
        self.down_blocks = nn.ModuleList(
            DownBlock2d(
                _width(block_expansion, max_features, i),
                _width(block_expansion, max_features, i + 1),
                kernel_size=3,
                padding=1,
                norm="batch",
            )
            for i in range(num_down_blocks)
        )
        self.up_blocks = nn.ModuleList(
            UpBlock2d(
                _width(block_expansion, max_features, i + 1),
                _width(block_expansion, max_features, i),
                kernel_size=3,
                padding=1,
                norm="batch",
            )
            for i in reversed(range(num_down_blocks))
        )
        bottleneck_width = _width(block_expansion, max_features, num_down_blocks)
        self.bottleneck = nn.Sequential()
        for i in range(num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResBlock2d(bottleneck_width, kernel_size=3, padding=1, norm="batch"))
        self.final = nn.Conv2d(block_expansion, num_channels, kernel_size=7, padding=3)
        self.num_channels = num_channels

    def encode_source(self, source: Tensor, kp_source: Keypoints) -> FommSourceEncoding:
        """Encode the source once.

        Args:
            source: ``S x C x H x W`` images in ``[0, 1]`` (``S = 1`` for animation).
            kp_source: their keypoints (batch ``S``).
        """
        features = self.first(source)
        for block in self.down_blocks:
            features = block(features)
        motion = self.dense_motion_network.prepare_source(source, kp_source)
        return FommSourceEncoding(image=source, keypoints=kp_source, features=features, motion=motion)

    def decode(
        self, encoding: FommSourceEncoding, kp_driving: Keypoints, with_deformed: bool = False
    ) -> GeneratorOutput:
        """Animate the encoded source to ``B`` driving keypoint sets.

        Args:
            encoding: from :meth:`encode_source`, batch 1 (shared by all frames) or ``B``.
            kp_driving: ``B`` keypoint sets (already transferred to the source, for animation).
            with_deformed: also return the source warped by the motion (for visualisation; costs one more
                full-resolution warp).

        Returns:
            ``prediction`` ``B x C x H x W`` in ``[0, 1]``, the motion, and ``deformed`` when asked for.
        """
        batch = kp_driving.value.shape[0]
        motion = self.dense_motion_network.motion(encoding.motion, kp_driving)
        out = warp(expand_batch(encoding.features, batch), motion.deformation)
        if motion.occlusion:
            occlusion = motion.occlusion[0]
            if occlusion.shape[2:] != out.shape[2:]:
                occlusion = F.interpolate(occlusion, size=out.shape[2:], mode="bilinear", align_corners=False)
            out = out * occlusion
        out = self.bottleneck(out)
        for block in self.up_blocks:
            out = block(out)
        prediction = torch.sigmoid(self.final(out))
        deformed = warp(expand_batch(encoding.image, batch), motion.deformation) if with_deformed else None
        return GeneratorOutput(prediction=prediction, motion=motion, deformed=deformed)

    def forward(self, source: Tensor, kp_source: Keypoints, kp_driving: Keypoints) -> GeneratorOutput:
        """Encode and decode in one call (training: batch ``B`` sources with ``B`` driving frames)."""
        return self.decode(self.encode_source(source, kp_source), kp_driving, with_deformed=True)
