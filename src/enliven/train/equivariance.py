"""Random affine + thin-plate warps and the keypoint equivariance losses (FOMM Sec. 3.3, TPSMM Sec. 3.4).

A keypoint detector is equivariant when detecting on a warped frame and mapping the result back gives the
keypoints of the original frame. With ``T`` a random warp and ``D' = D o T`` the driving frame resampled at
``T(z)``, keypoints ``k'`` found in ``D'`` must satisfy ``T(k') = k_D`` (value loss) and, for FOMM's local
affine jacobians, ``J_D^-1 (dT(k') J') = I`` (jacobian loss).

The warp follows the authors' ``Transform``/``TPS(mode='random')``: ``T(z) = A z + t + f(z) (1, 1)``, an affine
map near the identity (``N(0, sigma_affine)`` on every entry of ``[A | t]``) plus a radial term ``f(z) = sum_i
c_i U(z - p_i)`` over a ``points_tps x points_tps`` grid of control points ``p_i`` with ``c_i ~ N(0, sigma_tps)``,
added to both coordinates (as in both papers' code). The kernels differ between the papers and are kept:
FOMM ``U = d^2 log(d + 1e-6)`` with the L1 distance ``d = |dx| + |dy|``; TPSMM ``U = s log(s + 1e-9)`` with the
squared distance ``s = dx^2 + dy^2``. Frames are resampled with ``align_corners=True`` (pixel centres at
``-1``/``+1``, the convention of :func:`~enliven.geometry.make_coordinate_grid`), so that warping a frame and
warping coordinates agree exactly. All of this runs in float32, also under autocast.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from enliven.geometry import inverse_2x2, make_coordinate_grid

#: Radial kernel of the random thin-plate term: the FOMM or the TPSMM authors' variant (see module docstring).
TpsKernel = Literal["fomm", "tpsmm"]


def float32(tensor: Tensor) -> AbstractContextManager[None]:
    """A context that turns autocast off on ``tensor``'s device (cast inputs with ``.float()`` inside)."""
    return torch.autocast(device_type=tensor.device.type, enabled=False)


@dataclass(frozen=True)
class TransformParams:
    """``train_params.transform_params``: the spread of the random warps.

    Attributes:
        sigma_affine: standard deviation of the noise added to the identity ``2 x 3`` affine matrix.
        sigma_tps: standard deviation of the thin-plate coefficients, or ``None`` for affine warps only.
        points_tps: side of the square grid of thin-plate control points, or ``None`` for affine warps only.
    """

    sigma_affine: float = 0.05
    sigma_tps: float | None = 0.005
    points_tps: int | None = 5

    @property
    def use_tps(self) -> bool:
        return self.sigma_tps is not None and self.points_tps is not None


