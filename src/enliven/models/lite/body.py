"""Candidate flows of a body from MediaPipe pose landmarks: each part moved by its own transform, and their blend.

The torch form of :func:`enliven.pose.part_warp_map` (the part-warp baseline), on a model's motion grid and in
normalised coordinates (:mod:`enliven.types`): every body part of :data:`enliven.pose.BODY_PARTS` (torso, head,
upper arms, forearms, thighs, shins) gets the transform that takes its landmarks in the output frame to the same
landmarks in the source (a similarity; the torso an affine map pulled towards its similarity, so that a torso seen
edge-on stays finite), and a weight that falls with the distance to its bone in the output frame. The candidates a
lite body model mixes per pixel (:class:`~enliven.models.lite.motion.LiteDenseMotion`) are the identity (the
background stands still), the parts' weighted blend with the background (linear blend skinning: the part warp),
and each part's own transform (a hand in front of the torso follows the forearm, not the blend).

Plain tensor algebra (matmuls, exp, comparisons), exportable; MediaPipe places all 33 points whenever it finds a
person, guessing hidden or cut-off ones, so no point is missing here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from enliven.geometry import fit_similarity, grid_sample, inverse_3x3, make_coordinate_grid
from enliven.models.lite.regions import polygon_mask
from enliven.pose import (
    BACKGROUND_WEIGHT,
    BODY_PARTS,
    HEAD_POINTS,
    LEFT_HIP,
    LEFT_KNEE,
    LEFT_SHOULDER,
    RIGHT_HIP,
    RIGHT_KNEE,
    RIGHT_SHOULDER,
    SKELETON,
    TORSO_POINTS,
)

#: Candidate flows of a body model: identity, the blend, then one per part.
NUM_BODY_CANDIDATES = 2 + len(BODY_PARTS)
#: Index of the parts' blend among the candidates: the untrained mixture prefers it (the part warp).
BLEND_CANDIDATE = 1
#: Pull of the torso's affine map towards its similarity (normal equations' ridge, normalised units squared).
TORSO_RIDGE = 1e-2
#: The smallest body scale (normalised units): a body seen from far away or a degenerate pose still has width.
MIN_BODY_SCALE = 0.05


@dataclass(frozen=True)
class _PartGroup:
    """Parts of :data:`~enliven.pose.BODY_PARTS` whose bones and fits have the same number of landmarks and the same
    kind of transform: their landmark indices side by side (``parts`` x each), computed as one batch."""

    parts: tuple[int, ...]
    bone: tuple[int, ...]
    fit: tuple[int, ...]
    widths: tuple[float, ...]
    affine: bool


def _part_groups() -> tuple[tuple[_PartGroup, ...], tuple[int, ...]]:
    """The groups of parts, and where each part of ``BODY_PARTS`` lies in the groups' parts laid end to end."""
    shapes: dict[tuple[int, int, bool], list[int]] = {}
    for index, part in enumerate(BODY_PARTS):
        shapes.setdefault((len(part.bone), len(part.fit), part.affine), []).append(index)
    groups = tuple(
        _PartGroup(
            tuple(members),
            tuple(point for i in members for point in BODY_PARTS[i].bone),
            tuple(point for i in members for point in BODY_PARTS[i].fit),
            tuple(BODY_PARTS[i].width for i in members),
            affine,
        )
        for (_, _, affine), members in shapes.items()
    )
    laid = [index for group in groups for index in group.parts]
    return groups, tuple(laid.index(index) for index in range(len(BODY_PARTS)))


_PART_GROUPS, _PART_ORDER = _part_groups()


