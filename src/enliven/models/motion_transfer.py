"""Keypoint motion transfer: how driving keypoints move the source (pure functions).

FOMM Sec. 3.4 ("relative motion transfer"): ``kp_new = kp_source + s * (kp_driving - kp_reference)`` and
``J_new = J_driving @ J_reference^-1 @ J_source``, where ``s`` adapts the movement scale to the source by the
ratio of the keypoints' convex-hull areas (``sqrt(area_source / area_reference)``).

For face-mesh landmarks the eyelids and lips are then retargeted as openings (:func:`retarget_openings`): a
displacement that closes the driver's eye would push a narrower source eye's lids through each other; and the mesh is
kept whole (:func:`keep_mesh_whole`): a driver turning towards the camera would tear a photo in profile apart.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from enliven.face_mesh import (
    EYE_AND_LIP_OPENINGS,
    NUM_FACE_MESH_POINTS,
    delaunay_triangles,
)
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


#: How far relative motion may stretch a triangle of the face mesh (its area over its area in the source) before
#: :func:`keep_mesh_whole` holds its corners back. A driver turning from a side view to the camera asks a photo in
#: profile for what it does not show (the far cheek): on the validation pairs such turns stretch some triangle 7 to
#: 44 times (median over frames), frontal pairs at most 3.2 times, and a 30-degree turn asked of a frontal photo
#: (``--edit yaw=30``) past 4 in places (it turns 26 degrees instead of 29).
MAX_TRIANGLE_GROWTH = 4.0
#: Triangles under this share of the median triangle's area in the source are not watched (slivers, whose area
#: ratio is noise).
MIN_WATCHED_AREA = 0.3
#: Each round, the corners of a triangle stretched too far keep this share of their motion beyond the
#: face's similarity; after :data:`_GUARD_ROUNDS` rounds it is 0.7^12 = 1.4 % of it.
_GUARD_KEEP, _GUARD_ROUNDS = 0.7, 12


@lru_cache(maxsize=8)
def _watched(source_points: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The triangles :func:`keep_mesh_whole` watches in a source's face mesh (``float64`` bytes of its ``468 x 2``
    points): the Delaunay triangulation of its points less the slivers and the triangles across an eye or the mouth;
    ``T x 3`` indices and their ``T`` signed areas in the source."""
    points = np.frombuffer(source_points, dtype=np.float64).reshape(NUM_FACE_MESH_POINTS, 2)
    triangles = delaunay_triangles(points)
    triangles = triangles[~_across_openings(points, triangles)]
    areas = _signed_areas(points, triangles)
    keep = np.abs(areas) >= MIN_WATCHED_AREA * np.median(np.abs(areas))
    return triangles[keep], areas[keep]


