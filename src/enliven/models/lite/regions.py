"""Face regions from face-mesh landmarks: where the mouth's interior is in a driving frame, where the lips are.

A mesh warp can only move what the source shows: when the driver opens a mouth that is closed in the photo, the
triangles between the lips stretch a line of lip into the gap, and a photo's grin stretches its teeth to twice their
height. :func:`polygon_mask` marks the inside of the driving frame's inner lip line, and :func:`mouth_motion` moves
the source there with the upper lip instead (teeth keep their size) and marks what that leaves uncovered, so that
the model knows where to synthesise (a dark interior) and the training loss knows where to look harder. Plain
tensor algebra (comparisons, sums, a grid sample), exported to ONNX with the rest of the model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from enliven.geometry import make_coordinate_grid
from enliven.models.lite.motion import resize_grid, warp


def polygon_mask(polygon: Tensor, size: int, feather: int = 1) -> Tensor:
    """Rasterise closed polygons on a ``size x size`` grid by the even-odd rule (a point is inside when a ray from
    it crosses the outline an odd number of times).

    Args:
        polygon: ``B x P x 2`` vertices in order, ``(x, y)`` in ``[-1, 1]`` (:mod:`enliven.types`); the last
            vertex joins the first. NaN vertices give an empty mask.
        size: side of the grid (its points span ``[-1, 1]``, as an image of that size's pixel centres).
        feather: soften the edge by a box filter of this radius in grid points (0: a hard 0/1 mask).

    Returns:
        ``B x 1 x size x size`` in ``[0, 1]``, 1 inside.
    """
    batch = polygon.shape[0]
    grid = make_coordinate_grid((size, size), polygon.dtype, polygon.device).view(1, size * size, 1, 2)
    start = polygon.unsqueeze(1)  # B x 1 x P x 2
    end = torch.roll(polygon, shifts=-1, dims=1).unsqueeze(1)
    px, py = grid[..., 0], grid[..., 1]  # 1 x N x 1
    straddles = (start[..., 1] > py) != (end[..., 1] > py)  # B x N x P
    dy = end[..., 1] - start[..., 1]
    # Where the edge is horizontal it cannot straddle; the divisor is made 1 there so no inf/NaN is formed.
    safe_dy = torch.where(dy.abs() < 1e-12, torch.ones_like(dy), dy)
    crossing_x = start[..., 0] + (py - start[..., 1]) * (end[..., 0] - start[..., 0]) / safe_dy
    crosses = straddles & (px < crossing_x)
    inside = (crosses.sum(-1) % 2).to(polygon.dtype).view(batch, 1, size, size)
    if feather > 0:
        inside = F.avg_pool2d(inside, 2 * feather + 1, stride=1, padding=feather, count_include_pad=False)
    return inside


def mouth_motion(
    deformation: Tensor, source_mouth: Tensor, lips_source: Tensor, lips_driving: Tensor, upper: Tensor
) -> tuple[Tensor, Tensor]:
    """Inside the driving mouth, move the source with its upper lip instead of stretching it between the lips, and
    find what the source cannot show there.

    Args:
        deformation: ``B x m x m x 2`` the backward flow (the mesh warp inside the face).
        source_mouth: ``1 x 1 x s x s`` (or ``B x``) the inside of the source's inner lip line
            (:func:`polygon_mask`).
        lips_source: ``1 x P x 2`` (or ``B x``) the source's inner lip line, ``(x, y)`` in ``[-1, 1]``.
        lips_driving: ``B x P x 2`` the driving frame's.
        upper: indices into the ``P`` points of the upper lip's middle.

    Returns:
        The flow with the driving mouth's inside moved as the upper lip moves (a translation: the upper teeth come
        along, unstretched), ``B x m x m x 2``, and ``B x 1 x s x s`` in ``[0, 1]``: the driving mouth's inside that
        the source's own moved mouth does not cover (a closed mouth that opens: all of it; a grin that opens wider:
        below the teeth), where the interior is synthesised.
    """
    size = deformation.shape[1]
    shift = lips_source.index_select(1, upper).mean(1) - lips_driving.index_select(1, upper).mean(1)  # B x 2
    grid = make_coordinate_grid((size, size), deformation.dtype, deformation.device)[None]
    moved = grid + shift[:, None, None, :]
    inside = polygon_mask(lips_driving, size, feather=0).permute(0, 2, 3, 1) > 0.5  # the lips keep the mesh warp
    deformation = torch.where(inside, moved, deformation)
    side = source_mouth.shape[-1]
    shown = warp(source_mouth, resize_grid(deformation, side))
    return deformation, (polygon_mask(lips_driving, side) - shown).clamp(min=0)
