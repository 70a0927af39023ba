"""Bodies as parts: MediaPipe pose's 33 landmarks, the rigid parts they define, and the part warp.

The part warp moves each part of a body (torso, head, upper arms, forearms, thighs, shins) by its own transform,
fitted from the part's landmarks in the driving frame to the same landmarks in the source (least squares: an affine
map for the torso's four corners, a similarity for the other parts), and blends the parts' maps per pixel by the
distance to each part's bone in the driving frame (linear blend skinning); far from every bone the pixel stays where
it is (the background does not move). Pixel coordinates throughout: ``(x, y)``, pixel ``(i, j)`` covers
``[i, i + 1)``. It is the "no learning" baseline of body evaluation and the candidate motions of a body model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: MediaPipe pose landmark indices.
NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR = 0, 2, 5, 7, 8
LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_ELBOW, RIGHT_ELBOW, LEFT_WRIST, RIGHT_WRIST = 11, 12, 13, 14, 15, 16
LEFT_HIP, RIGHT_HIP, LEFT_KNEE, RIGHT_KNEE, LEFT_ANKLE, RIGHT_ANKLE = 23, 24, 25, 26, 27, 28
NUM_POSE_POINTS = 33


@dataclass(frozen=True)
class BodyPart:
    """A rigid part of a body.

    Attributes:
        name: e.g. ``left forearm``.
        bone: where the part lies, as landmarks: two ends of a bone, one point, or the corners of a polygon (inside
            it the distance is 0); a pixel's weight falls with its distance to it.
        fit: the landmarks its transform is fitted to (at least two found, else the part is left out).
        width: the part's half thickness, as a share of the body's scale (the shoulders' width, or the torso's
            height when that is larger: a body seen from the side).
        affine: fit a full affine map (needs three points not in a line) instead of a similarity.
    """

    name: str
    bone: tuple[int, ...]
    fit: tuple[int, ...]
    width: float
    affine: bool = False


# Half thicknesses measured on the tai-chi and TED crops at 256 px: a forearm is about a tenth of the body's scale.
BODY_PARTS: tuple[BodyPart, ...] = (
    BodyPart("torso", (LEFT_SHOULDER, RIGHT_SHOULDER, RIGHT_HIP, LEFT_HIP),
             (LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_HIP, RIGHT_HIP), 0.15, affine=True),
    BodyPart("head", (NOSE,), (NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR), 0.3),
    BodyPart("left upper arm", (LEFT_SHOULDER, LEFT_ELBOW), (LEFT_SHOULDER, LEFT_ELBOW), 0.12),
    BodyPart("left forearm", (LEFT_ELBOW, LEFT_WRIST), (LEFT_ELBOW, LEFT_WRIST), 0.1),
    BodyPart("right upper arm", (RIGHT_SHOULDER, RIGHT_ELBOW), (RIGHT_SHOULDER, RIGHT_ELBOW), 0.12),
    BodyPart("right forearm", (RIGHT_ELBOW, RIGHT_WRIST), (RIGHT_ELBOW, RIGHT_WRIST), 0.1),
    BodyPart("left thigh", (LEFT_HIP, LEFT_KNEE), (LEFT_HIP, LEFT_KNEE), 0.16),
    BodyPart("left shin", (LEFT_KNEE, LEFT_ANKLE), (LEFT_KNEE, LEFT_ANKLE), 0.12),
    BodyPart("right thigh", (RIGHT_HIP, RIGHT_KNEE), (RIGHT_HIP, RIGHT_KNEE), 0.16),
    BodyPart("right shin", (RIGHT_KNEE, RIGHT_ANKLE), (RIGHT_KNEE, RIGHT_ANKLE), 0.12),
)  # fmt: skip

#: The joint angles of a body (one end, the joint, the other end): elbows (shoulder, elbow, wrist), shoulders (hip,
#: shoulder, elbow), hips (shoulder, hip, knee), knees (hip, knee, ankle); left, then right.
POSE_JOINTS: tuple[tuple[int, int, int], ...] = (
    (LEFT_SHOULDER, LEFT_ELBOW, LEFT_WRIST), (RIGHT_SHOULDER, RIGHT_ELBOW, RIGHT_WRIST),
    (LEFT_HIP, LEFT_SHOULDER, LEFT_ELBOW), (RIGHT_HIP, RIGHT_SHOULDER, RIGHT_ELBOW),
    (LEFT_SHOULDER, LEFT_HIP, LEFT_KNEE), (RIGHT_SHOULDER, RIGHT_HIP, RIGHT_KNEE),
    (LEFT_HIP, LEFT_KNEE, LEFT_ANKLE), (RIGHT_HIP, RIGHT_KNEE, RIGHT_ANKLE),
)  # fmt: skip


#: The torso's corners (moved together, by one affine map) and the head's points (moved rigidly about the neck).
TORSO_POINTS: tuple[int, ...] = (LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_HIP, RIGHT_HIP)
HEAD_POINTS: tuple[int, ...] = tuple(range(11))  # nose, eyes, ears, mouth


@dataclass(frozen=True)
class Bone:
    """A bone of the skeleton for retargeting: ``child`` hangs from ``parent`` (placed before it) at an angle
    measured from the direction ``axis`` (two landmarks), and ``followers`` (a hand's or a foot's points) move
    rigidly with it. A ``hinge`` (elbow, knee) folds one way only, whichever side of its axis a picture shows it
    on."""

    parent: int
    child: int
    axis: tuple[int, int]
    hinge: bool = False
    followers: tuple[int, ...] = ()


#: The limbs from the torso outwards, parents first: every point outside the torso and head is placed by one bone.
#: Upper arms turn against the shoulder line, thighs against the hip line (the shoulders and hips of
#: :data:`POSE_JOINTS`), forearms and shins against their parent bone (elbows and knees).
SKELETON: tuple[Bone, ...] = (
    Bone(LEFT_SHOULDER, LEFT_ELBOW, (RIGHT_SHOULDER, LEFT_SHOULDER)),
    Bone(LEFT_ELBOW, LEFT_WRIST, (LEFT_ELBOW, LEFT_SHOULDER), True, (17, 19, 21)),
    Bone(RIGHT_SHOULDER, RIGHT_ELBOW, (LEFT_SHOULDER, RIGHT_SHOULDER)),
    Bone(RIGHT_ELBOW, RIGHT_WRIST, (RIGHT_ELBOW, RIGHT_SHOULDER), True, (18, 20, 22)),
    Bone(LEFT_HIP, LEFT_KNEE, (RIGHT_HIP, LEFT_HIP)),
    Bone(LEFT_KNEE, LEFT_ANKLE, (LEFT_KNEE, LEFT_HIP), True, (29, 31)),
    Bone(RIGHT_HIP, RIGHT_KNEE, (LEFT_HIP, RIGHT_HIP)),
    Bone(RIGHT_KNEE, RIGHT_ANKLE, (RIGHT_KNEE, RIGHT_HIP), True, (30, 32)),
)


def joint_angles(points: np.ndarray) -> np.ndarray:
    """``N x len(POSE_JOINTS)`` angles (radians, in ``[0, pi]``: folded to straight) of ``N x 33 x 2`` pose
    keypoints; NaN where a keypoint of the joint was not found or a limb has no length."""
    ends = np.array(POSE_JOINTS)
    a = points[:, ends[:, 0]] - points[:, ends[:, 1]]
    b = points[:, ends[:, 2]] - points[:, ends[:, 1]]
    lengths = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = (a * b).sum(-1) / np.where(lengths > 1e-6, lengths, np.nan)
    return np.arccos(np.clip(cosine, -1.0, 1.0))


#: The background's weight far from the body: a part's weight at two half-thicknesses from its bone. Near a bone it
#: fades out (see :func:`part_warp_map`), so that a part moves whole instead of being held back by the background.
BACKGROUND_WEIGHT = float(np.exp(-2.0))


def fit_transform(frm: np.ndarray, to: np.ndarray, affine: bool = False) -> np.ndarray | None:
    """The ``2 x 3`` map taking the ``P x 2`` points ``frm`` to ``to`` (least squares): a similarity (rotation,
    uniform scale, translation), or a full affine map with ``affine`` and three or more points; ``None`` with fewer
    than two points or points on top of each other."""
    if len(frm) < 2:
        return None
    if affine and len(frm) >= 3:
        design = np.concatenate([frm, np.ones((len(frm), 1))], axis=1)
        solution, _, rank, _ = np.linalg.lstsq(design, to, rcond=None)
        if rank == 3:
            return solution.T
    mean_frm, mean_to = frm.mean(0), to.mean(0)
    a, b = frm - mean_frm, to - mean_to
    norm = float((a * a).sum())
    if norm < 1e-9:
        return None
    # the complex-number form of the least-squares similarity: to = s * e^{i theta} * frm + t
    cos = float((a * b).sum()) / norm
    sin = float((a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]).sum()) / norm
    rotation = np.array([[cos, -sin], [sin, cos]])
    return np.concatenate([rotation, (mean_to - rotation @ mean_frm)[:, None]], axis=1)


def body_scale(points: np.ndarray) -> float | None:
    """The body's size in pixels: the larger of the shoulders' width and the torso's height; ``None`` unseen."""
    sizes = []
    if np.isfinite(points[[LEFT_SHOULDER, RIGHT_SHOULDER]]).all():
        sizes.append(np.linalg.norm(points[LEFT_SHOULDER] - points[RIGHT_SHOULDER]))
    shoulders, hips = points[[LEFT_SHOULDER, RIGHT_SHOULDER]], points[[LEFT_HIP, RIGHT_HIP]]
    if np.isfinite(shoulders).all(axis=1).any() and np.isfinite(hips).all(axis=1).any():
        top = shoulders[np.isfinite(shoulders).all(axis=1)].mean(0)
        bottom = hips[np.isfinite(hips).all(axis=1)].mean(0)
        sizes.append(np.linalg.norm(top - bottom))
    size = max(sizes, default=0.0)
    return float(size) if size > 1.0 else None


