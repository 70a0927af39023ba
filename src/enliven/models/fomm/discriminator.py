"""FOMM multi-scale patch discriminator (training only; pix2pix-like, paper Sec. 3.3).

Checkpoint keys: ``discs.<scale>.down_blocks.<i>.conv.*`` and ``discs.<scale>.conv.*`` where ``<scale>`` is the
scale as written in the config with ``.`` replaced by ``-`` (``1`` -> ``discs.1``, ``0.5`` -> ``discs.0-5``).
With spectral normalisation the convolutions hold ``weight_orig``, ``weight_u`` and ``weight_v``, the layout of
:func:`torch.nn.utils.spectral_norm` that the published files use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enliven.geometry import kp_to_gaussian
from enliven.types import Keypoints


@dataclass(frozen=True)
class DiscriminatorOutput:
    """Per-scale outputs, in the order of :attr:`MultiScaleDiscriminator.scales`.

    Attributes:
        feature_maps: for each scale, every block's output (for the feature-matching loss).
        prediction_maps: for each scale, the ``B x 1 x h x w`` patch scores.
    """

    feature_maps: tuple[tuple[Tensor, ...], ...]
    prediction_maps: tuple[Tensor, ...]


def _conv(in_features: int, out_features: int, kernel_size: int, sn: bool) -> nn.Module:
    conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size)
    # The legacy hook-based spectral norm, not the parametrization: its state_dict layout is the published one.
    return nn.utils.spectral_norm(conv) if sn else conv


class DiscriminatorBlock(nn.Module):
    """4x4 valid convolution, optional instance norm, leaky ReLU (0.2), optional 2x2 average pooling."""

    def __init__(self, in_features: int, out_features: int, norm: bool, pool: bool, sn: bool) -> None:
        super().__init__()
        self.conv = _conv(in_features, out_features, 4, sn)
        self.norm = nn.InstanceNorm2d(out_features, affine=True) if norm else None
        self.pool = pool

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        if self.norm is not None:
            out = self.norm(out)
        out = F.leaky_relu(out, 0.2)
        return F.avg_pool2d(out, (2, 2)) if self.pool else out


class Discriminator(nn.Module):
    """Patch discriminator for one scale.

    Args:
        num_channels: image channels.
        block_expansion: width of the first block.
        num_blocks: number of blocks (all but the last pool by 2).
        max_features: channel cap.
        sn: spectral normalisation.
        use_kp: append the driving keypoints' gaussian heatmaps to the input.
        num_kp: number of keypoints (for ``use_kp``).
        kp_variance: heatmap variance.
    """

    def __init__(
        self,
        num_channels: int,
        block_expansion: int,
        num_blocks: int,
        max_features: int,
        sn: bool = False,
        use_kp: bool = False,
        num_kp: int = 10,
        kp_variance: float = 0.01,
    ) -> None:
        super().__init__()
        widths = [num_channels + (num_kp if use_kp else 0)]
        widths += [min(max_features, block_expansion * 2 ** (i + 1)) for i in range(num_blocks)]
        self.down_blocks = nn.ModuleList(
            DiscriminatorBlock(widths[i], widths[i + 1], norm=i != 0, pool=i != num_blocks - 1, sn=sn)
            for i in range(num_blocks)
        )
        self.conv = _conv(widths[-1], 1, 1, sn)
        self.use_kp = use_kp
        self.kp_variance = kp_variance

    def forward(self, image: Tensor, kp: Keypoints | None = None) -> tuple[list[Tensor], Tensor]:
        """Return every block's output and the patch scores of ``B x C x H x W`` images."""
        out = image
        if self.use_kp:
            if kp is None:
                raise ValueError("this discriminator is keypoint-conditioned (use_kp): pass the keypoints")
            out = torch.cat([out, kp_to_gaussian(kp.value, tuple(image.shape[2:]), self.kp_variance)], dim=1)
        feature_maps = []
        for block in self.down_blocks:
            out = block(out)
            feature_maps.append(out)
        return feature_maps, self.conv(out)


def scale_key(scale: float) -> str:
    """Checkpoint name of a scale's discriminator: the scale as written, ``.`` replaced by ``-``."""
    return str(scale).replace(".", "-")


class MultiScaleDiscriminator(nn.Module):
    """One :class:`Discriminator` per image scale.

    Args:
        scales: the scales, as written in the config (``1`` and ``1.0`` give different checkpoint names).
        num_channels, block_expansion, num_blocks, max_features, sn, use_kp, num_kp, kp_variance: see
            :class:`Discriminator`.
    """

    def __init__(
        self,
        scales: Sequence[float],
        num_channels: int,
        block_expansion: int,
        num_blocks: int,
        max_features: int,
        sn: bool = False,
        use_kp: bool = False,
        num_kp: int = 10,
        kp_variance: float = 0.01,
    ) -> None:
        super().__init__()
        self.scales = tuple(scales)
        self.discs = nn.ModuleDict(
            (
                scale_key(s),
                Discriminator(num_channels, block_expansion, num_blocks, max_features, sn, use_kp, num_kp, kp_variance),
            )
            for s in self.scales
        )

    def forward(self, pyramid: Sequence[Tensor], kp: Keypoints | None = None) -> DiscriminatorOutput:
        """Score an image pyramid.

        Args:
            pyramid: one ``B x C x H_s x W_s`` image batch per entry of :attr:`scales`, in that order (the image
                band-limited and resized by each scale, e.g. with ``AntiAliasInterpolation2d``).
            kp: the driving keypoints, for keypoint-conditioned discriminators.
        """
        if len(pyramid) != len(self.scales):
            raise ValueError(f"expected {len(self.scales)} images (scales {self.scales}), got {len(pyramid)}")
        features, predictions = [], []
        for image, disc in zip(pyramid, self.discs.values(), strict=True):
            maps, prediction = disc(image, kp)
            features.append(tuple(maps))
            predictions.append(prediction)
        return DiscriminatorOutput(feature_maps=tuple(features), prediction_maps=tuple(predictions))
