"""Convolutional building blocks shared by the FOMM and TPSMM families.

Both papers use the same blocks; FOMM normalises with batch norm and TPSMM with instance norm, so every
block takes ``norm``. Attribute names (``conv``, ``norm``, ``conv1``, ...) are those of the authors' code,
because published checkpoints are keyed by them.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NormKind = Literal["batch", "instance"]


def make_norm(kind: NormKind, channels: int) -> nn.Module:
    """Return an affine 2-D normalisation layer of the given kind."""
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    raise ValueError(f"unknown norm kind {kind!r}")


class ResBlock2d(nn.Module):
    """Pre-activation residual block; keeps channels and resolution."""

    def __init__(self, in_features: int, kernel_size: int, padding: int, norm: NormKind = "batch") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_features, in_features, kernel_size=kernel_size, padding=padding)
        self.conv2 = nn.Conv2d(in_features, in_features, kernel_size=kernel_size, padding=padding)
        self.norm1 = make_norm(norm, in_features)
        self.norm2 = make_norm(norm, in_features)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


class UpBlock2d(nn.Module):
    """Nearest-neighbour x2 upsampling, then conv, norm, ReLU."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int = 3,
        padding: int = 1,
        groups: int = 1,
        norm: NormKind = "batch",
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=padding, groups=groups)
        self.norm = make_norm(norm, out_features)

    def forward(self, x: Tensor) -> Tensor:
        out = F.interpolate(x, scale_factor=2)
        return F.relu(self.norm(self.conv(out)))


class DownBlock2d(nn.Module):
    """Conv, norm, ReLU, then 2x2 average pooling."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int = 3,
        padding: int = 1,
        groups: int = 1,
        norm: NormKind = "batch",
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=padding, groups=groups)
        self.norm = make_norm(norm, out_features)
        self.pool = nn.AvgPool2d(kernel_size=(2, 2))

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(F.relu(self.norm(self.conv(x))))


class SameBlock2d(nn.Module):
    """Conv, norm, ReLU at the same resolution."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        groups: int = 1,
        kernel_size: int = 3,
        padding: int = 1,
        norm: NormKind = "batch",
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=padding, groups=groups)
        self.norm = make_norm(norm, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.norm(self.conv(x)))


def _width(block_expansion: int, max_features: int, level: int) -> int:
    return min(max_features, block_expansion * (2**level))


class Encoder(nn.Module):
    """Hourglass encoder: ``num_blocks`` down blocks; returns the input and every block's output."""

    def __init__(
        self,
        block_expansion: int,
        in_features: int,
        num_blocks: int = 3,
        max_features: int = 256,
        norm: NormKind = "batch",
    ) -> None:
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock2d(
                in_features if i == 0 else _width(block_expansion, max_features, i),
                _width(block_expansion, max_features, i + 1),
                kernel_size=3,
                padding=1,
                norm=norm,
            )
            for i in range(num_blocks)
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class Decoder(nn.Module):
    """Hourglass decoder with skip connections.

    ``out_channels[i]`` is the channel count of the ``i``-th output of :meth:`forward_pyramid` (coarse to fine);
    ``out_filters`` that of the final, full-resolution output.
    """

    def __init__(
        self,
        block_expansion: int,
        in_features: int,
        num_blocks: int = 3,
        max_features: int = 256,
        norm: NormKind = "batch",
    ) -> None:
        super().__init__()
        blocks = []
        self.out_channels: list[int] = []
        for i in reversed(range(num_blocks)):
            in_filters = (1 if i == num_blocks - 1 else 2) * _width(block_expansion, max_features, i + 1)
            self.out_channels.append(in_filters)
            blocks.append(UpBlock2d(in_filters, _width(block_expansion, max_features, i), norm=norm))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features
        # TPSMM's convention: the list holds the input width of every up block, then the final width.
        self.out_channels.append(self.out_filters)

    def forward_pyramid(self, features: list[Tensor]) -> list[Tensor]:
        """Decode encoder features; return the output after each up block, coarse to fine."""
        features = list(features)
        out = features.pop()
        outs = []
        for block in self.up_blocks:
            out = torch.cat([block(out), features.pop()], dim=1)
            outs.append(out)
        return outs

    def forward(self, features: list[Tensor]) -> Tensor:
        return self.forward_pyramid(features)[-1]


class Hourglass(nn.Module):
    """U-Net style encoder-decoder (FOMM, TPSMM)."""

    def __init__(
        self,
        block_expansion: int,
        in_features: int,
        num_blocks: int = 3,
        max_features: int = 256,
        norm: NormKind = "batch",
    ) -> None:
        super().__init__()
        self.encoder = Encoder(block_expansion, in_features, num_blocks, max_features, norm)
        self.decoder = Decoder(block_expansion, in_features, num_blocks, max_features, norm)
        self.out_filters = self.decoder.out_filters
        self.out_channels = self.decoder.out_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))

    def forward_pyramid(self, x: Tensor) -> list[Tensor]:
        return self.decoder.forward_pyramid(self.encoder(x))


class AntiAliasInterpolation2d(nn.Module):
    """Gaussian blur then resampling by ``scale``: band-limited downsampling of an image.

    ``sigma = (1/scale - 1)/2`` and a ``2*round(4*sigma)+1`` kernel, as in both papers' code.
    """

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        sigma = (1 / scale - 1) / 2
        kernel_size = 2 * round(sigma * 4) + 1
        self.ka = kernel_size // 2
        self.kb = self.ka - 1 if kernel_size % 2 == 0 else self.ka
        coords = torch.arange(kernel_size, dtype=torch.float32)
        mean = (kernel_size - 1) / 2
        g = torch.exp(-((coords - mean) ** 2) / (2 * sigma**2)) if sigma > 0 else torch.ones(kernel_size)
        kernel = g[:, None] * g[None, :]
        kernel = kernel / kernel.sum()
        self.register_buffer("weight", kernel.view(1, 1, kernel_size, kernel_size).repeat(channels, 1, 1, 1))
        self.groups = channels
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        if self.scale == 1.0:
            return x
        out = F.pad(x, (self.ka, self.kb, self.ka, self.kb))
        out = F.conv2d(out, weight=self.weight, groups=self.groups)
        step = round(1 / self.scale)
        if abs(step * self.scale - 1) < 1e-9:
            # Nearest resampling by 1/step picks every step-th pixel: the same values as F.interpolate, and what
            # LiteRT runs right (its nearest resize picks other pixels).
            return out[:, :, ::step, ::step]
        return F.interpolate(out, scale_factor=(self.scale, self.scale))
