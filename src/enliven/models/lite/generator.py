"""enliven-lite's generator: a narrow U-Net encoder run once per source, and a decoder that warps its features, refines
them with depthwise-separable blocks, upsamples by pixel shuffle and adds a correction to the warped source image
where the occlusion map says the source is hidden (see :mod:`enliven.models.lite.model`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enliven.models.lite.fine import REFINE_REDUCTION, FineWarp, refine_grid
from enliven.models.lite.motion import conv_norm_relu, resize_grid, warp
from enliven.types import MotionField


class SeparableResidual(nn.Module):
    """``relu(x + BN(pointwise(relu(BN(depthwise3x3(x))))))``: a residual block at a ninth of a 3x3 conv's cost."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.norm1 = nn.BatchNorm2d(channels)
        self.pointwise = nn.Conv2d(channels, channels, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.norm1(self.depthwise(x)))
        return F.relu(x + self.norm2(self.pointwise(y)))


class LiteEncoder(nn.Module):
    """Source features at every generator level: strided 3x3 convs, each halving the size."""

    def __init__(self, num_channels: int, channels: tuple[int, ...], num_bottleneck_blocks: int) -> None:
        super().__init__()
        widths = (num_channels, *channels)
        self.levels = nn.ModuleList([conv_norm_relu(widths[i], widths[i + 1], stride=2) for i in range(len(channels))])
        self.bottleneck = nn.Sequential(*[SeparableResidual(channels[-1]) for _ in range(num_bottleneck_blocks)])

    def forward(self, image: Tensor) -> list[Tensor]:
        """``B x 3 x H x W`` in ``[0, 1]`` -> features, half resolution first."""
        features = []
        x = image
        for level in self.levels:
            x = level(x)
            features.append(x)
        features[-1] = self.bottleneck(features[-1])
        return features


