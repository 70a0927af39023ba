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


def inverse_3x3(matrix: Tensor, min_abs_det: float = 0.0) -> Tensor:
    """Closed-form inverse (adjugate over determinant) of ``... x 3 x 3`` matrices, exportable to ONNX.

    Determinants smaller than ``min_abs_det`` in magnitude are replaced by ``min_abs_det``, so (near-)singular
    matrices give large but finite entries instead of infinities.
    """
    m = matrix
    cofactor = lambda r0, r1, c0, c1: m[..., r0, c0] * m[..., r1, c1] - m[..., r0, c1] * m[..., r1, c0]  # noqa: E731
    # Row i of the adjugate is column i of the cofactor matrix.
    adjugate = torch.stack(
        [
            torch.stack([cofactor(1, 2, 1, 2), -cofactor(0, 2, 1, 2), cofactor(0, 1, 1, 2)], dim=-1),
            torch.stack([-cofactor(1, 2, 0, 2), cofactor(0, 2, 0, 2), -cofactor(0, 1, 0, 2)], dim=-1),
            torch.stack([cofactor(1, 2, 0, 1), -cofactor(0, 2, 0, 1), cofactor(0, 1, 0, 1)], dim=-1),
        ],
        dim=-2,
    )
    det = (m[..., 0, :] * adjugate[..., :, 0]).sum(-1)
    if min_abs_det > 0:
        det = torch.where(det.abs() < min_abs_det, torch.full_like(det, min_abs_det), det)
    return adjugate / det[..., None, None]


def fit_affine(points_from: Tensor, points_to: Tensor, ridge: float = 1e-4) -> Tensor:
    """Least-squares affine map between point sets, in closed form (exportable to ONNX).

    Args:
        points_from: ``B x K x 2`` points, ``K >= 3`` and not all on one line.
        points_to: ``B x K x 2`` where they go.
        ridge: added to the normal equations' diagonal, so degenerate sets give a finite map.

    Returns:
        ``B x 3 x 2`` matrix ``A`` with ``[x, y, 1] @ A`` approximating ``points_to`` (row-vector convention).
    """
    ones = torch.ones_like(points_from[..., :1])
    design = torch.cat([points_from, ones], dim=-1)  # B x K x 3
    # A literal identity, not torch.eye: exported graphs then hold a constant (LiteRT's interpreter lacks the iota
    # that torch.eye becomes).
    identity = torch.tensor(
        ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)), dtype=design.dtype, device=design.device
    )
    normal = design.transpose(1, 2) @ design + ridge * identity
    return inverse_3x3(normal) @ (design.transpose(1, 2) @ points_to)
