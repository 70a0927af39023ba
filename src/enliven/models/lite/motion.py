"""Dense motion of enliven-lite: candidate flows spread from face-mesh landmarks, mixed by a small network.

Given where the landmarks are in the source and where they should be in the output (the driving frame, or the
source moved by the driving motion), :func:`landmark_flows` builds candidate backward flows on a coarse grid:

* identity: the background stays where it is;
* the least-squares affine map of all landmarks: the head moves as a whole (hair, ears, neck follow it);
* piecewise affine (:func:`mesh_warp_flow`): each triangle of the source's mesh (the Delaunay triangulation of its
  face-mesh points, all 468 by default, a denser mesh than the driving landmarks, and of anchors on the image border;
  :func:`source_triangles`) moves by its own affine map, the classical mesh warp: exact at every mesh point, linear
  in between, the border pinned;
* per kernel width ``sigma``: that affine map plus the landmarks' residual displacements spread by a normalised
  Gaussian kernel (Nadaraya-Watson): exact near the landmarks (lips, eyelids, brows), the affine map far from them.

:class:`LiteDenseMotion` sees the source warped by every candidate and how near each pixel lies to the landmarks,
and predicts a per-pixel soft choice among the candidates (optionally a small residual flow) and an occlusion map
(where the warped source cannot explain the output: the inside of an opening mouth, uncovered background). Inside
the driving face (grown by a margin) the choice is the mesh warp, which no mixture placed the landmarks better than
(dlib's landmark distance, AKD): the network chooses for hair, neck and background only.

All of it is plain tensor algebra (matmul, exp, grid_sample), exportable to ONNX; the one solver, the source's
triangulation, runs once per source on the host (:func:`source_triangles`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enliven.face_mesh import border_anchor_points, delaunay_triangles
from enliven.geometry import fit_affine, grid_sample, inverse_3x3, make_coordinate_grid
from enliven.types import MotionField

#: Added to the kernel weights' sum, so that far from every landmark the spread residual fades to zero.
KERNEL_FLOOR = 0.05
#: Triangles whose driving-frame area is below this (normalised units squared) count as degenerate (closed eyes).
MIN_TRIANGLE_DET = 1e-8
#: Initial logit of the preferred candidate flow (the piecewise-affine one): softmax gives it ~0.8 at first.
PREFERRED_CANDIDATE_BIAS = 3.0
#: Initial logit of the occlusion map: everything starts visible (sigmoid(3) = 0.95), the decoder's correction off.
VISIBLE_BIAS = 3.0
#: Point-triangle pairs searched at once (:func:`piecewise_affine_flow`): 128 grid points of the whole mesh's ~950
#: triangles, or more points of fewer triangles; small enough for the CPU's cache.
SEARCH_PAIRS = 128 * 1024
#: Scale of the network's residual flow (normalised units): it corrects the candidates, it does not replace them.
RESIDUAL_SCALE = 0.1


def landmark_flows(
    kp_source: Tensor, kp_driving: Tensor, size: int, sigmas: tuple[float, ...], piecewise: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Candidate backward flows from the output frame to the source (see the module docstring).

    Args:
        kp_source: ``B x K x 2`` landmarks in the source, ``(x, y)`` in ``[-1, 1]``.
        kp_driving: ``B x K x 2`` where they are in the output frame.
        size: side of the square grid.
        sigmas: Gaussian kernel widths in normalised units.
        piecewise: ``B x size x size x 2`` the piecewise-affine candidate (:func:`mesh_warp_flow`, over its own
            mesh), or ``None`` to leave it out.

    Returns:
        grids: ``B x C x size x size x 2`` sampling positions in the source: identity, affine, piecewise affine
        (when given), then one per sigma.
        density: ``B x len(sigmas) x size x size``: ``log(1 + sum of kernel weights)`` per sigma.
    """
    batch, dtype = kp_driving.shape[0], kp_driving.dtype
    grid = make_coordinate_grid((size, size), dtype, kp_driving.device).view(1, size * size, 2)
    affine = fit_affine(kp_driving, kp_source)  # B x 3 x 2, output -> source
    affine_grid = grid @ affine[:, :2] + affine[:, 2:]  # B x HW x 2
    grids = [grid.expand(batch, -1, -1), affine_grid]
    if piecewise is not None:
        grids.append(piecewise.reshape(batch, size * size, 2))
    residual = kp_source - (kp_driving @ affine[:, :2] + affine[:, 2:])  # B x K x 2
    # |p - d|^2 expanded, so the B x HW x K distances come from one matmul.
    dist2 = (grid**2).sum(-1, keepdim=True) - 2 * grid @ kp_driving.transpose(1, 2) + (kp_driving**2).sum(-1)[:, None]
    dist2 = dist2.clamp_(min=0)
    densities = []
    for sigma in sigmas:
        # Clamped: weights below e^-30 change nothing, and their denormal floats would slow every later op. In place:
        # these B x HW x K tensors are the candidates' largest (a third less time than fresh ones).
        weights = (dist2 * (-0.5 / sigma**2)).clamp_(min=-30.0).exp_()
        total = weights.sum(-1, keepdim=True)
        grids.append(affine_grid + (weights @ residual) / (total + KERNEL_FLOOR))
        densities.append(torch.log1p(total))
    stacked = torch.stack(grids, dim=1).view(batch, len(grids), size, size, 2)
    density = torch.cat(densities, dim=-1).transpose(1, 2).reshape(batch, len(sigmas), size, size)
    return stacked, density


