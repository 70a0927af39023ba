"""TPSMM's inpainting network (paper Sec. 3.3): warp the source's encoder features and decode the driving frame.

The source is encoded once (:meth:`InpaintingNetwork.encode`). For each driving frame the features of every
resolution are warped by the dense motion, multiplied by the occlusion map of that resolution, and fed to the
decoder as skip connections; the output is blended with the warped source where it is visible.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from enliven.models.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d
from enliven.models.tpsmm.tps import resize_grid, resize_map, sample
from enliven.types import GeneratorOutput, MotionField


class InpaintingNetwork(nn.Module):
    """Encoder-decoder with warped, occlusion-masked skip connections and two residual blocks per decoder level.

    Args:
        num_channels: image channels.
        block_expansion: width of the first level; level ``l`` has ``min(max_features, block_expansion * 2**l)``.
        max_features: width cap.
        num_down_blocks: number of x2 downsamplings (3 in every official config; required with ``multi_mask``).
        multi_mask: the motion carries one occlusion map per resolution (else one, resized where needed).
    """

    def __init__(
        self, num_channels: int, block_expansion: int, max_features: int, num_down_blocks: int, multi_mask: bool = True
    ) -> None:
        super().__init__()
        self.num_down_blocks = num_down_blocks
        self.multi_mask = multi_mask

        def width(level: int) -> int:
            return min(max_features, block_expansion * 2**level)

        self.first = SameBlock2d(num_channels, block_expansion, kernel_size=7, padding=3, norm="instance")
        self.down_blocks = nn.ModuleList(
            DownBlock2d(width(i), width(i + 1), norm="instance") for i in range(num_down_blocks)
        )
        # Decoder level i works at 1/2**(num_down_blocks - i) of the image: its input is the previous level's
        # output concatenated with the warped encoder features of the same resolution (none at the bottleneck).
        inputs = [(1 if i == 0 else 2) * width(num_down_blocks - i) for i in range(num_down_blocks)]
        self.up_blocks = nn.ModuleList(
            UpBlock2d(inputs[i], width(num_down_blocks - i - 1), norm="instance") for i in range(num_down_blocks)
        )
        self.resblock = nn.ModuleList(
            ResBlock2d(inputs[i // 2], kernel_size=3, padding=1, norm="instance") for i in range(2 * num_down_blocks)
        )
        self.final = nn.Conv2d(block_expansion, num_channels, kernel_size=7, padding=3)

    def encode(self, source: Tensor) -> list[Tensor]:
        """Encode ``S x C x H x W`` source images in ``[0, 1]``; return the features of every level, fine to coarse."""
        features = [self.first(source)]
        for block in self.down_blocks:
            features.append(block(features[-1]))
        return features

    def forward(self, source: Tensor, features: list[Tensor], motion: MotionField) -> GeneratorOutput:
        """Render the driving frames.

        Args:
            source: ``S x C x H x W`` source images in ``[0, 1]`` (``S`` is 1 or B).
            features: :meth:`encode` of ``source``.
            motion: the dense motion of B driving frames (deformation at any resolution; with ``multi_mask``, the
                occlusion maps at the resolutions of ``features``, coarse to fine).

        Returns:
            ``B x C x H x W`` predictions in ``[0, 1]``, the motion, and the warped source.
        """
        grids: dict[tuple[int, int], Tensor] = {}

        def warp(image: Tensor) -> Tensor:
            size = (image.shape[2], image.shape[3])
            if size not in grids:
                grids[size] = resize_grid(motion.deformation, size)
            return sample(image, grids[size])

        def occlusion(index: int, size: tuple[int, int]) -> Tensor:
            return resize_map(motion.occlusion[index if self.multi_mask else 0], size)

        out = warp(features[-1]) * occlusion(0, features[-1].shape[2:])
        for i, up_block in enumerate(self.up_blocks):
            out = up_block(self.resblock[2 * i + 1](self.resblock[2 * i](out)))
            skip_source = features[-(i + 2)]
            skip = warp(skip_source) * occlusion(i + 1, skip_source.shape[2:])
            if i < self.num_down_blocks - 1:
                out = torch.cat([out, skip], dim=1)

        deformed = warp(source)
        visible = occlusion(-1, out.shape[2:])
        # The finest warped features are added where visible (a residual), then the output of the last layer is
        # used only where the source is occluded: visible pixels come straight from the warped source.
        out = torch.sigmoid(self.final(out * (1 - visible) + skip))
        prediction = out * (1 - visible) + deformed * visible
        return GeneratorOutput(prediction=prediction, motion=motion, deformed=deformed)
