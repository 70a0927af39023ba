"""Coordinate grids, keypoint heatmaps and small closed-form linear algebra.

Convention: normalised ``(x, y)`` coordinates in ``[-1, 1]``, ``-1`` and ``+1`` at the centres of the first
and last pixels (this is what FOMM and TPSMM use; their ``grid_sample`` calls differ in ``align_corners``,
see each model).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F
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
    return torch.exp(-0.5 * (diff * diff).sum(-1) / variance)  # not diff**2: LiteRT cannot lower a 5-D pow


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


def fit_similarity(points_from: Tensor, points_to: Tensor, weights: Tensor | None = None) -> Tensor:
    """Least-squares similarity (rotation, uniform scale, translation) between point sets, in closed form.

    Args:
        points_from: ``B x K x 2`` points, ``K >= 2``.
        points_to: ``B x K x 2`` where they go.
        weights: ``B x K`` non-negative weights of the points (default all 1; at least two points weighing more
            than 0).

    Returns:
        ``B x 3 x 2`` matrix ``A`` with ``[x, y, 1] @ A`` approximating ``points_to`` (as :func:`fit_affine`). Points
        on top of each other give the translation of their means.
    """
    if weights is None:
        weights = torch.ones_like(points_from[..., 0])
    w = (weights / weights.sum(1, keepdim=True).clamp(min=1e-12)).unsqueeze(-1)  # B x K x 1, summing to 1
    mean_from, mean_to = (w * points_from).sum(1, keepdim=True), (w * points_to).sum(1, keepdim=True)
    a, b = points_from - mean_from, points_to - mean_to
    norm = (w * a * a).sum((1, 2))
    valid = norm > 1e-12
    safe = torch.where(valid, norm, torch.ones_like(norm))
    # The complex-number form: to = s e^{i theta} from + t, with s cos = <a, b> / |a|^2, s sin = (a x b) / |a|^2.
    cos = torch.where(valid, (w * a * b).sum((1, 2)) / safe, torch.ones_like(norm))
    cross = (w[..., 0] * (a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0])).sum(1)
    sin = torch.where(valid, cross / safe, torch.zeros_like(norm))
    linear = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], 1)  # B x 2 x 2, row vectors
    shift = mean_to - mean_from @ linear  # B x 1 x 2
    return torch.cat([linear, shift], 1)


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


#: Set inside :func:`litert_tracing`.
_LITERT_TRACING: ContextVar[bool] = ContextVar("enliven_litert_tracing", default=False)


@contextmanager
def litert_tracing() -> Iterator[None]:
    """Within this block models compute what LiteRT and TensorFlow graphs run well, with the same values to float
    rounding: :func:`grid_sample` samples by four row gathers (litert-torch lowers ``grid_sample`` to one scalar
    ``GATHER_ND`` per output value, measured 4-19x slower, ``docs/tensorflow.md``), and TPSMM solves its spline by
    Gauss-Jordan elimination (``torch.linalg.solve`` checks its result with an op ``torch.export`` cannot lower).
    Entered by :mod:`enliven.export.litert` while it traces a model.
    """
    token = _LITERT_TRACING.set(True)
    try:
        yield
    finally:
        _LITERT_TRACING.reset(token)


def is_litert_tracing() -> bool:
    """Whether a model is being traced for LiteRT or TensorFlow (:func:`litert_tracing`)."""
    return _LITERT_TRACING.get()


def grid_sample(
    image: Tensor, grid: Tensor, *, mode: str = "bilinear", padding_mode: str = "zeros", align_corners: bool = False
) -> Tensor:
    """``F.grid_sample`` with explicit settings, the one sampling call of the models.

    Args:
        image: ``N x C x H x W``.
        grid: ``N x h x w x 2`` sample positions ``(x, y)`` in ``[-1, 1]`` (``align_corners`` as in PyTorch).
        mode: ``bilinear`` (or ``bicubic``/``nearest``, which always use ``F.grid_sample``).
        padding_mode: ``zeros`` or ``border`` (``reflection`` always uses ``F.grid_sample``).
        align_corners: PyTorch's meaning.

    Returns:
        ``N x C x h x w``.
    """
    if _LITERT_TRACING.get() and mode == "bilinear" and padding_mode in ("zeros", "border"):
        return _gather_bilinear(image, grid, padding_mode == "border", align_corners)
    return F.grid_sample(image, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)


def _gather_bilinear(image: Tensor, grid: Tensor, border: bool, align_corners: bool) -> Tensor:
    """Bilinear ``grid_sample`` as four gathers of ``C``-wide rows of the channels-last image."""
    if image.shape[0] > 1 and image.stride(0) == 0:
        # One image expanded over the batch: gather from it alone (LiteRT's converter also mistranslates the
        # expand-permute-reshape of such a batch: measured 0.84 off).
        image = image[:1]
    n, c, h, w = image.shape
    size = grid.new_tensor([w, h])
    # Pixel coordinates: PyTorch's unnormalisation for each align_corners setting.
    pixel = (grid + 1) * (size - 1) / 2 if align_corners else ((grid + 1) * size - 1) / 2
    if border:
        pixel = torch.minimum(pixel.clamp(min=0), size - 1)
    low = pixel.floor()
    frac = pixel - low
    x0, y0 = low[..., 0], low[..., 1]
    fx, fy = frac[..., 0:1], frac[..., 1:2]  # N x h x w x 1
    rows = image.permute(0, 2, 3, 1).reshape(n * h * w, c)
    # Row offset of each grid's image (none for a single image shared by the batch).
    offset = (torch.arange(n, device=image.device) * (h * w)).view(n, 1, 1).to(grid.dtype) if n > 1 else 0

    def corner(x: Tensor, y: Tensor, weight: Tensor) -> Tensor:
        if not border:  # a corner outside the image contributes zero
            inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
            weight = weight * inside.unsqueeze(-1).to(weight.dtype)
        index = offset + y.clamp(0, h - 1) * w + x.clamp(0, w - 1)
        values = rows.index_select(0, index.reshape(-1).to(torch.int32)).view(*grid.shape[:3], c)
        return values * weight

    x1 = x0 + 1 if not border else torch.minimum(x0 + 1, size[0] - 1)
    y1 = y0 + 1 if not border else torch.minimum(y0 + 1, size[1] - 1)
    out = (
        corner(x0, y0, (1 - fx) * (1 - fy))
        + corner(x1, y0, fx * (1 - fy))
        + corner(x0, y1, (1 - fx) * fy)
        + corner(x1, y1, fx * fy)
    )
    return out.permute(0, 3, 1, 2).contiguous()  # as F.grid_sample's: callers view it
