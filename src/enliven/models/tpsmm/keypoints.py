"""TPSMM's keypoint detector and its background motion predictor: ResNet-18 regressors (paper Sec. 3.1, 3.2)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from enliven.models.resnet import ResNet18

#: Control points per thin-plate-spline transformation.
POINTS_PER_TPS = 5


class TpsKeypointDetector(nn.Module):
    """Regress ``num_tps`` groups of 5 keypoints from an image with a ResNet-18.

    Args:
        num_tps: number K of TPS transformations.
        num_channels: image channels.

    ``forward`` maps ``B x C x H x W`` images in ``[0, 1]`` (not normalised further) to ``B x (5K) x 2`` keypoints,
    ``(x, y)`` in ``(-1, 1)``; keypoints ``5k .. 5k+4`` are the control points of transformation ``k``.
    """

    def __init__(self, num_tps: int, num_channels: int = 3) -> None:
        super().__init__()
        self.num_tps = num_tps
        self.fg_encoder = ResNet18(in_channels=num_channels, num_classes=num_tps * POINTS_PER_TPS * 2)

    def forward(self, image: Tensor) -> Tensor:
        raw = self.fg_encoder(image)
        return (torch.sigmoid(raw) * 2 - 1).view(image.shape[0], self.num_tps * POINTS_PER_TPS, 2)


class BgMotionPredictor(nn.Module):
    """Predict the affine background motion between two images (training only; inference ignores it).

    Args:
        num_channels: channels of each image; the ResNet-18 sees source and driving stacked.

    ``forward(source, driving)`` takes two ``B x C x H x W`` images in ``[0, 1]`` and returns ``B x 3 x 3``
    homogeneous matrices ``[[a, b, c], [d, e, f], [0, 0, 1]]`` acting on ``(x, y, 1)`` driving coordinates.
    The regression starts at the identity (zero weights, identity bias), as in the authors' code.
    """

    def __init__(self, num_channels: int = 3) -> None:
        super().__init__()
        self.bg_encoder = ResNet18(in_channels=2 * num_channels, num_classes=6)
        with torch.no_grad():
            self.bg_encoder.fc.weight.zero_()
            self.bg_encoder.fc.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def forward(self, source: Tensor, driving: Tensor) -> Tensor:
        batch = source.shape[0]
        affine = self.bg_encoder(torch.cat([source, driving], dim=1)).view(batch, 2, 3)
        last_row = affine.new_tensor([0.0, 0.0, 1.0]).expand(batch, 1, 3)
        return torch.cat([affine, last_row], dim=1)