@dataclass(frozen=True)
class RandomTransform:
    """A batch of random warps ``T`` of the normalised plane (see module docstring).

    Attributes:
        theta: ``B x 2 x 3`` affine part ``[A | t]``.
        control_points: ``N x 2`` thin-plate control points ``(x, y)`` in ``[-1, 1]``, or ``None``.
        control_params: ``B x N`` thin-plate coefficients, or ``None``.
        kernel: which radial kernel the thin-plate term uses.
    """

    theta: Tensor
    control_points: Tensor | None = None
    control_params: Tensor | None = None
    kernel: TpsKernel = "tpsmm"

    @classmethod
    def sample(
        cls, batch: int, params: TransformParams, kernel: TpsKernel, device: torch.device | str | None = None
    ) -> RandomTransform:
        """Draw ``batch`` warps (float32, on ``device``) from the global random generator of that device."""
        eye = torch.eye(2, 3, device=device)
        theta = eye + params.sigma_affine * torch.randn(batch, 2, 3, device=device)
        if not params.use_tps:
            return cls(theta=theta, kernel=kernel)
        n = int(params.points_tps)  # type: ignore[arg-type]
        points = make_coordinate_grid((n, n), device=device).view(n * n, 2)
        coefficients = float(params.sigma_tps) * torch.randn(batch, n * n, device=device)  # type: ignore[arg-type]
        return cls(theta=theta, control_points=points, control_params=coefficients, kernel=kernel)

    @classmethod
    def identity(cls, batch: int, device: torch.device | str | None = None) -> RandomTransform:
        """The identity warp (for tests and sanity checks)."""
        return cls(theta=torch.eye(2, 3, device=device).expand(batch, 2, 3))

    def _diff(self, coordinates: Tensor) -> Tensor:
        return coordinates[:, :, None, :] - self.control_points  # type: ignore[operator]  # B x P x N x 2

    def _radial_value(self, coordinates: Tensor) -> Tensor:
        """The thin-plate term ``f`` (``B x P``) at ``B x P x 2`` coordinates."""
        diff = self._diff(coordinates)
        if self.kernel == "fomm":
            dist = diff.abs().sum(-1)
            value = dist**2 * torch.log(dist + 1e-6)
        else:
            sq = (diff**2).sum(-1)
            value = sq * torch.log(sq + 1e-9)
        return (value * self.control_params[:, None, :]).sum(-1)  # type: ignore[index]

    def _radial_gradient(self, coordinates: Tensor) -> Tensor:
        """The gradient ``df/dz`` (``B x P x 2``) at ``B x P x 2`` coordinates."""
        diff = self._diff(coordinates)
        if self.kernel == "fomm":
            dist = diff.abs().sum(-1)
            slope = (2 * dist * torch.log(dist + 1e-6) + dist**2 / (dist + 1e-6)).unsqueeze(-1) * diff.sign()
        else:
            sq = (diff**2).sum(-1)
            slope = (torch.log(sq + 1e-9) + sq / (sq + 1e-9)).unsqueeze(-1) * 2 * diff
        return (slope * self.control_params[:, None, :, None]).sum(-2)  # type: ignore[index]

    @property
    def _has_tps(self) -> bool:
        return self.control_points is not None and self.control_params is not None

    def warp_coordinates(self, coordinates: Tensor) -> Tensor:
        """Map ``B x P x 2`` (or ``1 x P x 2``) points ``(x, y)`` to ``T(points)``, ``B x P x 2``."""
        with float32(coordinates):
            coordinates = coordinates.float()
            out = coordinates @ self.theta[:, :, :2].transpose(1, 2) + self.theta[:, None, :, 2]
            if not self._has_tps:
                return out
            return out + self._radial_value(coordinates.expand(self.theta.shape[0], -1, -1)).unsqueeze(-1)

    def jacobian(self, coordinates: Tensor) -> Tensor:
        """The ``B x P x 2 x 2`` jacobian ``dT/dz`` at ``B x P x 2`` points (rows: ``x``, ``y`` of ``T``)."""
        with float32(coordinates):
            coordinates = coordinates.float()
            b, p = coordinates.shape[:2]
            jac = self.theta[:, None, :, :2].expand(b, p, 2, 2)
            # The thin-plate term moves x and y by the same amount: both rows get its gradient.
            return jac + self._radial_gradient(coordinates).unsqueeze(-2) if self._has_tps else jac

    def transform_frame(self, frame: Tensor) -> Tensor:
        """Resample ``B x C x H x W`` frames at ``T(z)`` (reflection outside), returning float32 frames."""
        b, _, h, w = frame.shape
        with float32(frame):
            grid = make_coordinate_grid((h, w), device=frame.device).view(1, h * w, 2)
            warped = self.warp_coordinates(grid).view(b, h, w, 2)
            return F.grid_sample(frame.float(), warped, mode="bilinear", padding_mode="reflection", align_corners=True)


def equivariance_value_loss(kp_driving: Tensor, kp_transformed: Tensor, transform: RandomTransform) -> Tensor:
    """Mean ``|k_D - T(k')|`` (unweighted).

    Args:
        kp_driving: ``B x K x 2`` keypoints of the driving frames.
        kp_transformed: ``B x K x 2`` keypoints detected on :meth:`RandomTransform.transform_frame` of them.
        transform: the warp.
    """
    with float32(kp_driving):
        return (kp_driving.float() - transform.warp_coordinates(kp_transformed)).abs().mean()


def equivariance_jacobian_loss(
    jacobian_driving: Tensor, kp_transformed: Tensor, jacobian_transformed: Tensor, transform: RandomTransform
) -> Tensor:
    """Mean ``|I - J_D^-1 dT(k') J'|`` over every entry (unweighted); jacobians are ``B x K x 2 x 2``."""
    with float32(jacobian_driving):
        mapped = transform.jacobian(kp_transformed) @ jacobian_transformed.float()
        value = inverse_2x2(jacobian_driving.float()) @ mapped
        eye = torch.eye(2, device=value.device)
        return (eye - value).abs().mean()