def _across_openings(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """``T`` booleans: whether each of ``T x 3`` triangles of ``468 x 2`` face-mesh points joins a point above an eye's
    or the mouth's slit to a point below it. A closed mouth's triangulation joins the lips across the slit in many
    ways (through the lips' inner ring or the rings around it); those triangles close to nothing on a blink and grow
    many times as a mouth opens (:func:`retarget_openings` keeps that in bounds), so the guard does not watch them.

    The slit runs from one corner of the opening through the midpoints of its lid (lip) pairs to the other corner,
    in the frame of the corners' line; a point within a quarter of the opening's width of it on either side
    (sideways) and half its width (across) is above or below it, its upper lid (lip) points above, its lower below.
    """
    across = np.zeros(len(triangles), dtype=bool)
    for (corner_a, corner_b), pairs in EYE_AND_LIP_OPENINGS:
        upper, lower = [pair[0] for pair in pairs], [pair[1] for pair in pairs]
        axis = points[corner_b] - points[corner_a]
        width = float(np.linalg.norm(axis))
        along_unit = axis / max(width, 1e-9)
        normal = np.array([-along_unit[1], along_unit[0]])
        normal = normal if normal[1] >= 0 else -normal  # down the image
        offsets = points - points[corner_a]
        along, down = offsets @ along_unit, offsets @ normal
        slit = np.concatenate([[0.0], (down[upper] + down[lower]) / 2, [0.0]])
        slit_at = np.concatenate([[0.0], (along[upper] + along[lower]) / 2, [width]])
        order = np.argsort(slit_at)
        side = np.sign(down - np.interp(along, slit_at[order], slit[order]))  # +1 below the slit
        side[upper], side[lower], side[[corner_a, corner_b]] = -1.0, 1.0, 0.0
        near = (along > -0.25 * width) & (along < 1.25 * width) & (np.abs(down) < 0.5 * width)
        corners = np.where(near, side, 0.0)[triangles]
        across |= (corners < 0).any(axis=1) & (corners > 0).any(axis=1)
    return across


def _signed_areas(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Signed areas ``... x T`` of ``T x 3`` triangles of ``... x N x 2`` points."""
    a, b, c = (points[..., triangles[:, k], :] for k in range(3))
    return 0.5 * ((b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0]))


def similarity_fit(source: np.ndarray, moved: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The similarity (rotation, one scale, translation; never a mirror) that maps ``source``'s points (``1 x N x 2``
    or ``B x N x 2``) closest to ``moved`` (``B x N x 2``) in least squares, and its scale ``B``: with the points
    as complex numbers about their means, ``moved = a * source`` for ``a = sum(conj(source) * moved) /
    sum(|source|^2)``, the scale ``|a|``. Returns the source moved by it, ``B x N x 2``, and the scale."""
    source = np.broadcast_to(source, moved.shape)
    moved_mean = moved.mean(axis=1, keepdims=True)
    centred_source, centred_moved = source - source.mean(axis=1, keepdims=True), moved - moved_mean
    z = centred_source[..., 0] + 1j * centred_source[..., 1]
    a = (np.conj(z) * (centred_moved[..., 0] + 1j * centred_moved[..., 1])).sum(axis=1, keepdims=True)
    a = a / np.maximum((np.abs(z) ** 2).sum(axis=1, keepdims=True), 1e-12)
    fitted = a * z
    return moved_mean + np.stack((fitted.real, fitted.imag), axis=-1), np.abs(a[:, 0])


def keep_mesh_whole(moved: Tensor, source: Tensor) -> Tensor:
    """Face-mesh landmarks moved by relative motion, held back where they would tear the face apart.

    Relative motion adds the driver's displacements to a source whose face may be turned otherwise: a driver who
    turns from a side view towards the camera stretches the near side of a photo in profile over the background,
    and the renderer tears its nose and lips into strips. Here every triangle of the source's mesh (its Delaunay
    triangulation, less slivers and the triangles inside the eyes and the mouth) that would grow past
    :data:`MAX_TRIANGLE_GROWTH` times its area has its corners' motion beyond the face's similarity
    (:func:`similarity_fit`: the head's shift, turn in the image and scale) shrunk, a round at a time, until none
    does: the face turns less, in one piece. Triangles that turn over are left alone: the far cheek's do as a head
    turns. Frontal faces driven by frontal faces are not touched. Scale-free: pixels or ``[-1, 1]``.

    Args:
        moved: ``B x N x 2`` the source's landmarks moved by the driving frames, ``N >= 468`` face-mesh points
            first (the rest is returned as it is); rows with NaN are returned as they are.
        source: ``1 x N x 2`` the source's landmarks.

    Returns:
        ``B x N x 2`` landmarks (a new tensor).
    """
    count = NUM_FACE_MESH_POINTS
    face = moved[:, :count].detach().to("cpu", torch.float64).numpy()  # small arrays: numpy is quicker than torch
    found = np.isfinite(face).all(axis=(1, 2))  # rows of NaN: frames before the driver's first face
    result = moved.clone()
    if not found.any():
        return result
    source_points = source[:, :count].detach().to("cpu", torch.float64).numpy()
    triangles, source_areas = _watched(source_points[0].tobytes())
    face = face[found]
    rigid, scale = similarity_fit(source_points, face)
    rigid_areas = source_areas * scale[:, None] ** 2  # B x T: the source's, scaled as the whole face is
    torn = _signed_areas(face, triangles) / rigid_areas > MAX_TRIANGLE_GROWTH  # B x T
    if not torn.any():
        return result
    beyond = face - rigid
    held = np.zeros(face.shape[:2], dtype=bool)  # B x 468: the corners ever held back
    for _ in range(_GUARD_ROUNDS):
        hits = np.zeros(face.shape[:2], dtype=bool)
        rows = np.nonzero(torn)[0]
        hits[np.repeat(rows, 3), triangles[np.nonzero(torn)[1]].reshape(-1)] = True
        beyond[hits] *= _GUARD_KEEP
        held |= hits
        torn = _signed_areas(rigid + beyond, triangles) / rigid_areas > MAX_TRIANGLE_GROWTH
        if not torn.any():
            break
    kept = np.where(held[..., None], rigid + beyond, face)
    rows = torch.from_numpy(np.nonzero(found)[0]).to(moved.device)
    result[rows, :count] = torch.where(
        torch.from_numpy(held[..., None]).to(moved.device), torch.from_numpy(kept).to(moved), result[rows, :count]
    )  # untouched points exactly as they were
    return result
