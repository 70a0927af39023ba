"""Face regions from face-mesh landmarks: where the mouth's interior is in a driving frame, where the lips are.

A mesh warp can only move what the source shows: when the driver opens a mouth that is closed in the photo, the
triangles between the lips stretch a line of lip into the gap. :func:`polygon_mask` marks the inside of the
driving frame's inner lip line, so that the model knows where to synthesise (a dark interior, teeth) instead of
stretching, and the training loss knows where to look harder. Plain tensor algebra (comparisons, a sum), exported
to ONNX with the rest of the model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from enliven.geometry import make_coordinate_grid


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
