"""Relative motion of face-mesh landmarks kept whole: no triangle of the source's mesh stretched past its bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import tiny_lite_2
from enliven.face_mesh import NUM_FACE_MESH_POINTS, RIGHT_EYE
from enliven.models.factory import build_model
from enliven.models.motion_transfer import (
    MAX_TRIANGLE_GROWTH,
    _signed_areas,
    _watched,
    keep_mesh_whole,
    similarity_fit,
)
from enliven.motion.pose import canonical_face
from enliven.types import Keypoints, MotionMode


@pytest.fixture(scope="module")
def source() -> torch.Tensor:
    """``1 x 468 x 2``: the mean face seen from the front, in ``[-1, 1]`` model units."""
    return torch.tensor(canonical_face()[None, :, :2] * 0.45, dtype=torch.float32)


def growth(points: torch.Tensor, source: torch.Tensor) -> np.ndarray:
    """``B x T``: each watched triangle's area over its area in the source moved by the face's similarity."""
    points, source = points.double().numpy(), source.double().numpy()
    triangles = _watched(source[0].tobytes())[0]
    return _signed_areas(points, triangles) / _signed_areas(similarity_fit(source, points)[0], triangles)


def test_similarity_fit_recovers_a_similarity(source: torch.Tensor) -> None:
    angle = math.radians(12)
    rotation = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    moved = (1.3 * source @ rotation.T + torch.tensor([0.1, -0.05])).double().numpy()
    fitted, scale = similarity_fit(source.double().numpy(), moved)
    np.testing.assert_allclose(fitted, moved, atol=1e-6, rtol=0)
    assert float(scale[0]) == pytest.approx(1.3)
    mirrored = moved * np.array([-1.0, 1.0])  # no similarity mirrors: the fit is a worse one, not a reflection
    assert float(np.abs(similarity_fit(source.double().numpy(), mirrored)[0] - mirrored).mean()) > 0.05


def test_motion_within_bounds_is_returned_exactly(source: torch.Tensor) -> None:
    """A head that shifts, turns in the image, grows and blinks: nothing is held back, to the last bit."""
    rotated = torch.stack((source[..., 0] - 0.1 * source[..., 1], source[..., 1] + 0.1 * source[..., 0]), dim=-1)
    moved = 1.1 * rotated + 0.05
    eye = list(RIGHT_EYE)
    moved[0, eye, 1] = moved[0, eye, 1].mean()  # the eye shut: its inside closes to nothing
    assert torch.equal(keep_mesh_whole(moved, source), moved)


def test_a_face_stretched_apart_is_held_within_the_bound(source: torch.Tensor) -> None:
    """A profile driven to the camera: the near half of the face pulled far out. The guard keeps every watched
    triangle within :data:`MAX_TRIANGLE_GROWTH` (over the face's similarity), the points moving the same way,
    less, and most of the far half where it was (its motion is within bounds)."""
    moved = source.clone()
    near = source[0, :, 0] < -0.1
    moved[0, near, 0] = source[0, near, 0] * 4  # the near half stretched outwards, 4x
    assert float(growth(moved, source).max()) > 2 * MAX_TRIANGLE_GROWTH
    kept = keep_mesh_whole(moved, source)
    assert float(growth(kept, source).max()) <= MAX_TRIANGLE_GROWTH + 1e-3
    shift = kept[0, near, 0] - source[0, near, 0]
    assert bool((shift <= 1e-6).all()) and float(shift.mean()) < -0.01  # outwards, less far
    untouched = (kept[0, ~near] == moved[0, ~near]).all(dim=1)
    assert float(untouched.float().mean()) > 0.5  # the far half beyond the torn triangles' corners as it was


def test_rows_are_kept_each_on_its_own_and_nan_rows_pass(source: torch.Tensor) -> None:
    """A batch is held back as each frame alone; a frame without a face (NaN) comes back as it was."""
    rng = np.random.default_rng(0)
    stretched = source.clone()
    stretched[0, source[0, :, 0] < -0.1, 0] *= 5
    quiet = source + torch.tensor(rng.normal(0, 0.002, source.shape), dtype=torch.float32)
    missing = torch.full_like(source, float("nan"))
    batch = torch.cat([stretched, quiet, missing])
    kept = keep_mesh_whole(batch, source)
    torch.testing.assert_close(kept[0], keep_mesh_whole(stretched, source)[0])
    assert torch.equal(kept[1], quiet[0]) and bool(kept[2].isnan().all())


def test_points_beyond_the_face_mesh_are_returned_as_they_are(source: torch.Tensor) -> None:
    extra = torch.full((1, 10, 2), 0.5)
    moved = source.clone()
    moved[0, source[0, :, 0] < -0.1, 0] *= 5
    kept = keep_mesh_whole(torch.cat([moved, extra], dim=1), torch.cat([source, extra], dim=1))
    assert kept.shape == (1, NUM_FACE_MESH_POINTS + 10, 2) and torch.equal(kept[0, NUM_FACE_MESH_POINTS:], extra[0])


def test_face_mesh_models_keep_the_mesh_whole_in_relative_mode_only(source: torch.Tensor) -> None:
    model = build_model(tiny_lite_2())
    driving = source.clone()
    driving[0, source[0, :, 0] < -0.1, 0] *= 5  # a driver's face pulled apart from its first frame (the source's)
    relative = model.transfer_motion(Keypoints(source), Keypoints(driving), Keypoints(source), MotionMode.RELATIVE)
    assert float(growth(relative.value, source).max()) <= MAX_TRIANGLE_GROWTH + 1e-3
    absolute = model.transfer_motion(Keypoints(source), Keypoints(driving), None, MotionMode.ABSOLUTE)
    torch.testing.assert_close(absolute.value, driving)
