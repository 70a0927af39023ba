"""Head pose and expression from 2D face-mesh landmarks, and back.

A face in a frame is modelled as a weak-perspective view of a 3D face::

    landmarks = scale * P @ R @ (canonical + [expression, 0]) + translation

``canonical`` is a mean 3D face (``canonical_face.npy``, 468 x 3, built by ``scripts/make_canonical_face.py`` from
MediaPipe's relative depths; image axes: x right, y down, z away from the camera; inter-ocular distance 1), ``R``
the head rotation, ``P`` drops z, and ``expression`` (468 x 2) is everything that is not pose (the person's shape
and their expression), as an in-plane offset of the frontal face in inter-ocular units. Given the landmarks, the
pose is the least-squares weak-perspective fit and the expression follows exactly, so
:func:`compose` ``(`` :func:`decompose` ``(x))`` returns ``x``: edits change the pose or the expression and compose
again.

Angles are in degrees: ``yaw`` positive turns the face towards the image's right, ``pitch`` positive tilts it up,
``roll`` positive turns it clockwise in the image. Works for moderate angles (|yaw|, |pitch| below ~60 degrees),
where the frontal face's in-plane axes stay invertible.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

#: Outer eye corners in the face mesh (image left, image right): their distance is the unit of expressions.
EYE_CORNERS = (33, 263)


@cache
def canonical_face() -> np.ndarray:
    """The mean 3D face, ``468 x 3`` float64, centred, inter-ocular distance 1 (see the module docstring)."""
    with resources.files("enliven.motion").joinpath("canonical_face.npy").open("rb") as handle:
        face = np.load(handle).astype(np.float64)
    face.setflags(write=False)
    return face


def rotation_matrix(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """``... x 3 x 3`` rotations from angles in degrees (``...`` shaped): roll after pitch after yaw, in image axes."""
    a, b, c = (np.radians(np.asarray(v, dtype=np.float64)) for v in (-yaw, -pitch, roll))
    zeros, ones = np.zeros_like(a), np.ones_like(a)
    about_y = np.stack([np.cos(a), zeros, np.sin(a), zeros, ones, zeros, -np.sin(a), zeros, np.cos(a)], -1)
    about_x = np.stack([ones, zeros, zeros, zeros, np.cos(b), -np.sin(b), zeros, np.sin(b), np.cos(b)], -1)
    about_z = np.stack([np.cos(c), -np.sin(c), zeros, np.sin(c), np.cos(c), zeros, zeros, zeros, ones], -1)
    shape = a.shape + (3, 3)
    return about_z.reshape(shape) @ about_x.reshape(shape) @ about_y.reshape(shape)


def rotation_angles(rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`rotation_matrix`: ``(yaw, pitch, roll)`` in degrees of ``... x 3 x 3`` rotations."""
    a = np.arctan2(-rotation[..., 2, 0], rotation[..., 2, 2])
    b = np.arcsin(np.clip(rotation[..., 2, 1], -1.0, 1.0))
    c = np.arctan2(-rotation[..., 0, 1], rotation[..., 1, 1])
    return -np.degrees(a), -np.degrees(b), np.degrees(c)


@dataclass(frozen=True)
class HeadPose:
    """Per-frame head pose, each field shaped ``T`` (float64).

    Attributes:
        yaw, pitch, roll: degrees (see the module docstring for the signs).
        scale: pixels (or the landmarks' units) per inter-ocular distance of the frontal face.
        x, y: the face's centre, in the landmarks' units.
    """

    yaw: np.ndarray
    pitch: np.ndarray
    roll: np.ndarray
    scale: np.ndarray
    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.yaw)

    def as_array(self) -> np.ndarray:
        """``T x 6``: yaw, pitch, roll, scale, x, y."""
        return np.stack([self.yaw, self.pitch, self.roll, self.scale, self.x, self.y], axis=-1)

    @classmethod
    def from_array(cls, array: np.ndarray) -> HeadPose:
        """From ``T x 6`` (see :meth:`as_array`)."""
        array = np.asarray(array, dtype=np.float64)
        return cls(*(array[..., i] for i in range(6)))

    def rotation(self) -> np.ndarray:
        """``T x 3 x 3``."""
        return rotation_matrix(self.yaw, self.pitch, self.roll)


def fit_pose(landmarks: np.ndarray) -> HeadPose:
    """The weak-perspective head pose of ``T x 468 x 2`` landmarks (any units; no NaN rows).

    The 2 x 3 linear map from the centred canonical face to the centred landmarks is fitted by least squares and
    split into a scale and the two first rows of a rotation (made orthonormal); the third row is their cross product.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    face = canonical_face()
    centre = points.mean(axis=1)
    centred = points - centre[:, None]
    solve = np.linalg.pinv(face)  # 3 x 468: the canonical face is centred
    linear = np.einsum("kn,tnd->tdk", solve, centred)  # T x 2 x 3: rows of scale * R[:2]
    first = linear[:, 0]
    norm_first = np.linalg.norm(first, axis=-1)
    row1 = first / norm_first[:, None]
    second = linear[:, 1] - (linear[:, 1] * row1).sum(-1, keepdims=True) * row1
    norm_second = np.linalg.norm(linear[:, 1], axis=-1)
    row2 = second / np.linalg.norm(second, axis=-1, keepdims=True)
    rotation = np.stack([row1, row2, np.cross(row1, row2)], axis=1)
    yaw, pitch, roll = rotation_angles(rotation)
    return HeadPose(yaw, pitch, roll, (norm_first + norm_second) / 2, centre[:, 0], centre[:, 1])


def decompose(landmarks: np.ndarray) -> tuple[HeadPose, np.ndarray]:
    """``T x 468 x 2`` landmarks -> their pose and ``T x 468 x 2`` expression (see the module docstring)."""
    points = np.asarray(landmarks, dtype=np.float64)
    pose = fit_pose(points)
    rotation = pose.rotation()
    face = canonical_face()
    rigid = np.einsum("tij,nj->tni", rotation[:, :2], face)  # T x 468 x 2: the rotated canonical face, projected
    residual = (points - np.stack([pose.x, pose.y], -1)[:, None]) / pose.scale[:, None, None] - rigid
    in_plane = rotation[:, :2, :2]  # how the frontal face's x and y axes appear in the image
    expression = np.einsum("tij,tnj->tni", np.linalg.inv(in_plane), residual)
    return pose, expression


def compose(pose: HeadPose, expression: np.ndarray) -> np.ndarray:
    """Inverse of :func:`decompose`: ``T x 468 x 2`` landmarks of ``pose`` with ``expression`` (``T x 468 x 2``,
    or ``468 x 2`` for every frame)."""
    rotation = pose.rotation()
    face = canonical_face()
    expression = np.broadcast_to(np.asarray(expression, dtype=np.float64), (len(pose), face.shape[0], 2))
    shape = face[None] + np.concatenate([expression, np.zeros(expression.shape[:2] + (1,))], axis=-1)
    projected = np.einsum("tij,tnj->tni", rotation[:, :2], shape)
    return projected * pose.scale[:, None, None] + np.stack([pose.x, pose.y], -1)[:, None]