@dataclass(frozen=True)
class BodyFlows:
    """Candidate flows of a body (:func:`body_flows`).

    Attributes:
        grids: ``B x (2 + P) x s x s x 2`` sampling positions in the source: identity, the blend (or the layered
            parts), then each of the ``P`` parts' transforms.
        weights: ``B x P x s x s`` in ``[0, 1]``: how much each part owns each grid point (by the distance to its
            bone in the output frame).
        shown: ``B x 1 x s x s`` in ``[0, 1]``: where some part of the source's person shows (layered parts only;
            elsewhere the output is background, which a model takes from its plate), or ``None``.
    """

    grids: Tensor
    weights: Tensor
    shown: Tensor | None = None


def body_flows(kp_source: Tensor, kp_driving: Tensor, size: int, layers: Tensor | None = None) -> BodyFlows:
    """Candidate backward flows of a body from the output frame to the source (see the module docstring).

    Args:
        kp_source: ``B x 33 x 2`` pose landmarks in the source, ``(x, y)`` in ``[-1, 1]``.
        kp_driving: ``B x 33 x 2`` where they are in the output frame.
        size: side of the square grid.
        layers: ``1 x P x size x size`` (or ``B x``) which part owns each point of the source
            (:func:`source_layers`), or ``None``. Given, the blend candidate is the parts laid over each other
            instead (:func:`layer_parts`).
    """
    batch, dtype, device = kp_driving.shape[0], kp_driving.dtype, kp_driving.device
    grid = make_coordinate_grid((size, size), dtype, device).view(1, size * size, 2)
    scale = _body_scale(kp_driving)  # B
    homogeneous = torch.cat([grid, torch.ones_like(grid[..., :1])], -1)  # 1 x N x 3
    moved, weights = [], []
    # The parts of one shape (the eight limbs: a bone of two points, fitted on them) go through each step together,
    # as a batch of B x G: a call per part cost 10-13 ms a frame at 64 x 64, mostly the overhead of small operations.
    for group in _PART_GROUPS:
        count, fit, bone = len(group.parts), list(group.fit), list(group.bone)
        frm = kp_driving[:, fit].view(batch * count, -1, 2)  # (B G) x K x 2, part by part within each frame
        to = kp_source[:, fit].view(batch * count, -1, 2)
        transform = fit_similarity(frm, to)
        if group.affine:
            transform = _affine_near(frm, to, transform, TORSO_RIDGE)
        # einsum, not a broadcast matmul: a third of the time for these N x 3 by 3 x 2 products on a CPU
        moved.append(torch.einsum("nk,bgkc->bgnc", homogeneous[0], transform.view(batch, count, 3, 2)))
        distance = _distance_to_bone(grid, kp_driving[:, bone].view(batch * count, -1, 2), size)  # (B G) x N
        width = torch.tensor(group.widths, dtype=dtype, device=device) * scale[:, None]  # B x G
        weights.append(torch.exp(-0.5 * (distance.view(batch, count, -1) / width.unsqueeze(-1)) ** 2))
    weight, parts = torch.cat(weights, 1), torch.cat(moved, 1)  # B x P x N, B x P x N x 2
    if _PART_ORDER != tuple(range(len(BODY_PARTS))):  # the groups' parts back in BODY_PARTS' order
        weight, parts = weight[:, list(_PART_ORDER)], parts[:, list(_PART_ORDER)]
    nearest = weight.amax(1)  # B x N
    background = BACKGROUND_WEIGHT * torch.exp(-((nearest / (2 * BACKGROUND_WEIGHT)) ** 2))
    blend = (torch.einsum("bpn,bpnc->bnc", weight, parts) + background.unsqueeze(-1) * grid) / (
        weight.sum(1) + background
    ).unsqueeze(-1)
    shown = None
    if layers is not None:
        laid, shown = layer_parts(
            parts.view(batch, len(BODY_PARTS), size, size, 2), layers, blend.view(batch, size, size, 2)
        )
        blend = laid.view(batch, -1, 2)
    grids = torch.cat([grid.expand(batch, -1, -1).unsqueeze(1), blend.unsqueeze(1), parts], 1)
    return BodyFlows(grids.view(batch, -1, size, size, 2), weight.view(batch, -1, size, size), shown)