@dataclass(frozen=True)
class MeshWarp:
    """The mesh warp on a grid.

    Attributes:
        flow: ``B x size x size x 2`` source positions (backward flow), ``(x, y)`` in ``[-1, 1]``.
        face: ``B x 1 x size x size``: 1 where the grid point lies in a triangle of mesh points only (inside the
            driving face), 0 where it lies in a triangle with a border anchor (around the face).
    """

    flow: Tensor
    face: Tensor


def source_triangles(mesh_source: Tensor) -> Tensor:
    """The mesh of each source: the Delaunay triangulation of its mesh points and the border anchors.

    A solver, so it runs on the host (scipy), once per source; ONNX graphs take its result as an input. Points are
    clamped just inside the border for the triangulation (a face cut by the frame), so the anchors are exactly the
    convex hull and every source has the same number of triangles, ``2 M + A - 2`` for ``M`` points and ``A``
    anchors; a source with coincident points has fewer and repeats its first triangle to fill up.

    Args:
        mesh_source: ``B x M x 2`` mesh points, ``(x, y)`` in ``[-1, 1]``.

    Returns:
        ``B x T x 3`` (int64, on ``mesh_source``'s device) indices into the ``M`` points followed by the anchors
        (indices ``M ..``), as :func:`mesh_warp_flow` takes them.
    """
    anchors = border_anchors(1, torch.float64, torch.device("cpu"))[0].numpy()
    points = mesh_source.detach().to("cpu", torch.float64).numpy().clip(-1 + 1e-3, 1 - 1e-3)
    count = 2 * points.shape[1] + len(anchors) - 2
    triangles = np.empty((len(points), count, 3), dtype=np.int64)
    for index, source in enumerate(points):
        found = delaunay_triangles(np.concatenate([source, anchors]))
        triangles[index, : len(found)] = found
        triangles[index, len(found) :] = found[0]
    return torch.from_numpy(triangles).to(mesh_source.device)