def part_warp_map(source_points: np.ndarray, driving_points: np.ndarray, width: int, height: int) -> np.ndarray | None:
    """Where each pixel of the driving frame comes from in the source: ``H x W x 2`` float32 ``(x, y)`` positions
    (for ``cv2.remap``), from both frames' ``33 x 2`` pose landmarks (NaN where not found); ``None`` when no part
    can be placed (the caller keeps the source)."""
    scale = body_scale(driving_points)
    if scale is None:
        return None
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    pixels = np.stack([xs + 0.5, ys + 0.5], axis=-1)  # pixel centres
    total = np.zeros((height, width))
    moved = np.zeros((height, width, 2))
    nearest = np.zeros((height, width))  # the largest part weight at each pixel
    for part in BODY_PARTS:
        found = [i for i in part.fit if np.isfinite(source_points[i]).all() and np.isfinite(driving_points[i]).all()]
        bone = driving_points[list(part.bone)]
        if not np.isfinite(bone).all():
            continue
        transform = fit_transform(driving_points[found], source_points[found], part.affine)
        if transform is None:
            continue
        distance = _distance_to_bone(pixels, bone)
        weight = np.exp(-0.5 * (distance / (part.width * scale)) ** 2)
        total += weight
        moved += weight[..., None] * (pixels @ transform[:, :2].T + transform[:, 2])
        nearest = np.maximum(nearest, weight)
    # the background: full weight beyond ~3 half-thicknesses of every bone, none within one
    background = BACKGROUND_WEIGHT * np.exp(-((nearest / (2 * BACKGROUND_WEIGHT)) ** 2))
    total += background
    moved += background[..., None] * pixels
    return (moved / total[..., None] - 0.5).astype(np.float32)  # back to remap's convention (pixel centres at i)


def _distance_to_bone(pixels: np.ndarray, bone: np.ndarray) -> np.ndarray:
    """``H x W`` distances of ``H x W x 2`` pixels to a point, a segment or a polygon (0 inside) of ``n x 2``."""
    if len(bone) <= 2:
        return _distance_to_segment(pixels, bone[0], bone[-1])
    edges = [_distance_to_segment(pixels, bone[i], bone[(i + 1) % len(bone)]) for i in range(len(bone))]
    distance = np.min(edges, axis=0)
    inside = np.zeros(pixels.shape[:2], bool)  # even-odd rule over the edges
    x, y = pixels[..., 0], pixels[..., 1]
    for (x0, y0), (x1, y1) in zip(bone, np.roll(bone, -1, axis=0), strict=True):
        crosses = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (x < at)
    return np.where(inside, 0.0, distance)


def _distance_to_segment(pixels: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    length = float(ab @ ab)
    t = np.zeros(pixels.shape[:2]) if length < 1e-9 else np.clip(((pixels - a) @ ab) / length, 0.0, 1.0)
    nearest = a + t[..., None] * ab
    return np.linalg.norm(pixels - nearest, axis=-1)
