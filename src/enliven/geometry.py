"""Coordinate grids, keypoint heatmaps and small closed-form linear algebra.

Convention: normalised ``(x, y)`` coordinates in ``[-1, 1]``, ``-1`` and ``+1`` at the centres of the first
and last pixels (this is what FOMM and TPSMM use; their ``grid_sample`` calls differ in ``align_corners``,
see each model).
"""

from __future__ import annotations

import torch
from torch import Tensor


def make_coordinate_grid(
    spatial_size: tuple[int, int], dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> Tensor:
    """Return the ``H x W x 2`` grid of ``(x, y)`` pixel-centre coordinates in ``[-1, 1]``."""
    h, w = spatial_size
    x = torch.arange(w, dtype=dtype, device=device)
    y = torch.arange(h, dtype=dtype, device=device)
    x = 2 * (x / (w - 1)) - 1
    y = 2 * (y / (h - 1)) - 1
    yy = y.view(-1, 1).expand(h, w)
    xx = x.view(1, -1).expand(h, w)
    return torch.stack([xx, yy], dim=2)


def kp_to_gaussian(mean: Tensor, spatial_size: tuple[int, int], variance: float) -> Tensor:
    """Render keypoints as unnormalised gaussian heatmaps.

    Args:
        mean: ``... x 2`` keypoint positions (e.g. ``B x K x 2``), ``(x, y)`` in ``[-1, 1]``.
        spatial_size: ``(H, W)`` of the heatmaps.
        variance: gaussian variance in normalised units.

    Returns:
        ``... x H x W`` heatmaps with peak value 1.
    """
    grid = make_coordinate_grid(spatial_size, mean.dtype, mean.device)
    lead = mean.shape[:-1]
    grid = grid.view((1,) * len(lead) + grid.shape)
    diff = grid - mean.view(*lead, 1, 1, 2)
    return torch.exp(-0.5 * (diff**2).sum(-1) / variance)


def inverse_2x2(matrix: Tensor) -> Tensor:
    """Closed-form inverse of ``... x 2 x 2`` matrices (exportable to ONNX, unlike ``torch.inverse``)."""
    a, b = matrix[..., 0, 0], matrix[..., 0, 1]
    c, d = matrix[..., 1, 0], matrix[..., 1, 1]
    det = a * d - b * c
    row0 = torch.stack([d, -b], dim=-1)
    row1 = torch.stack([-c, a], dim=-1)
    return torch.stack([row0, row1], dim=-2) / det[..., None, None]