#: The parts from the front of a picture to its back, as indices into :data:`~enliven.pose.BODY_PARTS`: forearms
#: (hands) over upper arms, over the head, over the legs, over the torso. Where two parts cover one point of the
#: source, the front one owns it; where two parts could show at one point of the output, the front one does.
LAYER_ORDER: tuple[int, ...] = tuple(
    next(i for i, part in enumerate(BODY_PARTS) if part.name == name)
    for name in ("left forearm", "right forearm", "left upper arm", "right upper arm", "head", "left shin",
                 "right shin", "left thigh", "right thigh", "torso")
)  # fmt: skip
#: A limb owns the person's pixels within this many of its half thicknesses (:attr:`~enliven.pose.BodyPart.width`)
#: of its bone in the source. 1.0 against 1.5 on five held-out TED pairs, without learning: 1.5 carried pieces of the
#: torso along with an upper arm.
OWNERSHIP_MARGIN = 1.0


def source_layers(kp_source: Tensor, person: Tensor, size: int) -> Tensor:
    """Which body part owns each point of the source: ``B x P x size x size`` in ``[0, 1]``, the parts of
    :data:`~enliven.pose.BODY_PARTS`, summing to the person's mask (0 on the background).

    A part owns the person's points near its bone (within :data:`OWNERSHIP_MARGIN` of its half thicknesses; the
    torso, every point inside its four corners too), the front one where two do (:data:`LAYER_ORDER`); the person's
    other points (a wide skirt, hair, a bag) go to the part whose bone is nearest in half thicknesses, so that no part
    of the person is left behind. Computed once per source.

    Args:
        kp_source: ``B x 33 x 2`` the source's pose landmarks, ``(x, y)`` in ``[-1, 1]``.
        person: ``B x 1 x H x W`` in ``[0, 1]``: where the person is in the source (MediaPipe's selfie segmentation).
        size: side of the square grid.
    """
    batch = kp_source.shape[0]
    grid = make_coordinate_grid((size, size), kp_source.dtype, kp_source.device).view(1, size * size, 2)
    scale = _body_scale(kp_source)
    mask = F.interpolate(person, size=(size, size), mode="area") if person.shape[-1] != size else person
    free = torch.ones(batch, size * size, dtype=kp_source.dtype, device=kp_source.device)
    owned: list[Tensor] = [free] * len(BODY_PARTS)
    reach: list[Tensor] = [free] * len(BODY_PARTS)  # distances in the part's half thicknesses
    for index in LAYER_ORDER:
        part = BODY_PARTS[index]
        reach[index] = _distance_to_bone(grid, kp_source[:, list(part.bone)], size) / (part.width * scale[:, None])
        near = (reach[index] < OWNERSHIP_MARGIN).to(free.dtype)
        owned[index] = near * free
        free = free * (1 - near)
    distances = torch.stack(reach, 1)  # B x P x N
    nearest = (distances <= distances.amin(1, keepdim=True)).to(free.dtype)
    nearest = nearest * (nearest.cumsum(1) == 1).to(free.dtype)  # one part where two are equally near
    owners = torch.stack(owned, 1) + free.unsqueeze(1) * nearest
    return owners.view(batch, -1, size, size) * mask


