"""The mesh warp at about a pixel's spacing where the face moves by a few pixels: the eyelids and the lips.

enliven-lite's flow lives on a 64 x 64 grid (its mesh warp on 32 x 32), four to eight pixels of a 256 px crop per
grid point. An eye is about ten pixels tall there and a blink moves its upper lid by as much: sampled that coarsely,
the lid's displacement is spread over the skin above it and the eye only narrows; the lips' opening is likewise
smoothed away (dlib measured the mouth's opening range at 0.61 of the driver's, against 0.81 for the same mesh warp
rasterised at full resolution). Here the mesh warp is computed again on a small grid over each region's bounding box
in the driving frame, with only the triangles around that region (:func:`region_triangles`, chosen once per source on
the host), and :func:`refine_grid` takes it instead of the coarse flow wherever a region triangle covers a pixel.
The three regions (24 x 24 points and 128 triangles each) take about 1.3 ms a frame and the refinement 0.6 ms (one
thread), against 3.4 ms for the coarse mesh warp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from enliven.face_mesh import LEFT_EYE, OUTER_LIPS, RIGHT_EYE
from enliven.geometry import grid_sample, make_coordinate_grid
from enliven.models.lite.motion import piecewise_affine_flow

#: The regions, as face-mesh points whose bounding box (grown by :data:`REGION_GROW`) gathers its triangles.
EYE_REGIONS = (RIGHT_EYE, LEFT_EYE)
MOUTH_REGION = (OUTER_LIPS,)
#: Each side of a region's box grows by this fraction of its longer side: the lid crease, the skin around the lips.
REGION_GROW = 0.35
#: Triangles per region (the nearest to its centre; repeated to fill up): a constant shape for exported graphs.
TRIANGLES_PER_REGION = 128
#: Side of each region's grid: about two pixels of a 256 px crop over an eye, three over the mouth, a pixel or so of
#: the 128 px the flow is refined at (:data:`REFINE_REDUCTION`): 32 put a closed lid 1.97 instead of 2.05 px from its
#: place there (tests/test_lite_fine.py's blink) at 1.5 times the cost.
REGION_GRID = 24
#: The whole frame's flow is refined at its resolution divided by this: at 128 px for a 256 px model the validation
#: scores were those of 256 px (AKD 1.420 against 1.410 px, mouth L1 0.0326 against 0.0327; cross-identity mouth
#: correlation 0.813 against 0.817) at a third of the cost (0.6 against 1.6 ms a frame).
REFINE_REDUCTION = 2


def region_triangles(
    mesh_source: Tensor, triangles: Tensor, regions: tuple[tuple[int, ...], ...], count: int = TRIANGLES_PER_REGION
) -> Tensor:
    """The triangles of each source's mesh around each region: a selection, run on the host once per source.

    A triangle belongs to a region when its centroid lies in the region's points' bounding box grown by
    :data:`REGION_GROW` and all its corners are mesh points (not border anchors); one in two regions' boxes belongs
    to the nearer (relative to their sizes), so regions never share a triangle. The ``count`` nearest to the box's
    centre are kept, the nearest repeated to fill up (a repeated triangle changes no result).

    Args:
        mesh_source: ``B x M x 2`` the mesh points, ``(x, y)`` in ``[-1, 1]``.
        triangles: ``B x T x 3`` the mesh (:func:`~enliven.models.lite.motion.source_triangles`).
        regions: per region, the indices (into the ``M`` points) of the points it is about.
        count: triangles per region.

    Returns:
        ``B x R x count x 3`` (int64, on ``triangles``' device) indices as in ``triangles``.
    """
    points = mesh_source.detach().to("cpu", torch.float64).numpy()
    meshes = triangles.detach().cpu().numpy()
    count_points = points.shape[1]
    selected = np.empty((len(points), len(regions), count, 3), dtype=np.int64)
    for b, (source, mesh) in enumerate(zip(points, meshes, strict=True)):
        of_mesh = mesh[(mesh < count_points).all(axis=1)]
        centroids = source[of_mesh].mean(axis=1)  # T' x 2
        # Each triangle's distance to each region's centre, in units of the region's size; inf outside its box.
        distance = np.full((len(regions), len(of_mesh)), np.inf)
        for r, indices in enumerate(regions):
            low, high = source[list(indices)].min(axis=0), source[list(indices)].max(axis=0)
            side = max(float((high - low).max()), 1e-6)
            inside = ((centroids >= low - REGION_GROW * side) & (centroids <= high + REGION_GROW * side)).all(axis=1)
            distance[r, inside] = np.linalg.norm(centroids[inside] - (low + high) / 2, axis=1) / side
        owner = distance.argmin(axis=0)  # a triangle near two regions (a turned head's eyes) belongs to the nearer
        for r in range(len(regions)):
            mine = np.flatnonzero((owner == r) & np.isfinite(distance[r]))
            order = mine[np.argsort(distance[r, mine])][:count]
            chosen = of_mesh[order] if len(order) else of_mesh[:1]
            selected[b, r, : len(chosen)] = chosen
            selected[b, r, len(chosen) :] = chosen[0]
    return torch.from_numpy(selected).to(triangles.device)


@dataclass(frozen=True)
class FineWarp:
    """The mesh warp on each region's grid.

    Attributes:
        values: ``B x R x 3 x G x G``: per region, the displacement ``(x, y)`` from each grid point to its source
            position times the coverage, then the coverage (1 where a region triangle covers the grid point, else
            0): premultiplied, so that sampling between covered and uncovered points blends correctly (and a still
            face stays exactly still).
        low: ``B x R x 2`` the corner of each region's grid at ``(-1, -1)`` of its own coordinates, in the frame's
            ``[-1, 1]`` coordinates.
        high: ``B x R x 2`` the opposite corner.
    """

    values: Tensor
    low: Tensor
    high: Tensor


def fine_warp(points_source: Tensor, points_driving: Tensor, regions: Tensor, size: int = REGION_GRID) -> FineWarp:
    """The mesh warp on a ``size x size`` grid over each region's triangles' box in the output frame.

    Args:
        points_source: ``B x M x 2`` (or ``1 x M x 2``) the mesh points in the source (region triangles have no
            border anchors), ``(x, y)`` in ``[-1, 1]``.
        points_driving: ``B x M x 2`` the same points in the output frame.
        regions: ``B x R x C x 3`` (or ``1 x R x C x 3``) triangles per region (:func:`region_triangles`).
        size: side of each region's grid.
    """
    batch, count = points_driving.shape[0], regions.shape[1]
    regions = regions.expand(batch, -1, -1, -1)
    corners = torch.gather(
        points_driving, 1, regions.reshape(batch, -1, 1).expand(-1, -1, 2)
    ).view(batch, count, -1, 2)  # fmt: skip
    low, high = corners.amin(2), corners.amax(2)  # B x R x 2
    unit = (make_coordinate_grid((size, size), points_driving.dtype, points_driving.device).view(1, 1, -1, 2) + 1) / 2
    grid = low.unsqueeze(2) + unit * (high - low).unsqueeze(2)  # B x R x N x 2
    flow, _, depth = piecewise_affine_flow(
        points_source.expand(batch, -1, -1).repeat_interleave(count, 0),
        points_driving.repeat_interleave(count, 0),
        regions.reshape(batch * count, -1, 3),
        grid.reshape(batch * count, -1, 2),
    )
    covered = (depth >= 0).to(flow.dtype).unsqueeze(-1)  # B R x N x 1
    displacement = flow - grid.reshape(batch * count, -1, 2)
    values = torch.cat([displacement * covered, covered], -1).view(batch, count, size, size, 3).permute(0, 1, 4, 2, 3)
    return FineWarp(values=values, low=low, high=high)


def refine_grid(grid: Tensor, fine: FineWarp) -> Tensor:
    """Take the fine mesh warp instead of ``grid`` where a region triangle covers a point, blended at the edges.

    The regions' grids sit side by side in one atlas (a column of zeros between them) sampled once over the frame:
    each frame position inside a region's box is sent to that region's part of the atlas (the first region's where
    boxes overlap), every other position outside the atlas.

    Args:
        grid: ``B x S x S x 2`` a backward flow over the whole frame (``(x, y)`` in ``[-1, 1]``, pixel centres).
        fine: :func:`fine_warp` of the same frames.

    Returns:
        ``B x S x S x 2``.
    """
    batch, side, count, size = grid.shape[0], grid.shape[1], fine.values.shape[1], fine.values.shape[-1]
    atlas = F.pad(fine.values, (0, 1)).permute(0, 2, 3, 1, 4).reshape(batch, 3, size, count * (size + 1))
    # Positions along x and along y in each region's own [-1, 1] coordinates (S values per region each): the boxes
    # are axis-aligned, so membership and atlas coordinates are outer combinations of these.
    frame = make_coordinate_grid((side, side), grid.dtype, grid.device).unsqueeze(0)  # 1 x S x S x 2
    coords = frame[0, 0, :, 0]  # the pixel centres along either axis
    scale = 2 / (fine.high - fine.low).clamp(min=1e-6)  # B x R x 2
    local = coords.view(1, 1, side, 1) * scale.unsqueeze(2) - (fine.low * scale + 1).unsqueeze(2)  # B x R x S x 2
    inside = ((local >= -1) & (local <= 1)).to(grid.dtype)  # B x R x S x 2
    width = count * (size + 1) - 1  # the atlas's last column, in pixels
    # Region r's x in the atlas, normalised: its part starts at column r (size + 1).
    offsets = torch.arange(count, dtype=grid.dtype, device=grid.device).view(1, count, 1) * (size + 1)
    atlas_x = ((local[..., 0] + 1) * ((size - 1) / 2) + offsets) * (2 / width) - 1  # B x R x S
    free = torch.ones(batch, side, side, dtype=grid.dtype, device=grid.device)
    x = torch.zeros_like(free)
    y = torch.zeros_like(free)
    for region in range(count):
        member = free * inside[:, region, :, 1].unsqueeze(2) * inside[:, region, :, 0].unsqueeze(1)  # B x S(y) x S(x)
        x = x + member * atlas_x[:, region].unsqueeze(1)
        y = y + member * local[:, region, :, 1].unsqueeze(2)
        free = free - member
    outside = -3.0  # beyond the atlas with a pixel to spare: bilinear sampling gives zeros there
    positions = torch.stack([x + free * outside, y + free * outside], -1)  # B x S x S x 2
    sampled = grid_sample(atlas, positions, mode="bilinear", padding_mode="zeros", align_corners=True)
    displacement = sampled[:, :2].permute(0, 2, 3, 1)  # B x S x S x 2
    cover = sampled[:, 2:].permute(0, 2, 3, 1)  # B x S x S x 1
    return grid + cover * (frame - grid) + displacement
