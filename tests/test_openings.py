"""Relative motion of face-mesh landmarks: the eyelids and lips retargeted as openings, never through each other."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tiny_lite_2
from enliven.face_mesh import EYE_AND_LIP_OPENINGS, NUM_FACE_MESH_POINTS
from enliven.models.factory import build_model
from enliven.models.motion_transfer import _openings, relative_keypoints, retarget_openings
from enliven.types import Keypoints, MotionMode

CENTRES = ((-0.35, -0.2), (0.35, -0.2), (0.0, 0.4))  # each opening's centre: right eye, left eye, lips
HALF_WIDTHS = (0.15, 0.15, 0.2)


def face(openings: tuple[float, float, float], shift: float = 0.0) -> torch.Tensor:
    """``1 x 468 x 2`` landmarks: a fixed cloud, each opening of :data:`EYE_AND_LIP_OPENINGS` drawn level with its
    corners ``2 * half width`` apart and each pair ``openings[i]`` of that width apart (upper above lower), the whole
    face moved down by ``shift``."""
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.9, 0.9, (NUM_FACE_MESH_POINTS, 2))
    for (corners, pairs), (cx, cy), half, opening in zip(
        EYE_AND_LIP_OPENINGS, CENTRES, HALF_WIDTHS, openings, strict=True
    ):
        points[corners[0]], points[corners[1]] = (cx - half, cy), (cx + half, cy)
        for k, (upper, lower) in enumerate(pairs):
            x = cx - half + 2 * half * (k + 1) / (len(pairs) + 1)
            points[upper], points[lower] = (x, cy - opening * half), (x, cy + opening * half)
    points[:, 1] += shift
    return torch.tensor(points[None], dtype=torch.float32)


def sizes(points: torch.Tensor) -> list[float]:
    """Each opening's size (the mean over its pairs)."""
    opening, start = _openings(points)[0], 0
    means = []
    for _, pairs in EYE_AND_LIP_OPENINGS:
        means.append(float(opening[..., start : start + len(pairs)].mean()))
        start += len(pairs)
    return means


def transfer(source: torch.Tensor, driving: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    moved = relative_keypoints(Keypoints(source), Keypoints(driving), Keypoints(reference)).value
    return retarget_openings(moved, source, driving, reference)


def test_a_narrower_source_eye_closes_with_the_driver_and_its_lids_never_cross() -> None:
    source, reference = face((0.1, 0.1, 0.0)), face((0.3, 0.3, 0.0))
    driver_openings = np.linspace(0.3, 0.0, 7)
    driving = torch.cat([face((o, o, 0.0)) for o in driver_openings])
    plain = relative_keypoints(Keypoints(source), Keypoints(driving), Keypoints(reference)).value
    assert min(sizes(plain[-1:])[:2]) == pytest.approx(-0.2, abs=1e-5)  # added displacements cross the lids
    retargeted = retarget_openings(plain, source, driving, reference)
    eyes = np.array([sizes(retargeted[i : i + 1])[:2] for i in range(len(driving))])
    np.testing.assert_allclose(eyes, 0.1 * driver_openings[:, None] / 0.3 * np.ones((1, 2)), atol=1e-5)
    assert sizes(retargeted[-1:])[2] == pytest.approx(0.0, abs=1e-6)  # the closed mouth is left closed


def test_opening_wider_than_the_reference_is_the_plain_transfer() -> None:
    source, reference = face((0.2, 0.25, 0.0)), face((0.3, 0.3, 0.0))
    driving = torch.cat([face((0.35, 0.3, 0.3), shift=0.05), face((0.3, 0.4, 0.1))])
    plain = relative_keypoints(Keypoints(source), Keypoints(driving), Keypoints(reference)).value
    torch.testing.assert_close(retarget_openings(plain, source, driving, reference), plain)


def test_the_mouth_closes_in_the_drivers_proportion_and_only_lids_and_lips_move() -> None:
    source, reference = face((0.3, 0.3, 0.2)), face((0.3, 0.3, 0.4), shift=0.1)
    driving = face((0.3, 0.3, 0.1), shift=0.1)
    result = transfer(source, driving, reference)
    assert sizes(result)[2] == pytest.approx(0.2 * 0.1 / 0.4, abs=1e-5)
    paired = {i for _, pairs in EYE_AND_LIP_OPENINGS for pair in pairs for i in pair}
    others = [i for i in range(NUM_FACE_MESH_POINTS) if i not in paired]
    plain = relative_keypoints(Keypoints(source), Keypoints(driving), Keypoints(reference)).value
    torch.testing.assert_close(result[:, others], plain[:, others])


def test_a_mouth_at_rest_in_the_reference_keeps_the_transfer_and_lips_never_cross() -> None:
    """A reference mouth a few hundredths open (the mesh's noise): an open-mouthed photo follows the driver's lips by
    their displacement, not by a ratio to that noise; a driver pressing its lips does not push the photo's through."""
    source, reference = face((0.3, 0.3, 0.3)), face((0.3, 0.3, 0.015))
    driving = torch.cat([face((0.3, 0.3, 0.005)), face((0.3, 0.3, 0.0))])
    plain = relative_keypoints(Keypoints(source), Keypoints(driving), Keypoints(reference)).value
    torch.testing.assert_close(transfer(source, driving, reference), plain)
    pressed = transfer(face((0.3, 0.3, 0.0)), face((0.3, 0.3, -0.01)), face((0.3, 0.3, 0.015)))
    assert sizes(pressed)[2] == pytest.approx(0.0, abs=1e-6)


def test_each_lip_takes_the_share_of_the_move_the_transfer_gave_it() -> None:
    """A jaw that closes moves the lower lip: the correction moves the lower lip too, not the upper."""
    source, reference = face((0.3, 0.3, 0.1)), face((0.3, 0.3, 0.5))
    driving = reference.clone()
    corners, pairs = EYE_AND_LIP_OPENINGS[2]
    lower = [pair[1] for pair in pairs]
    driving[:, lower, 1] -= 0.5 * 2 * HALF_WIDTHS[2]  # only the lower lip moves up: the mouth closes
    result = transfer(source, driving, reference)
    upper = [pair[0] for pair in pairs]
    torch.testing.assert_close(result[:, upper], source[:, upper])
    assert sizes(result)[2] == pytest.approx(0.0, abs=1e-5)


def test_scale_free_and_the_same_in_pixels() -> None:
    source, reference, driving = face((0.1, 0.2, 0.3)), face((0.3, 0.3, 0.5)), face((0.1, 0.0, 0.2))
    normalised = transfer(source, driving, reference)
    to_pixels = lambda points: (points + 1) * 128  # noqa: E731
    pixels = transfer(to_pixels(source), to_pixels(driving), to_pixels(reference))
    torch.testing.assert_close(to_pixels(normalised), pixels, atol=1e-3, rtol=0)


def test_face_mesh_models_retarget_in_relative_mode_only() -> None:
    model = build_model(tiny_lite_2())
    source, reference, driving = face((0.1, 0.1, 0.0)), face((0.3, 0.3, 0.0)), face((0.0, 0.0, 0.0))
    relative = model.transfer_motion(Keypoints(source), Keypoints(driving), Keypoints(reference), MotionMode.RELATIVE)
    assert min(sizes(relative.value)) == pytest.approx(0.0, abs=1e-5)
    absolute = model.transfer_motion(Keypoints(source), Keypoints(driving), None, MotionMode.ABSOLUTE)
    torch.testing.assert_close(absolute.value, driving)