def layer_parts(parts: Tensor, layers: Tensor, behind: Tensor) -> tuple[Tensor, Tensor]:
    """The parts laid over each other: each point of the output shows the front-most part whose own transform
    lands it on a point of the source that this part owns; where none does (the background, and what a moving limb
    uncovers), ``behind``.

    Unlike the blend, a forearm moved across the torso takes its own pixels along, whole, and leaves the torso's
    behind; where it was, no part of the source is seen: a model shows its background plate there and synthesises.

    Args:
        parts: ``B x P x h x w x 2`` each part's sampling positions in the source (``[-1, 1]``).
        layers: ``1 x P x h x w`` (or ``B x``) from :func:`source_layers`.
        behind: ``B x h x w x 2`` the positions taken where no part shows.

    Returns:
        ``B x h x w x 2`` sampling positions in the source, and ``B x 1 x h x w`` in ``[0, 1]``: where a part shows.
    """
    batch, count, h, w, _ = parts.shape
    owners = layers.expand(batch, -1, -1, -1).reshape(batch * count, 1, layers.shape[-2], layers.shape[-1])
    # where each part's transform lands each output point: does this part own the source there? (0 off the frame)
    shows = grid_sample(owners, parts.reshape(batch * count, h, w, 2), padding_mode="zeros", align_corners=True)
    shows = shows.view(batch, count, h, w, 1)
    remaining = torch.ones_like(behind[..., :1])
    layered = torch.zeros_like(behind)
    for index in LAYER_ORDER:
        layered = layered + remaining * shows[:, index] * parts[:, index]
        remaining = remaining * (1 - shows[:, index])
    return layered + remaining * behind, (1 - remaining).permute(0, 3, 1, 2)


#: Index of the head among :data:`~enliven.pose.BODY_PARTS` (and of its weight map from :func:`body_flows`).
HEAD_PART = next(i for i, part in enumerate(BODY_PARTS) if part.name == "head")
#: Where the head's weight exceeds this, a grid point belongs to the head.
HEAD_WEIGHT = 0.5


def head_region(weights: Tensor) -> Tensor:
    """``B x 1 x s x s`` in ``{0, 1}``: where the head owns the grid points (``weights`` from :func:`body_flows`)."""
    return (weights[:, HEAD_PART : HEAD_PART + 1] > HEAD_WEIGHT).to(weights.dtype)


def _body_scale(points: Tensor) -> Tensor:
    """``B`` body sizes: the larger of the shoulders' width and the torso's height (:func:`enliven.pose.body_scale`)."""
    shoulders = points[:, LEFT_SHOULDER] - points[:, RIGHT_SHOULDER]
    torso = (points[:, LEFT_SHOULDER] + points[:, RIGHT_SHOULDER] - points[:, LEFT_HIP] - points[:, RIGHT_HIP]) / 2
    return torch.maximum(shoulders.norm(dim=-1), torso.norm(dim=-1)).clamp(min=MIN_BODY_SCALE)


def _affine_near(points_from: Tensor, points_to: Tensor, prior: Tensor, ridge: float) -> Tensor:
    """The least-squares affine map ``B x 3 x 2`` of ``B x K x 2`` points, pulled towards ``prior`` (``B x 3 x 2``)
    by ``ridge``: ``argmin |D A - to|^2 + ridge |A - prior|^2``, so nearly collinear points keep the prior's map."""
    design = torch.cat([points_from, torch.ones_like(points_from[..., :1])], -1)  # B x K x 3
    identity = torch.tensor(((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)), dtype=design.dtype,
                            device=design.device)  # fmt: skip
    normal = design.transpose(1, 2) @ design + ridge * identity
    return inverse_3x3(normal) @ (design.transpose(1, 2) @ points_to + ridge * prior)


def _distance_to_bone(grid: Tensor, bone: Tensor, size: int) -> Tensor:
    """``B x N`` distances of ``1 x N x 2`` grid points to ``B x n x 2`` bones: a point, a segment, or a closed
    polygon (0 inside)."""
    if bone.shape[1] <= 2:
        return _distance_to_segment(grid, bone[:, 0], bone[:, -1])
    edges = torch.stack(
        [_distance_to_segment(grid, bone[:, i], bone[:, (i + 1) % bone.shape[1]]) for i in range(bone.shape[1])]
    ).amin(0)
    inside = polygon_mask(bone, size, feather=0).view(bone.shape[0], -1)
    return edges * (1 - inside)