def mesh_warp_flow(mesh_source: Tensor, mesh_driving: Tensor, triangles: Tensor, size: int) -> MeshWarp:
    """The mesh warp on a ``size x size`` grid: :func:`piecewise_affine_flow` over the mesh points and the border
    anchors (:func:`border_anchors`), so that the image border stays pinned.

    Args:
        mesh_source: ``B x M x 2`` (or ``1 x M x 2``) mesh points in the source, ``(x, y)`` in ``[-1, 1]``.
        mesh_driving: ``B x M x 2`` where they are in the output frame.
        triangles: ``B x T x 3`` (or ``1 x T x 3``) indices into the ``M`` points followed by the anchors (indices
            ``M ..``), e.g. :func:`source_triangles`.
        size: side of the grid.
    """
    batch, count, dtype, device = mesh_driving.shape[0], mesh_driving.shape[1], mesh_driving.dtype, mesh_driving.device
    anchors = border_anchors(batch, dtype, device)
    points_source = torch.cat([mesh_source.expand(batch, -1, -1), anchors], 1)
    points_driving = torch.cat([mesh_driving, anchors], 1)
    grid = make_coordinate_grid((size, size), dtype, device).view(1, size * size, 2)
    triangles = triangles.expand(batch, -1, -1)
    flow, chosen, depth = piecewise_affine_flow(points_source, points_driving, triangles, grid)
    of_face = (triangles < count).all(-1)  # B x T
    face = torch.gather(of_face, 1, chosen) & (depth >= 0)
    return MeshWarp(flow.view(batch, size, size, 2), face.to(dtype).view(batch, 1, size, size))


