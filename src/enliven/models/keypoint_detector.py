"""FOMM keypoint detector: keypoints as heatmap expectations, with local affine jacobians (paper Sec. 3.1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enliven.geometry import make_coordinate_grid
from enliven.models.blocks import AntiAliasInterpolation2d, Hourglass
from enliven.types import Keypoints


class KeypointDetector(nn.Module):
    """Hourglass that predicts one heatmap per keypoint; a keypoint is its heatmap's expected position.

    Attribute names are those of the published checkpoints' ``kp_detector`` entry.

    Args:
        block_expansion: width of the first hourglass level.
        num_kp: number of keypoints ``K``.
        num_channels: image channels.
        max_features: channel cap of the hourglass.
        num_blocks: hourglass depth.
        temperature: softmax temperature of the heatmaps.
        estimate_jacobian: also predict a ``2 x 2`` jacobian per keypoint.
        scale_factor: resize factor applied (band-limited) before detection.
        single_jacobian_map: one jacobian map shared by all keypoints instead of one each.
        pad: padding of the 7x7 heatmap and jacobian convolutions (0 in all published configs, so the
            heatmaps are 6 pixels smaller than the features and their coordinate grid spans that smaller map).
    """

    def __init__(
        self,
        block_expansion: int,
        num_kp: int,
        num_channels: int,
        max_features: int,
        num_blocks: int,
        temperature: float,
        estimate_jacobian: bool = False,
        scale_factor: float = 1,
        single_jacobian_map: bool = False,
        pad: int = 0,
    ) -> None:
        super().__init__()
        self.predictor = Hourglass(block_expansion, num_channels, num_blocks, max_features, norm="batch")
        self.kp = nn.Conv2d(self.predictor.out_filters, num_kp, kernel_size=7, padding=pad)
        self.jacobian: nn.Conv2d | None = None
        self.num_jacobian_maps = 0
        if estimate_jacobian:
            self.num_jacobian_maps = 1 if single_jacobian_map else num_kp
            self.jacobian = nn.Conv2d(
                self.predictor.out_filters, 4 * self.num_jacobian_maps, kernel_size=7, padding=pad
            )
            # Start from identity jacobians, as the authors initialise them.
            with torch.no_grad():
                self.jacobian.weight.zero_()
                self.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0] * self.num_jacobian_maps))
        self.temperature = temperature
        self.scale_factor = scale_factor
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)

    def forward(self, image: Tensor) -> Keypoints:
        """Detect keypoints.

        Args:
            image: ``B x C x H x W`` images in ``[0, 1]``.

        Returns:
            Keypoints with ``value`` ``B x K x 2`` (``(x, y)`` in ``[-1, 1]``) and, when estimated, ``jacobian``
            ``B x K x 2 x 2``.
        """
        if self.scale_factor != 1:
            image = self.down(image)
        features = self.predictor(image)
        logits = self.kp(features)
        b, k, h, w = logits.shape
        heatmap = F.softmax(logits.view(b, k, h * w) / self.temperature, dim=2).view(b, k, h, w)
        grid = make_coordinate_grid((h, w), heatmap.dtype, heatmap.device)
        value = (heatmap.unsqueeze(-1) * grid).sum(dim=(2, 3))
        if self.jacobian is None:
            return Keypoints(value)
        jacobian_map = self.jacobian(features).reshape(b, self.num_jacobian_maps, 4, h, w)
        jacobian = (heatmap.unsqueeze(2) * jacobian_map).view(b, k, 4, h * w).sum(dim=-1)
        return Keypoints(value, jacobian.view(b, k, 2, 2))