def _distance_to_segment(grid: Tensor, start: Tensor, end: Tensor) -> Tensor:
    """``B x N`` distances of ``1 x N x 2`` points to the ``B`` segments ``start``-``end`` (``B x 2`` each)."""
    direction = (end - start).unsqueeze(1)  # B x 1 x 2
    length = (direction * direction).sum(-1)  # B x 1
    along = ((grid - start.unsqueeze(1)) * direction).sum(-1) / length.clamp(min=1e-12)
    nearest = start.unsqueeze(1) + along.clamp(0, 1).unsqueeze(-1) * direction
    return (grid - nearest).norm(dim=-1)


#: A limb's length may change by at most this factor between the reference frame and another (a limb pointing at the
#: camera shortens; a landmark glitch must not stretch the source's arm across the frame).
MAX_LENGTH_CHANGE = 3.0


def retarget_pose(kp_source: Tensor, kp_driving: Tensor, kp_reference: Tensor, scale: float = 1.0) -> Tensor:
    """Relative motion for bodies: the source's skeleton moved as the driver's moved since its reference frame.

    Instead of adding the driver's landmark displacements to the source's (FOMM's relative transfer, which stretches
    a shorter source arm or bends a longer one), the torso moves by the similarity the driver's torso made (its
    translation, and what the similarity leaves over, times ``scale``), the head rigidly about the neck as the
    driver's did, and each bone of :data:`enliven.pose.SKELETON` hangs from its placed parent at the source's joint
    angle changed by the driver's change (an elbow or knee folding more where the driver's folds more, whichever side
    of its axis it lies on), its length changed by the driver's factor. Landmarks outside the frame (MediaPipe guesses
    cut-off limbs), the driver's or the source's, move nothing: such a bone keeps the source's pose (a half-body photo's
    thighs do not turn with a dancer's: the pixels they would drag are the skirt's at the frame's edge), and hips count
    only when the knees are seen. So the joint angles of the result change as the driver's do.

    Args:
        kp_source: ``1 x 33 x 2`` (or ``B x``) the source's pose landmarks, ``(x, y)`` in ``[-1, 1]``.
        kp_driving: ``B x 33 x 2`` the driving frames'.
        kp_reference: ``1 x 33 x 2`` (or ``B x``) the reference driving frame's.
        scale: translation scale, source over driver (:func:`~enliven.models.motion_transfer.movement_scale`).

    Returns:
        ``B x 33 x 2`` landmarks to drive the model with.
    """
    batch = kp_driving.shape[0]
    source = kp_source.expand(batch, -1, -1)
    reference = kp_reference.expand(batch, -1, -1)
    placed = source.clone()

    # A landmark counts where it lies in the frame in both driving frames and in the source (MediaPipe also guesses
    # cut-off limbs); the hips only when the knees are seen too: in a half-body shot MediaPipe moves them tens of
    # pixels from frame to frame under a jacket, a desk or the frame's edge.
    seen = _in_frame(reference) & _in_frame(kp_driving) & _in_frame(source)  # B x 33
    legs = (seen[:, LEFT_KNEE] & seen[:, RIGHT_KNEE]).to(source.dtype)
    weights = torch.stack([torch.ones_like(legs), torch.ones_like(legs), legs, legs], 1)  # B x 4, as TORSO_POINTS
    torso = list(TORSO_POINTS)
    ref_torso, now_torso, src_torso = reference[:, torso], kp_driving[:, torso], source[:, torso]
    motion = fit_similarity(ref_torso, now_torso, weights)
    share = (weights / weights.sum(1, keepdim=True)).unsqueeze(-1)
    ref_centre, src_centre = (share * ref_torso).sum(1, True), (share * src_torso).sum(1, True)
    now_centre = ref_centre @ motion[:, :2] + motion[:, 2:]
    # what the similarity leaves over (shrugs, a turn of the chest against the hips) is added as a displacement
    residual = (now_torso - ref_torso @ motion[:, :2] - motion[:, 2:]) * weights.unsqueeze(-1)
    placed[:, torso] = (
        (src_torso - src_centre) @ motion[:, :2] + src_centre + (now_centre - ref_centre + residual) * scale
    )

    head = list(HEAD_POINTS)
    necks = [(points[:, LEFT_SHOULDER] + points[:, RIGHT_SHOULDER]).unsqueeze(1) / 2
             for points in (reference, kp_driving, source, placed)]  # fmt: skip
    ref_head, now_head, src_head = (
        reference[:, head] - necks[0],
        kp_driving[:, head] - necks[1],
        source[:, head] - necks[2],
    )
    motion = fit_similarity(ref_head, now_head)
    shift = now_head.mean(1, True) - ref_head.mean(1, True)
    placed[:, head] = (
        necks[3] + (src_head - src_head.mean(1, True)) @ motion[:, :2] + src_head.mean(1, True) + shift * scale
    )

    # The joint's angle changes as the driver's did; a hinge folds more (or less) as the driver's does, whichever
    # side of its axis it lies on in the picture (an elbow bent inwards in the photo and outwards in the driving
    # video still folds when the driver's does; turning it the same way would unfold it). Every bone at once: only
    # the placing goes parents first, a level of the skeleton at a time.
    bones = _SKELETON_INDEX
    before = _signed_angle(reference, bones)  # B x S
    change = _signed_angle(kp_driving, bones) - before
    change = torch.atan2(torch.sin(change), torch.cos(change))  # wrapped into (-pi, pi]
    ours = _signed_angle(source, bones)
    flip = bones.hinge.to(ours.device) & ((ours >= 0) != (before >= 0))
    same_side = torch.where(flip, -torch.ones_like(change), torch.ones_like(change))
    visible = seen[:, bones.parent] & seen[:, bones.child]
    angle = ours + torch.where(visible, same_side * change, torch.zeros_like(change))
    length = _length(kp_driving, bones) / _length(reference, bones).clamp(min=1e-6)
    length = torch.where(visible, length.clamp(1 / MAX_LENGTH_CHANGE, MAX_LENGTH_CHANGE), torch.ones_like(length))
    turning = torch.stack([torch.cos(angle), torch.sin(angle)], -1)  # B x S x 2
    limb = source[:, bones.child] - source[:, bones.parent]  # B x S x 2
    reach = limb.norm(dim=-1, keepdim=True) * length.unsqueeze(-1)
    for level in _SKELETON_LEVELS:
        at = level.bones
        axis = placed[:, level.axis_end] - placed[:, level.axis_start]
        direction = _rotate(axis / axis.norm(dim=-1, keepdim=True).clamp(min=1e-6), turning[:, at])
        new_limb = direction * reach[:, at]
        placed[:, level.child] = placed[:, level.parent] + new_limb
        if len(level.followers):  # a hand or foot turns with its limb
            turn = _complex_ratio(new_limb, limb[:, at])[:, level.follower_bone]
            offset = source[:, level.followers] - source[:, level.follower_child]
            placed[:, level.followers] = placed[:, level.follower_child] + _rotate(offset, turn)
    return placed


