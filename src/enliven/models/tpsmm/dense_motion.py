"""TPSMM's dense motion network (paper Sec. 3.2): K TPS transformations plus a background one, mixed per pixel.

The network runs on the source downscaled by ``scale_factor``. Its input is, for every transformation, the
difference of driving and source keypoint heatmaps and the source warped by that transformation; an hourglass
predicts the per-pixel contribution maps (Eq. 6, softmax over the K + 1 transformations) and the occlusion maps,
one per resolution of the inpainting network ("multi-resolution occlusion masks", Sec. 3.3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enliven.geometry import kp_to_gaussian, make_coordinate_grid
from enliven.models.blocks import AntiAliasInterpolation2d, Hourglass, UpBlock2d
from enliven.models.tpsmm.keypoints import POINTS_PER_TPS
from enliven.models.tpsmm.tps import ThinPlateSpline, sample
from enliven.types import MotionField

#: The inpainting network consumes four occlusion maps (its bottleneck and three decoder resolutions).
NUM_OCCLUSION_MAPS = 4


@dataclass(frozen=True)
class DenseMotionSource:
    """What the dense motion network needs from the source, computed once per source.

    Attributes:
        image: ``S x C x h x w`` source downscaled by ``scale_factor``, in ``[0, 1]``.
        keypoints: ``S x 5K x 2`` source keypoints.
        heatmaps: ``S x 5K x h x w`` gaussian heatmaps of the source keypoints.
        grid: ``h x w x 2`` identity coordinate grid.
    """

    image: Tensor
    keypoints: Tensor
    heatmaps: Tensor
    grid: Tensor


class DenseMotionNetwork(nn.Module):
    """Estimate the optical flow (driving -> source) and multi-resolution occlusion maps.

    Args:
        block_expansion: hourglass width multiplier.
        num_blocks: hourglass depth.
        max_features: hourglass width cap.
        num_tps: number K of TPS transformations.
        num_channels: image channels.
        scale_factor: the network works on the source downscaled by this factor (a power of 1/2).
        multi_mask: predict :data:`NUM_OCCLUSION_MAPS` occlusion maps (else one, at the working resolution).
        kp_variance: variance of the keypoint heatmaps, in normalised units.
    """

    def __init__(
        self,
        block_expansion: int,
        num_blocks: int,
        max_features: int,
        num_tps: int,
        num_channels: int = 3,
        scale_factor: float = 0.25,
        multi_mask: bool = True,
        kp_variance: float = 0.01,
    ) -> None:
        super().__init__()
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)
        self.scale_factor = scale_factor
        self.multi_mask = multi_mask
        self.num_tps = num_tps
        self.kp_variance = kp_variance
        in_features = num_channels * (num_tps + 1) + num_tps * POINTS_PER_TPS + 1
        self.hourglass = Hourglass(block_expansion, in_features, num_blocks, max_features, norm="instance")
        widths = self.hourglass.out_channels
        self.maps = nn.Conv2d(widths[-1], num_tps + 1, kernel_size=7, padding=3)
        if multi_mask:
            # The first maps come from the last hourglass outputs; the finer ones from extra x2 up blocks, so that
            # the maps reach the full image resolution.
            self.num_upsamplings = round(math.log2(1 / scale_factor))
            from_hourglass = NUM_OCCLUSION_MAPS - self.num_upsamplings
            up_widths = [widths[-1] // 2**i for i in range(self.num_upsamplings + 1)]
            self.up = nn.ModuleList(
                UpBlock2d(up_widths[i], up_widths[i + 1], norm="instance") for i in range(self.num_upsamplings)
            )
            head_widths = [widths[-from_hourglass + i] for i in range(from_hourglass)] + up_widths[1:]
        else:
            self.num_upsamplings = 0
            head_widths = [widths[-1]]
        self.occlusion = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=7, padding=3) for c in head_widths)

    def prepare_source(self, source: Tensor, kp_source: Tensor) -> DenseMotionSource:
        """Compute the source-only inputs.

        Args:
            source: ``S x C x H x W`` source images in ``[0, 1]``.
            kp_source: ``S x 5K x 2`` their keypoints.
        """
        image = self.down(source) if self.scale_factor != 1 else source
        size = (image.shape[2], image.shape[3])
        heatmaps = kp_to_gaussian(kp_source, size, self.kp_variance)
        grid = make_coordinate_grid(size, dtype=image.dtype, device=image.device)
        return DenseMotionSource(image=image, keypoints=kp_source, heatmaps=heatmaps, grid=grid)

    def transformations(self, src: DenseMotionSource, kp_driving: Tensor, bg_param: Tensor | None = None) -> Tensor:
        """Return the ``B x (K + 1) x h x w x 2`` sampling grids: background (identity or affine), then K TPS."""
        batch = kp_driving.shape[0]
        h, w = src.grid.shape[:2]
        driving = kp_driving.view(batch, self.num_tps, POINTS_PER_TPS, 2)
        source = src.keypoints.view(-1, self.num_tps, POINTS_PER_TPS, 2)
        tps_grids = ThinPlateSpline.fit(driving, source).warp_grid((h, w), src.grid)
        background = src.grid.expand(batch, 1, h, w, 2)
        if bg_param is not None:
            homogeneous = torch.cat([src.grid, src.grid.new_ones(h, w, 1)], dim=-1)
            moved = torch.einsum("bij,hwj->bhwi", bg_param, homogeneous)
            background = (moved[..., :2] / moved[..., 2:]).unsqueeze(1)
        return torch.cat([background, tps_grids], dim=1)

    def forward(
        self, src: DenseMotionSource, kp_driving: Tensor, bg_param: Tensor | None = None, dropout_p: float = 0.0
    ) -> MotionField:
        """Estimate the motion for a batch of driving keypoints.

        Args:
            src: from :meth:`prepare_source`, batch 1 or B.
            kp_driving: ``B x 5K x 2`` driving keypoints (already transferred, e.g. relative).
            bg_param: ``B x 3 x 3`` background affine motion (training with ``bg``), or ``None`` for the identity.
            dropout_p: probability of dropping each TPS transformation from the softmax (training, Eq. 7-8).

        Returns:
            The deformation at the working resolution, the occlusion maps coarse to fine (``B x 1 x h_i x w_i``;
            with ``multi_mask`` at 1/8, 1/4, 1/2 and 1 of the image size) and the ``B x (K+1) x h x w`` contribution
            maps as ``mask``.
        """
        batch = kp_driving.shape[0]
        h, w = src.grid.shape[:2]
        heatmaps = kp_to_gaussian(kp_driving, (h, w), self.kp_variance) - src.heatmaps
        transforms = self.transformations(src, kp_driving, bg_param)
        deformed = sample(src.image, transforms).reshape(batch, -1, h, w)
        # The background transformation has no keypoints: its heatmap channel is zero.
        zero_heatmap = heatmaps.new_zeros(batch, 1, h, w)
        features = self.hourglass.forward_pyramid(torch.cat([zero_heatmap, heatmaps, deformed], dim=1))

        logits = self.maps(features[-1])
        contribution = _dropout_softmax(logits, dropout_p) if dropout_p > 0 else F.softmax(logits, dim=1)
        deformation = torch.einsum("bkhw,bkhwc->bhwc", contribution, transforms)
        return MotionField(deformation=deformation, occlusion=self._occlusion(features), mask=contribution)

    def _occlusion(self, features: list[Tensor]) -> tuple[Tensor, ...]:
        heads = iter(self.occlusion)
        from_hourglass = len(self.occlusion) - self.num_upsamplings
        maps = [torch.sigmoid(next(heads)(f)) for f in features[len(features) - from_hourglass :]]
        out = features[-1]
        for up in self.up if self.multi_mask else ():
            out = up(out)
            maps.append(torch.sigmoid(next(heads)(out)))
        return tuple(maps)


def _dropout_softmax(logits: Tensor, p: float) -> Tensor:
    """Softmax over the transformations with each TPS one dropped with probability ``p`` (paper Eq. 7-8).

    The background transformation is never dropped. (The authors' code also divides the logits by ``1 - p``
    after exponentiating, which has no effect on the result, so it is left out.)
    """
    keep = (torch.rand(logits.shape[:2], device=logits.device) < 1 - p).to(logits.dtype)
    keep[:, 0] = 1
    exp = (logits - logits.max(dim=1, keepdim=True).values).exp() * keep[:, :, None, None]
    return exp / (exp.sum(dim=1, keepdim=True) + 1e-6)