def pixel_shuffle_2x(x: Tensor) -> Tensor:
    """``F.pixel_shuffle(x, 2)``: ``B x 4C x H x W`` -> ``B x C x 2H x 2W``, the same numbers as a view and one
    permuted copy, which runs twice as fast on a CPU as torch's kernel (0.7 vs 1.5 ms at 128 x 64 x 64)."""
    batch, channels, height, width = x.shape
    shuffled = x.view(batch, channels // 4, 2, 2, height, width).permute(0, 1, 4, 2, 5, 3)
    return shuffled.reshape(batch, channels // 4, 2 * height, 2 * width)


#: Initial shade of the warped source inside the driving mouth (a mouth's interior is dark); learned.
MOUTH_SHADE = 0.3


class LiteDecoder(nn.Module):
    """Warped source features -> a correction of the warped source, coarse to fine (pixel-shuffle upsampling).

    The last step is a convolution at half resolution whose channels a pixel shuffle turns into the full-resolution
    correction, applied where the occlusion map says the warped source is hidden; it starts at zero, so the
    untrained decoder returns the warped source unchanged.

    Args:
        num_channels: image channels.
        channels: feature channels per level, half resolution first.
        num_bottleneck_blocks: residual blocks at the lowest level.
        num_refine_blocks: residual blocks after each upsampling step.
        mouth_interior: the decoder takes the driving mouth's interior (a mask): hidden from the warped source, shaded
            by a learned factor, and marked in the features by a learned vector per level.
        image_warp: how the source image is sampled (``bilinear`` or ``bicubic``).
    """

    def __init__(
        self,
        num_channels: int,
        channels: tuple[int, ...],
        num_bottleneck_blocks: int,
        num_refine_blocks: int = 1,
        mouth_interior: bool = False,
        image_warp: str = "bilinear",
    ) -> None:
        super().__init__()
        self.image_warp = image_warp
        self.bottleneck = nn.Sequential(*[SeparableResidual(channels[-1]) for _ in range(num_bottleneck_blocks)])
        # upsample[i] takes level i + 1 to level i.
        self.upsample = nn.ModuleList(
            [nn.Conv2d(channels[i + 1], 4 * channels[i], 1) for i in range(len(channels) - 1)]
        )
        self.refine = nn.ModuleList([SeparableResidual(c) for c in channels[:-1]])
        # Kept apart from ``refine`` so that one-block models keep their parameter names.
        self.refine_more = (
            nn.ModuleList(
                [nn.Sequential(*[SeparableResidual(c) for _ in range(num_refine_blocks - 1)]) for c in channels[:-1]]
            )
            if num_refine_blocks > 1
            else None
        )
        self.mouth_embedding: nn.ParameterList | None = None
        self.mouth_shade: nn.Parameter | None = None
        if mouth_interior:
            self.mouth_embedding = nn.ParameterList([nn.Parameter(torch.zeros(1, c, 1, 1)) for c in channels])
            self.mouth_shade = nn.Parameter(torch.full((1, num_channels, 1, 1), math.log(MOUTH_SHADE)))
        self.head = nn.Conv2d(channels[0], 4 * num_channels, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(
        self,
        image: Tensor,
        features: tuple[Tensor, ...],
        motion: MotionField,
        mouth: Tensor | None = None,
        detail: Tensor | None = None,
        plate: Tensor | None = None,
        fine: FineWarp | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Returns the prediction (about ``[0, 1]``; not clamped, so the loss sees overshoot) and what the correction
        is added to: the warped source (in ``[0, 1]``, shaded inside the mouth; where it is hidden, the ``plate``
        when given), both ``B x 3 x H x W``.

        Args:
            image: ``1 x 3 x H x W`` (or ``B x``) the source.
            features: the source's encoder features.
            motion: the dense motion.
            mouth: ``B x 1 x h x w`` in ``[0, 1]``, the driving mouth's interior (models with ``mouth_interior``).
            detail: ``1 x 3 x D x D`` the same source at another resolution: the prediction is composed at ``D``
                (the source's own texture warped there, the decoder's correction resized to it) instead of ``H``.
            plate: ``1 x 3 x h x w`` (any size) the source's background without its person: taken where the warped
                source is hidden.
            fine: the mesh warp over the eyes and lips at about a pixel's spacing: the image (not the features) is
                warped by it there (:func:`~enliven.models.lite.fine.refine_grid`, at ``H / 2``, then resized to
                ``D``).
        """
        occlusion = motion.occlusion[0]
        if (mouth is None) != (self.mouth_embedding is None):
            raise ValueError("this decoder " + ("needs" if mouth is None else "takes no") + " a mouth mask")

        def resized(mask: Tensor, size: int) -> Tensor:
            if mask.shape[-1] == size:
                return mask
            return F.interpolate(mask, size=(size, size), mode="bilinear", align_corners=False)

        def warped(level: int) -> Tensor:
            size = features[level].shape[-1]
            moved = warp(features[level], resize_grid(motion.deformation, size)) * resized(occlusion, size)
            if mouth is None or self.mouth_embedding is None:
                return moved
            inside = resized(mouth, size)
            return moved * (1 - inside) + inside * self.mouth_embedding[level]

        x = self.bottleneck(warped(len(features) - 1))
        for level in reversed(range(len(features) - 1)):
            x = pixel_shuffle_2x(self.upsample[level](x)) + warped(level)
            x = self.refine[level](x)
            if self.refine_more is not None:
                x = self.refine_more[level](x)
        target = image if detail is None else detail
        size = target.shape[-1]
        flow = motion.deformation
        if fine is not None:
            flow = refine_grid(resize_grid(flow, image.shape[-1] // REFINE_REDUCTION), fine)
        deformed = warp(target, resize_grid(flow, size), self.image_warp)
        correction = pixel_shuffle_2x(self.head(x))
        if correction.shape[-1] != size:
            correction = F.interpolate(correction, size=(size, size), mode="bilinear", align_corners=False)
        # The correction acts where the warped source cannot explain the frame (occlusion near 0): elsewhere the
        # source's own pixels are the best guess, and an imperfect decoder would only blur them.
        hidden = 1 - resized(occlusion, size)
        if mouth is not None and self.mouth_shade is not None:
            inside = resized(mouth, size)
            hidden = torch.maximum(hidden, inside)
            deformed = deformed * (1 - inside * (1 - self.mouth_shade.exp()))
        if plate is not None:  # what the moved body uncovers is background, not a copy of the body
            if plate.shape[-1] != size:
                plate = F.interpolate(plate, size=(size, size), mode="bilinear", align_corners=False)
            deformed = deformed + hidden * (plate - deformed)
        return deformed + hidden * correction, deformed
