"""Thin-plate-spline transformations (TPSMM, Zhao & Zhang, CVPR 2022, Sec. 3.1, Eq. 2) and warping helpers.

Coordinates are ``(x, y)`` in ``[-1, 1]`` with ``-1``/``+1`` at the centres of the border pixels. TPSMM samples
with ``grid_sample(..., align_corners=True)``, which is exactly that convention (FOMM's code leaves the default,
``False``, so the two families must not share a sampling helper). Every ``grid_sample`` and bilinear resize of the
family goes through this module so that the choice lives in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from enliven.geometry import grid_sample, is_litert_tracing

#: TPSMM's ``grid_sample``/``interpolate`` setting; the published checkpoints were trained with it.
ALIGN_CORNERS = True

# Added inside the log of the radial basis so that U(0) = 0 * log(1e-9) = 0 instead of NaN (authors' constant).
_LOG_EPS = 1e-9
# Added to the diagonal of the TPS system (authors' constant): a little smoothing that also keeps it invertible.
_REGULARISATION = 0.01


def radial_basis(squared_distance: Tensor) -> Tensor:
    """TPS kernel ``U(r) = r^2 log r^2`` of Eq. 2, evaluated from ``r^2`` as the authors compute it."""
    return squared_distance * torch.log(squared_distance + _LOG_EPS)


@dataclass(frozen=True)
class ThinPlateSpline:
    """A batch of ``B x K`` thin-plate-spline transformations, each fitted to ``n`` control points.

    Eq. 2 of the paper: ``T(p) = A [p; 1] + sum_i w_i U(|P_i - p|)``, the unique smooth map with
    ``T(P_i) = Q_i`` (here softened by a small diagonal regularisation, as in the authors' code).

    Attributes:
        control_points: ``B x K x n x 2`` points ``P_i`` the transformation is anchored at (driving keypoints).
        weights: ``B x K x n x 2`` radial coefficients ``w_i``.
        affine: ``B x K x 3 x 2`` affine part; ``[p_x, p_y, 1] @ affine`` is ``A [p; 1]``.
    """

    control_points: Tensor
    weights: Tensor
    affine: Tensor

    @classmethod
    def fit(cls, control_points: Tensor, targets: Tensor) -> ThinPlateSpline:
        """Solve for the transformations mapping ``control_points`` to ``targets``.

        Solves the ``(n + 3) x (n + 3)`` system ``[[K, P], [P^T, 0]] + 0.01 I`` of the paper's supplementary.

        The float32 rounding follows the authors' code on purpose: squared distances are taken as the square of
        the euclidean norm and the system is inverted explicitly. With keypoints near each other or saturated at
        the image border (common for the sigmoid detector) the system has condition numbers of ~1e3, so a one-ulp
        change here moves the warp grids by ~2e-4 and output pixels by up to ~3e-3. Any other, equally exact
        sequence (``linalg.solve``, summed squares) lands up to ~3e-3 away from the published code's frames.

        Args:
            control_points: ``B x K x n x 2`` source points ``P_i`` of each transformation (driving keypoints).
            targets: ``B x K x n x 2`` (or broadcastable, e.g. batch 1) points ``Q_i`` they map to (source keypoints).
        """
        batch, num_tps, n, _ = control_points.shape
        targets = targets.expand(batch, num_tps, n, 2)
        diff = control_points[:, :, :, None, :] - control_points[:, :, None, :, :]
        kernel = radial_basis(torch.linalg.vector_norm(diff, dim=-1) ** 2)
        ones = control_points.new_ones(batch, num_tps, n, 1)
        homogeneous = torch.cat([control_points, ones], dim=3)
        top = torch.cat([kernel, homogeneous], dim=3)
        bottom = torch.cat([homogeneous.transpose(2, 3), control_points.new_zeros(batch, num_tps, 3, 3)], dim=3)
        system = torch.cat([top, bottom], dim=2)
        # A literal identity and index list, not torch.eye/arange: exported graphs then hold constants (LiteRT's
        # interpreter lacks the iota those become).
        identity = torch.tensor([[float(i == j) for j in range(n + 3)] for i in range(n + 3)])
        system = system + _REGULARISATION * identity.to(system.device, system.dtype)
        rhs = torch.cat([targets, targets.new_zeros(batch, num_tps, 3, 2)], dim=2)
        if torch.onnx.is_in_onnx_export() or is_litert_tracing():
            params = gauss_jordan_solve(system, rhs)  # ONNX has no matrix inverse; LiteRT cannot lower solve's check
        else:
            params = torch.linalg.inv(system) @ rhs
        return cls(control_points=control_points, weights=params[:, :, :n], affine=params[:, :, n:])

    def warp(self, coordinates: Tensor) -> Tensor:
        """Apply every transformation to a set of points.

        Args:
            coordinates: ``P x 2`` points ``(x, y)`` shared by the batch (e.g. a flattened pixel grid).

        Returns:
            ``B x K x P x 2`` transformed points.
        """
        affine = coordinates @ self.affine[:, :, :2] + self.affine[:, :, 2:]
        diff = coordinates[:, None, :] - self.control_points[:, :, None, :, :]
        radial = radial_basis((diff * diff).sum(-1)) @ self.weights  # not diff**2: LiteRT lowers no 5-D pow
        return affine + radial

    def warp_grid(self, spatial_size: tuple[int, int], grid: Tensor) -> Tensor:
        """Apply every transformation to an ``H x W x 2`` coordinate grid; return ``B x K x H x W x 2``."""
        h, w = spatial_size
        batch, num_tps = self.control_points.shape[:2]
        return self.warp(grid.reshape(h * w, 2)).view(batch, num_tps, h, w, 2)


def gauss_jordan_solve(system: Tensor, rhs: Tensor) -> Tensor:
    """Solve ``system @ x = rhs`` by Gauss-Jordan elimination with partial pivoting, from plain tensor ops only.

    Used instead of ``torch.linalg.inv`` while exporting to ONNX (which has no matrix inverse or solve). The loop
    over columns is unrolled at trace time, so it suits the small systems of :meth:`ThinPlateSpline.fit`
    (``(n + 3) x (n + 3)``, ``n = 5``). Row swaps pick the largest remaining pivot in magnitude (the TPS systems are
    symmetric but indefinite: elimination without pivoting meets a near-zero pivot in the affine block).

    Args:
        system: ``... x n x n`` invertible matrices.
        rhs: ``... x n x m`` right-hand sides (same leading shape).

    Returns:
        ``... x n x m`` solutions.
    """
    n = system.shape[-1]
    augmented = torch.cat([system, rhs], dim=-1)
    rows = torch.tensor(list(range(n)), device=system.device)  # a literal, not arange (see ThinPlateSpline.fit)
    taken = torch.full_like(augmented[..., :, 0], -1.0)
    for j in range(n):
        # Rows above j hold earlier pivots: mark them -1 so that argmax of magnitudes never picks them.
        magnitude = torch.where(rows >= j, augmented[..., :, j].abs(), taken)
        pivot = magnitude.argmax(dim=-1, keepdim=True)
        order = torch.where(rows == j, pivot, torch.where(rows == pivot, j, rows))
        augmented = augmented.gather(-2, order.unsqueeze(-1).expand_as(augmented))
        pivot_row = augmented[..., j : j + 1, :] / augmented[..., j : j + 1, j : j + 1]
        eliminated = augmented - augmented[..., :, j : j + 1] * pivot_row
        augmented = torch.where((rows == j).unsqueeze(-1), pivot_row, eliminated)
    return augmented[..., n:]


def sample(image: Tensor, grid: Tensor) -> Tensor:
    """Bilinearly sample images at ``grid`` (zero outside), broadcasting a shared image batch.

    Args:
        image: ``S x C x H x W``, where ``S`` is 1 (a shared source) or the grid batch ``B``.
        grid: ``B x N x h x w x 2`` (``N`` grids per image, e.g. one per transformation) or ``B x h x w x 2``.

    Returns:
        ``B x N x C x h x w`` (or ``B x C x h x w`` for a 4-D grid).

    The grids of every image are stacked along the height of a single grid, so a source shared by a batch of
    driving frames is sampled without being copied; each output pixel is computed exactly as by separate calls.
    """
    squeeze = grid.ndim == 4
    if squeeze:
        grid = grid.unsqueeze(1)
    batch, num, h, w, _ = grid.shape
    shared, channels = image.shape[:2]
    if shared not in (1, batch):
        raise ValueError(f"sample needs an image batch of 1 or {batch} (the grid batch), got {shared}")
    stacked = grid.reshape(shared, (batch // shared) * num * h, w, 2)
    out = grid_sample(image, stacked, mode="bilinear", padding_mode="zeros", align_corners=ALIGN_CORNERS)
    out = out.view(shared, channels, batch // shared, num, h, w).permute(0, 2, 3, 1, 4, 5)
    out = out.reshape(batch, num, channels, h, w)
    return out[:, 0] if squeeze else out


def resize_grid(grid: Tensor, spatial_size: tuple[int, int]) -> Tensor:
    """Bilinearly resize a ``B x h x w x 2`` sampling grid to ``spatial_size`` (no-op when already that size)."""
    if tuple(grid.shape[1:3]) == tuple(spatial_size):
        return grid
    resized = F.interpolate(grid.permute(0, 3, 1, 2), size=spatial_size, mode="bilinear", align_corners=ALIGN_CORNERS)
    return resized.permute(0, 2, 3, 1)


def resize_map(values: Tensor, spatial_size: tuple[int, int]) -> Tensor:
    """Bilinearly resize ``B x C x h x w`` maps to ``spatial_size`` (no-op when already that size)."""
    if tuple(values.shape[2:]) == tuple(spatial_size):
        return values
    return F.interpolate(values, size=spatial_size, mode="bilinear", align_corners=ALIGN_CORNERS)
