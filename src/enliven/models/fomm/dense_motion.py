"""FOMM dense motion network: from keypoints and their jacobians to a dense warp and an occlusion map.

Numerics follow the authors' code exactly, including its ``grid_sample`` calls with PyTorch's default
``align_corners=False`` (which we pass explicitly). Note that, with that setting, sampling at the identity grid
(pixel centres in ``[-1, 1]``, see :func:`~enliven.geometry.make_coordinate_grid`) is not an exact identity but a
slight zoom; the published weights were trained with it, so it is kept.

The work splits in two: :meth:`DenseMotionNetwork.prepare_source` computes what depends on the source alone
(downsampled image, source heatmaps, the background channel block), and :meth:`DenseMotionNetwork.motion`
does the per-driving-frame part.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enliven.geometry import grid_sample, inverse_2x2, kp_to_gaussian, make_coordinate_grid
from enliven.models.blocks import AntiAliasInterpolation2d, Hourglass
from enliven.types import Keypoints, MotionField


@dataclass(frozen=True)
class DenseMotionSource:
    """Source-only inputs of the dense motion network, at the motion resolution ``h x w``.

    Attributes:
        image: ``S x C x h x w`` downsampled source in ``[0, 1]`` (``S`` is 1, or the batch size in training).
        keypoints: the source keypoints (batch ``S``).
        heatmap: ``S x K x h x w`` gaussian heatmaps of the source keypoints.
        background: ``S x (C + 1) x h x w`` the background's input channels: a zero heatmap difference and the
            source sampled at the identity grid.
    """

    image: Tensor
    keypoints: Keypoints
    heatmap: Tensor
    background: Tensor


def expand_batch(tensor: Tensor, batch: int) -> Tensor:
    """View a batch of one as ``batch`` entries (no copy); other batches are returned unchanged."""
    if tensor.shape[0] == batch:
        return tensor
    if tensor.shape[0] != 1:
        raise ValueError(f"cannot pair a batch of {tensor.shape[0]} with a batch of {batch}")
    return tensor.expand(batch, *tensor.shape[1:])


class DenseMotionNetwork(nn.Module):
    """Predicts the dense motion ``T_{s<-d}`` as a soft combination of per-keypoint affine motions (paper Sec. 3.2).

    Attribute names are those of the published checkpoints (``generator.dense_motion_network.*``).

    Args:
        block_expansion: width of the first hourglass level.
        num_blocks: hourglass depth.
        max_features: channel cap of the hourglass.
        num_kp: number of keypoints ``K``.
        num_channels: image channels ``C``.
        estimate_occlusion_map: also predict an occlusion map.
        scale_factor: motion is estimated at this fraction of the image size.
        kp_variance: variance of the keypoint heatmaps, in normalised units.
    """

    def __init__(
        self,
        block_expansion: int,
        num_blocks: int,
        max_features: int,
        num_kp: int,
        num_channels: int,
        estimate_occlusion_map: bool = False,
        scale_factor: float = 1,
        kp_variance: float = 0.01,
    ) -> None:
        super().__init__()
        in_features = (num_kp + 1) * (num_channels + 1)
        self.hourglass = Hourglass(block_expansion, in_features, num_blocks, max_features, norm="batch")
        self.mask = nn.Conv2d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.occlusion: nn.Conv2d | None = None
        if estimate_occlusion_map:
            self.occlusion = nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=7, padding=3)
        self.num_kp = num_kp
        self.scale_factor = scale_factor
        self.kp_variance = kp_variance
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)

    def prepare_source(self, source: Tensor, kp_source: Keypoints) -> DenseMotionSource:
        """Everything that depends on the source alone.

        Args:
            source: ``S x C x H x W`` source images in ``[0, 1]``.
            kp_source: their keypoints (batch ``S``).
        """
        image = self.down(source) if self.scale_factor != 1 else source
        s, _, h, w = image.shape
        heatmap = kp_to_gaussian(kp_source.value, (h, w), self.kp_variance)
        identity = make_coordinate_grid((h, w), image.dtype, image.device).expand(s, h, w, 2)
        sampled = grid_sample(image, identity, mode="bilinear", padding_mode="zeros", align_corners=False)
        background = torch.cat([sampled.new_zeros(s, 1, h, w), sampled], dim=1)
        return DenseMotionSource(image=image, keypoints=kp_source, heatmap=heatmap, background=background)

    def sparse_motions(self, source: DenseMotionSource, kp_driving: Keypoints) -> Tensor:
        """Per-keypoint backward warps (paper Eq. 4), without the background's identity warp.

        Near keypoint ``k``: ``z -> kp_s + J_s @ J_d^-1 @ (z - kp_d)``.

        Returns:
            ``B x K x h x w x 2`` sampling grids into the source, ``(x, y)`` in ``[-1, 1]``.
        """
        b = kp_driving.value.shape[0]
        h, w = source.image.shape[2:]
        grid = make_coordinate_grid((h, w), source.image.dtype, source.image.device)
        coords = grid.view(1, 1, h, w, 2) - kp_driving.value.view(b, self.num_kp, 1, 1, 2)
        kp_source = source.keypoints
        if kp_driving.jacobian is not None and kp_source.jacobian is not None:
            jacobian = kp_source.jacobian @ inverse_2x2(kp_driving.jacobian)
            coords = (jacobian[:, :, None, None] * coords.unsqueeze(-2)).sum(-1)
        return coords + kp_source.value.view(-1, self.num_kp, 1, 1, 2)

    def motion(self, source: DenseMotionSource, kp_driving: Keypoints) -> MotionField:
        """Dense motion towards each of ``B`` driving keypoint sets.

        Args:
            source: from :meth:`prepare_source` (batch 1, or batch ``B``).
            kp_driving: ``B`` keypoint sets (already transferred to the source, for animation).

        Returns:
            ``deformation`` ``B x h x w x 2``; ``mask`` ``B x (K + 1) x h x w`` (channel 0 is the background);
            ``occlusion`` a one-tuple of ``B x 1 x h x w`` maps in ``[0, 1]``, or empty.
        """
        b = kp_driving.value.shape[0]
        _, c, h, w = source.image.shape
        k = self.num_kp
        warps = self.sparse_motions(source, kp_driving)
        # One grid_sample over all keypoints: their grids are stacked along the height.
        image = expand_batch(source.image, b)
        deformed = grid_sample(
            image, warps.reshape(b, k * h, w, 2), mode="bilinear", padding_mode="zeros", align_corners=False
        )
        deformed = deformed.view(b, c, k, h, w).transpose(1, 2)
        heatmap = kp_to_gaussian(kp_driving.value, (h, w), self.kp_variance) - source.heatmap
        # Channel layout per motion k (background first): [heatmap difference, deformed source channels].
        per_kp = torch.cat([heatmap.unsqueeze(2), deformed], dim=2).view(b, k * (c + 1), h, w)
        features = self.hourglass(torch.cat([expand_batch(source.background, b), per_kp], dim=1))

        mask = F.softmax(self.mask(features), dim=1)
        identity = make_coordinate_grid((h, w), warps.dtype, warps.device).expand(b, 1, h, w, 2)
        all_warps = torch.cat([identity, warps], dim=1)
        deformation = (all_warps * mask.unsqueeze(-1)).sum(dim=1)
        occlusion = () if self.occlusion is None else (torch.sigmoid(self.occlusion(features)),)
        return MotionField(deformation=deformation, occlusion=occlusion, mask=mask)

    def forward(self, source: Tensor, kp_driving: Keypoints, kp_source: Keypoints) -> MotionField:
        """Source-and-driving in one call (training); see :meth:`motion`."""
        return self.motion(self.prepare_source(source, kp_source), kp_driving)