@dataclass(frozen=True)
class _Bones:
    """Bones of :data:`~enliven.pose.SKELETON` as index tensors (``S``-long each)."""

    parent: Tensor
    child: Tensor
    axis_start: Tensor
    axis_end: Tensor
    hinge: Tensor


@dataclass(frozen=True)
class _Level:
    """The bones placed together: each one's parent and axis are placed before them (by the torso or a level
    before). ``bones`` index the skeleton's bones; ``followers`` are the points that turn with them, each hanging
    from ``follower_child`` of the level's ``follower_bone``-th bone."""

    bones: Tensor
    parent: Tensor
    child: Tensor
    axis_start: Tensor
    axis_end: Tensor
    followers: Tensor
    follower_child: Tensor
    follower_bone: Tensor


def _skeleton_levels() -> tuple[_Bones, tuple[_Level, ...]]:
    """:data:`~enliven.pose.SKELETON` as index tensors, and its bones grouped into levels placed one after another
    (upper arms and thighs from the torso, then forearms and shins)."""
    long = lambda values: torch.tensor(list(values), dtype=torch.long)  # noqa: E731
    bones = _Bones(
        long(b.parent for b in SKELETON),
        long(b.child for b in SKELETON),
        long(b.axis[0] for b in SKELETON),
        long(b.axis[1] for b in SKELETON),
        torch.tensor([b.hinge for b in SKELETON]),
    )
    placed, levels, left = set(TORSO_POINTS) | set(HEAD_POINTS), [], list(range(len(SKELETON)))
    while left:
        ready = [i for i in left if {SKELETON[i].parent, *SKELETON[i].axis} <= placed]
        if not ready:
            raise ValueError("SKELETON must list every bone after the bones that place its parent and axis")
        chosen = [SKELETON[i] for i in ready]
        followers = [(f, n) for n, b in enumerate(chosen) for f in b.followers]
        levels.append(
            _Level(
                long(ready),
                long(b.parent for b in chosen),
                long(b.child for b in chosen),
                long(b.axis[0] for b in chosen),
                long(b.axis[1] for b in chosen),
                long(f for f, _ in followers),
                long(chosen[n].child for _, n in followers),
                long(n for _, n in followers),
            )
        )
        placed |= {b.child for b in chosen} | {f for f, _ in followers}
        left = [i for i in left if i not in ready]
    return bones, tuple(levels)


