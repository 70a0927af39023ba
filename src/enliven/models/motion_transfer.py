"""Keypoint motion transfer: how driving keypoints move the source (pure functions).

FOMM Sec. 3.4 ("relative motion transfer"): ``kp_new = kp_source + s * (kp_driving - kp_reference)`` and
``J_new = J_driving @ J_reference^-1 @ J_source``, where ``s`` adapts the movement scale to the source by the
ratio of the keypoints' convex-hull areas (``sqrt(area_source / area_reference)``).

For face-mesh landmarks the eyelids and lips are then retargeted as openings (:func:`retarget_openings`): a
displacement that closes the driver's eye would push a narrower source eye's lids through each other.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from enliven.face_mesh import EYE_AND_LIP_OPENINGS
from enliven.geometry import inverse_2x2
from enliven.polygons import convex_hull_area
from enliven.types import Keypoints


def _hull_area(points: Tensor) -> float:
    return convex_hull_area(points.detach().to("cpu").double().numpy())


def movement_scale(kp_source: Keypoints, kp_reference: Keypoints) -> float:
    """Return ``sqrt(hull_area(source) / hull_area(reference))`` for the first batch entry of each.

    Degenerate hulls (collinear keypoints) give a scale of 1.
    """
    src = _hull_area(kp_source.value[0])
    ref = _hull_area(kp_reference.value[0])
    if src <= 0.0 or ref <= 0.0:
        return 1.0
    return float(np.sqrt(src) / np.sqrt(ref))


def relative_keypoints(
    kp_source: Keypoints,
    kp_driving: Keypoints,
    kp_reference: Keypoints,
    scale: float = 1.0,
    relative_jacobian: bool = True,
) -> Keypoints:
    """Move the source keypoints by the driving frame's displacement from the reference frame.

    Args:
        kp_source: keypoints of the source, batch 1 or B.
        kp_driving: keypoints of B driving frames.
        kp_reference: keypoints of the reference driving frame (usually the first), batch 1 or B.
        scale: movement scale (see :func:`movement_scale`).
        relative_jacobian: also transfer jacobians relatively (FOMM ``use_relative_jacobian``).

    Returns:
        Keypoints of batch B.
    """
    value = (kp_driving.value - kp_reference.value) * scale + kp_source.value
    jacobian = kp_driving.jacobian
    if (
        relative_jacobian
        and kp_driving.jacobian is not None
        and kp_reference.jacobian is not None
        and kp_source.jacobian is not None
    ):
        jacobian_diff = kp_driving.jacobian @ inverse_2x2(kp_reference.jacobian)
        jacobian = jacobian_diff @ kp_source.jacobian
    return Keypoints(value, jacobian)


#: Openings (over their width) of a reference frame's eye or mouth between which the shrinking in proportion takes
#: over from the plain transfer: a mouth at rest is a few hundredths open (the mesh's noise), and a ratio to that
#: would make an open-mouthed photo flicker with every twitch of the driver's lips; an open eye is 0.2-0.4.
PROPORTIONAL_OPENINGS = (0.02, 0.1)


#: Every pair of :data:`~enliven.face_mesh.EYE_AND_LIP_OPENINGS` as landmark indices: its upper and lower point and
#: its opening's two corners (``P``-long each), so that all openings are measured in one pass.
_UPPER, _LOWER, _CORNER_A, _CORNER_B = (
    torch.tensor([pair[0] for _, pairs in EYE_AND_LIP_OPENINGS for pair in pairs]),
    torch.tensor([pair[1] for _, pairs in EYE_AND_LIP_OPENINGS for pair in pairs]),
    torch.tensor([corners[0] for corners, pairs in EYE_AND_LIP_OPENINGS for _ in pairs]),
    torch.tensor([corners[1] for corners, pairs in EYE_AND_LIP_OPENINGS for _ in pairs]),
)


def _openings(points: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Each pair's opening ``... x P`` in ``... x N x 2`` landmarks (its points' distance across their corners'
    line, over the corners' distance; positive while the lower point lies below the upper), the unit normals
    ``... x P x 2`` of those lines pointing down the image, and the corners' distances ``... x P``."""
    axis = points[..., _CORNER_B, :] - points[..., _CORNER_A, :]
    width = axis.norm(dim=-1).clamp_min(1e-6)
    normal = torch.stack((-axis[..., 1], axis[..., 0]), dim=-1) / width[..., None]
    normal = torch.where(normal[..., 1:] < 0, -normal, normal)
    opening = ((points[..., _LOWER, :] - points[..., _UPPER, :]) * normal).sum(-1) / width
    return opening, normal, width


def retarget_openings(transferred: Tensor, source: Tensor, driving: Tensor, reference: Tensor) -> Tensor:
    """Relative motion of face-mesh landmarks with the eyes and the mouth retargeted as openings.

    Adding the driver's displacement closes a source eye only when it is as open as the driver's reference eye: a
    narrower one has its lids pushed through each other (its opening turns negative, and grows again as the
    driver's eye closes), a wider one never closes. So wherever the driver's eye (or mouth) is less open than in
    the reference frame, each lid pair is set to the source's own opening shrunk in the driver's proportion
    (closed when the driver's is closed); where it is as open or more, the transfer is kept (the driver's widening
    added). A reference opening below :data:`PROPORTIONAL_OPENINGS` (a mouth at rest) keeps the transfer, above it
    the proportion, between them a mix; no pair ever crosses further than the source's own. Each pair moves along
    the normal of its corners' line, each point by the share of the pair's move that the transfer gave it (a blink
    moves the upper lid, a jaw the lower lip). Scale-free: pixels or ``[-1, 1]``.

    Args:
        transferred: ``B x N x 2`` the source's landmarks moved by the driving frames' displacement (
            :func:`relative_keypoints`), ``N >= 468`` face-mesh points (:mod:`enliven.face_mesh`).
        source: ``1 x N x 2`` or ``B x N x 2`` the source's landmarks.
        driving: ``B x N x 2`` the driving frames' landmarks.
        reference: ``1 x N x 2`` or ``B x N x 2`` the reference driving frame's landmarks.

    Returns:
        ``B x N x 2`` the transferred landmarks with the eyelids and inner lips moved (a new tensor).
    """
    moved, normal, width = _openings(transferred)
    own, driven, ref = (_openings(points)[0] for points in (source, driving, reference))
    low, high = PROPORTIONAL_OPENINGS
    share = ((ref - low) / (high - low)).clamp(0.0, 1.0)  # of the shrinking in proportion, by the reference's opening
    shrunk = own * (driven / ref.clamp_min(low)).clamp(0.0, 1.0)
    target = torch.where(driven < ref, share * shrunk + (1 - share) * moved, moved)
    # Never further through each other than the source's own lids (pressed lips can overlap a little).
    target = torch.maximum(target, own.clamp(max=0.0))
    step = ((target - moved) * width)[..., None] * normal  # ... x P x 2: the opening's change, along the normal
    travel = [((transferred[..., idx, :] - source[..., idx, :]) * normal).sum(-1).abs() for idx in (_UPPER, _LOWER)]
    total = travel[0] + travel[1]
    upper_share = torch.where(total > 1e-9, travel[0] / total.clamp_min(1e-9), torch.full_like(total, 0.5))[..., None]
    result = transferred.clone()
    result[..., _UPPER, :] = transferred[..., _UPPER, :] - step * upper_share
    result[..., _LOWER, :] = transferred[..., _LOWER, :] + step * (1 - upper_share)
    return result