def border_anchors(batch: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``B x A x 2`` points around the border of ``[-1, 1]^2`` (:func:`enliven.face_mesh.border_anchor_points`)."""
    anchors = torch.tensor(border_anchor_points() * 2 - 1, dtype=dtype, device=device)
    return anchors.expand(batch, -1, -1)


def piecewise_affine_flow(
    points_source: Tensor, points_driving: Tensor, triangles: Tensor, grid: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """The backward flow of a piecewise-affine warp: each grid point moves with the driving triangle it lies in.

    Args:
        points_source: ``B x P x 2`` triangle corners in the source.
        points_driving: ``B x P x 2`` the same corners in the output frame.
        triangles: ``B x T x 3`` corner indices.
        grid: ``1 x N x 2`` (or ``B x N x 2``) output positions.

    Returns:
        ``B x N x 2`` source positions, ``B x N`` the index of each point's triangle and ``B x N`` its smallest
        barycentric coordinate there (``>= 0`` inside). A point inside several triangles (where the driving mesh
        folds) or inside none takes the triangle whose smallest barycentric coordinate is largest: the one it lies
        deepest in, or nearest outside.
    """
    batch, count = points_driving.shape[0], triangles.shape[1]
    corner_index = triangles.reshape(batch, count * 3, 1).expand(-1, -1, 2)
    corners_driving = torch.gather(points_driving, 1, corner_index).view(batch, count, 3, 2)
    corners_source = torch.gather(points_source, 1, corner_index).view(batch, count, 3, 2)
    homogeneous = torch.cat([corners_driving, torch.ones_like(corners_driving[..., :1])], -1)  # rows [x, y, 1]
    to_barycentric = inverse_3x3(homogeneous, MIN_TRIANGLE_DET)  # [x, y, 1] @ it = barycentric coordinates
    points = torch.cat([grid, torch.ones_like(grid[..., :1])], -1)  # 1 x N x 3
    # Each point's k-th coordinate in every triangle is one matmul (B x N x T); the smallest of the three is how deep
    # the point lies in the triangle. Three matmuls and an elementwise minimum take half the time of one matmul over
    # all T * 3 coordinates followed by a minimum over a stride-3 axis (the same numbers: the same dot products).
    per_coordinate = to_barycentric.permute(0, 3, 2, 1)  # B x 3 (coordinate) x 3 ([x, y, 1]) x T
    # A few grid points at a time: their B x n x T coordinates stay in the CPU's cache instead of going through
    # memory three times (3.0 vs 9.3 ms per frame for 1024 points and 950 triangles, the same numbers).
    depths, chosen_parts = [], []
    chunk = max(1, SEARCH_PAIRS // count)
    for start in range(0, points.shape[1], chunk):
        part = points[:, start : start + chunk]
        depth = part @ per_coordinate[:, 0]
        for k in (1, 2):
            depth = torch.minimum(depth, part @ per_coordinate[:, k])
        part_depth, part_chosen = depth.max(-1)  # B x n
        depths.append(part_depth)
        chosen_parts.append(part_chosen)
    depth, chosen = torch.cat(depths, 1), torch.cat(chosen_parts, 1)  # B x N
    maps = (to_barycentric @ corners_source).reshape(batch, count, 6)  # per triangle: [x, y, 1] -> source
    picked = torch.gather(maps, 1, chosen.unsqueeze(-1).expand(-1, -1, 6)).view(batch, -1, 3, 2)
    return (points.unsqueeze(2) @ picked).squeeze(2), chosen, depth


def face_region(face: Tensor, size: int, margin: float) -> Tensor:
    """Grow a ``B x 1 x s x s`` face mask (:class:`MeshWarp`) by ``margin`` (a fraction of the side) on a
    ``size x size`` grid: ``B x 1 x size x size`` in ``[0, 1]``, soft at its edge."""
    if face.shape[-1] != size:
        face = F.interpolate(face, size=(size, size), mode="bilinear", align_corners=True)
    radius = round(margin * int(size))  # a constant of the exported graph, whose size is fixed
    return F.max_pool2d(face, 2 * radius + 1, stride=1, padding=radius) if radius > 0 else face


def warp(image: Tensor, grid: Tensor, mode: str = "bilinear") -> Tensor:
    """Sample ``B x C x H x W`` (or batch 1, broadcast) at a ``B x h x w x 2`` grid in our ``[-1, 1]`` convention,
    ``bilinear`` or ``bicubic``."""
    if image.shape[0] != grid.shape[0]:
        image = image.expand(grid.shape[0], -1, -1, -1)
    return grid_sample(image, grid, mode=mode, padding_mode="border", align_corners=True)


def sample_flow(flow: Tensor, points: Tensor) -> Tensor:
    """Where a ``B x h x w x 2`` backward flow sends ``B x K x 2`` output points (both ``(x, y)`` in ``[-1, 1]``):
    ``B x K x 2``, bilinear between grid points, the border value outside."""
    values = grid_sample(
        flow.permute(0, 3, 1, 2), points.unsqueeze(2), mode="bilinear", padding_mode="border", align_corners=True
    )  # B x 2 x K x 1
    return values.squeeze(3).transpose(1, 2)


def resize_grid(grid: Tensor, size: int) -> Tensor:
    """Bilinearly resample a ``B x h x w x 2`` sampling grid to ``B x size x size x 2`` (values unchanged in kind)."""
    if grid.shape[1] == size:
        return grid
    channels_first = grid.permute(0, 3, 1, 2)
    return F.interpolate(channels_first, size=(size, size), mode="bilinear", align_corners=True).permute(0, 2, 3, 1)


def resize_candidates(grids: Tensor, density: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """Bilinearly resample :func:`landmark_flows`' ``B x C x h x h x 2`` candidate flows and ``B x S x h x h``
    densities to ``size x size`` (``align_corners``, as :func:`resize_grid`: identity and affine flows stay exact)."""
    batch, count = grids.shape[0], grids.shape[1]
    grids = resize_grid(grids.flatten(0, 1), size).view(batch, count, size, size, 2)
    return grids, F.interpolate(density, size=(size, size), mode="bilinear", align_corners=True)


def conv_norm_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class LiteDenseMotion(nn.Module):
    """Chooses among candidate flows per pixel and predicts occlusion, on the coarse motion grid.

    A three-level hourglass (``expansion``, ``2 x``, ``4 x`` channels) over the source warped by each candidate
    and the landmark densities.

    Args:
        num_channels: image channels.
        num_candidates: candidate flows ``C`` (see :func:`landmark_flows`).
        num_densities: density maps (one per kernel width).
        expansion: channels of the first level.
        preferred: index of the candidate the untrained network mostly picks (training starts from the mesh warp
            instead of a random mixture); ``None`` for none.
        residual_flow: also predict a small flow added to the mixture. Trained by pixel losses alone it shifted
            lips and eyelids (AKD +0.03 px at 128 px) without lowering L1, so the default model has none.
    """

    def __init__(
        self,
        num_channels: int,
        num_candidates: int,
        num_densities: int,
        expansion: int,
        preferred: int | None = None,
        residual_flow: bool = False,
    ) -> None:
        super().__init__()
        self.num_candidates = num_candidates
        self.preferred = preferred
        self.residual_flow = residual_flow
        in_channels = num_channels * (num_candidates + 1) + num_densities
        self.down = nn.ModuleList(
            [
                conv_norm_relu(in_channels, expansion),
                conv_norm_relu(expansion, 2 * expansion, stride=2),
                conv_norm_relu(2 * expansion, 4 * expansion, stride=2),
            ]
        )
        # Each up step convolves at the coarse level, then doubles the size: a quarter of the work.
        self.up = nn.ModuleList(
            [conv_norm_relu(4 * expansion, 2 * expansion), conv_norm_relu(2 * expansion, expansion)]
        )
        self.head = nn.Conv2d(expansion, num_candidates + 1 + (2 if residual_flow else 0), 3, padding=1)
        with torch.no_grad():
            if residual_flow:  # it starts at zero, so the candidates alone move the source
                self.head.weight[num_candidates + 1 :].zero_()
                self.head.bias[num_candidates + 1 :].zero_()
            if preferred is not None:
                self.head.bias[preferred] = PREFERRED_CANDIDATE_BIAS
            self.head.bias[num_candidates] = VISIBLE_BIAS
        # One-hot over the candidates, 1 at the preferred one: a constant, so exported graphs need no index ranges
        # (LiteRT's interpreter lacks the iota a torch.arange becomes).
        one_hot = torch.zeros(1, num_candidates, 1, 1)
        if preferred is not None:
            one_hot[0, preferred] = 1.0
        self.register_buffer("preferred_one_hot", one_hot, persistent=False)

    def forward(self, source_small: Tensor, grids: Tensor, density: Tensor, face: Tensor | None = None) -> MotionField:
        """Mix the candidates.

        Args:
            source_small: ``1 x C_img x h x w`` or ``B x C_img x h x w`` source at the grid's size, in ``[0, 1]``.
            grids: ``B x C x h x w x 2`` candidate flows.
            density: ``B x S x h x w`` landmark densities.
            face: ``B x 1 x h x w`` in ``[0, 1]``: where the preferred candidate is taken instead of the network's
                choice (:func:`face_region`); needs ``preferred``.

        Returns:
            deformation ``B x h x w x 2``, occlusion ``(B x 1 x h x w,)`` in ``[0, 1]`` (1 = visible in the source),
            mask ``B x C x h x w`` (softmax over candidates).
        """
        batch, count, h, w, _ = grids.shape
        source = source_small.expand(batch, -1, -1, -1)
        tiled = source.unsqueeze(1).expand(-1, count, -1, -1, -1).reshape(batch * count, -1, h, w)
        warped = warp(tiled, grids.reshape(batch * count, h, w, 2)).view(batch, -1, h, w)
        x = torch.cat([source, warped, density], dim=1)
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        for layer, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            x = F.interpolate(layer(x), scale_factor=2.0, mode="bilinear", align_corners=False) + skip
        out = self.head(x)
        mask = torch.softmax(out[:, :count], dim=1)
        if face is not None:
            if self.preferred is None:
                raise ValueError("a face region needs a preferred candidate to take there")
            preferred = self.preferred_one_hot.to(mask.dtype)
            mask = face * preferred + (1 - face) * mask
        occlusion = torch.sigmoid(out[:, count : count + 1])
        deformation = (mask.unsqueeze(-1) * grids).sum(1)
        if self.residual_flow:
            deformation = deformation + RESIDUAL_SCALE * out[:, count + 1 :].permute(0, 2, 3, 1)
        return MotionField(deformation=deformation, occlusion=(occlusion,), mask=mask)