_SKELETON_INDEX, _SKELETON_LEVELS = _skeleton_levels()


def _signed_angle(points: Tensor, bones: _Bones) -> Tensor:
    """``B x S`` angles (radians, in ``(-pi, pi]``) from each bone's axis to the bone in ``B x 33 x 2`` landmarks."""
    axis = points[:, bones.axis_end] - points[:, bones.axis_start]
    limb = points[:, bones.child] - points[:, bones.parent]
    cross = axis[..., 0] * limb[..., 1] - axis[..., 1] * limb[..., 0]
    return torch.atan2(cross, (axis * limb).sum(-1))


def _length(points: Tensor, bones: _Bones) -> Tensor:
    """``B x S`` lengths of the bones in ``B x 33 x 2`` landmarks."""
    return (points[:, bones.child] - points[:, bones.parent]).norm(dim=-1)


def _complex_ratio(now: Tensor, before: Tensor) -> Tensor:
    """``... x 2``: the rotation and scaling taking the ``... x 2`` vectors ``before`` to ``now``, as complex numbers
    ``now / before`` (1 where ``before`` vanished)."""
    norm = (before * before).sum(-1, keepdim=True)
    ratio = torch.stack(
        [
            now[..., 0] * before[..., 0] + now[..., 1] * before[..., 1],
            now[..., 1] * before[..., 0] - now[..., 0] * before[..., 1],
        ],
        -1,
    ) / norm.clamp(min=1e-12)
    identity = torch.zeros_like(ratio)
    identity[..., 0] = 1.0
    return torch.where(norm > 1e-12, ratio, identity)


def _rotate(vector: Tensor, ratio: Tensor) -> Tensor:
    """``... x 2`` vectors multiplied by ``... x 2`` complex numbers (rotated and scaled)."""
    return torch.stack(
        [
            vector[..., 0] * ratio[..., 0] - vector[..., 1] * ratio[..., 1],
            vector[..., 0] * ratio[..., 1] + vector[..., 1] * ratio[..., 0],
        ],
        -1,
    )


def _in_frame(points: Tensor) -> Tensor:
    """``B x K`` whether ``B x K x 2`` points lie inside the frame (``[-1, 1]`` both ways)."""
    return (points.abs() <= 1).all(-1)
