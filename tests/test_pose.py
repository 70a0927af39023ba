"""The part warp of bodies (enliven.pose): fitted transforms, blending, and the baseline on a real body photo."""

from __future__ import annotations

import numpy as np
import pytest

from enliven.pose import (
    BODY_PARTS,
    LEFT_ELBOW,
    LEFT_SHOULDER,
    LEFT_WRIST,
    NUM_POSE_POINTS,
    RIGHT_SHOULDER,
    body_scale,
    fit_transform,
    part_warp_map,
)


def _standing(width: int = 200, height: int = 200) -> np.ndarray:
    """A stick figure's 33 pose points in pixels (NaN for those not drawn)."""
    points = np.full((NUM_POSE_POINTS, 2), np.nan)
    spots = {0: (100, 40), 2: (95, 35), 5: (105, 35), 7: (88, 38), 8: (112, 38), 11: (80, 70), 12: (120, 70),
             13: (70, 100), 14: (130, 100), 15: (65, 130), 16: (135, 130), 23: (85, 130), 24: (115, 130),
             25: (85, 165), 26: (115, 165), 27: (85, 195), 28: (115, 195)}  # fmt: skip
    for index, spot in spots.items():
        points[index] = spot
    return points


def test_fit_transform_recovers_similarities_and_affine_maps() -> None:
    rng = np.random.default_rng(0)
    frm = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = 0.3, 1.2, np.array([4.0, -7.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    to = frm @ rotation.T + shift
    np.testing.assert_allclose(fit_transform(frm, to), np.concatenate([rotation, shift[:, None]], 1), atol=1e-9)
    shear = np.array([[1.0, 0.4], [0.1, 0.8]])
    np.testing.assert_allclose(fit_transform(frm, frm @ shear.T, affine=True)[:, :2], shear, atol=1e-9)
    assert fit_transform(frm[:1], to[:1]) is None and fit_transform(frm[[0, 0]], to[[0, 0]]) is None


def test_a_moved_body_is_warped_and_the_background_stays() -> None:
    source = _standing()
    driving = source + np.array([12.0, 0.0])  # the whole body 12 px to the right
    where = part_warp_map(source, driving, 200, 200)
    assert where.shape == (200, 200, 2) and where.dtype == np.float32
    on_body = where[100, 112] - np.array([112, 100])  # a pixel on the driving torso comes from 12 px to its left
    np.testing.assert_allclose(on_body, [-12, 0], atol=0.2)
    np.testing.assert_allclose(where[5, 5], [5, 5], atol=0.5)  # the far corner: the background, unmoved
    assert body_scale(np.full((NUM_POSE_POINTS, 2), np.nan)) is None
    assert part_warp_map(source, np.full((NUM_POSE_POINTS, 2), np.nan), 200, 200) is None


def test_a_raised_forearm_moves_only_the_arm() -> None:
    source = _standing()
    driving = source.copy()
    driving[LEFT_WRIST] = driving[LEFT_ELBOW] + np.array([-30.0, 0.0])  # the left forearm held out level
    where = part_warp_map(source, driving, 200, 200)
    wrist = driving[LEFT_WRIST]
    np.testing.assert_allclose(where[int(wrist[1]), int(wrist[0])], source[LEFT_WRIST], atol=3.0)
    right_shoulder = source[RIGHT_SHOULDER]
    np.testing.assert_allclose(where[int(right_shoulder[1]), int(right_shoulder[0])], right_shoulder - 0.5, atol=0.6)
    assert {part.name for part in BODY_PARTS} >= {"head", "left forearm", "right shin"}
    assert np.isfinite(source[LEFT_SHOULDER]).all()


def test_the_part_warp_baseline_on_a_body_photo(shared_dir) -> None:
    pytest.importorskip("mediapipe")
    from enliven.evaluate.baselines import PartWarpBaseline
    from enliven.io import read_image
    from enliven.preprocess import resize_image
    from enliven.types import MotionMode

    photo = shared_dir / "data" / "bodies" / "MRAA-taichi" / "images" / "taichi_cmp1_source0.png"
    if not photo.is_file():
        pytest.skip(f"{photo} is not in the shared data")
    image = resize_image(read_image(photo), (256, 256))
    warp = PartWarpBaseline(MotionMode.ABSOLUTE)
    try:
        warp.set_source(image)
        same = warp.animate(image[None])[0]
        assert np.abs(same.astype(int) - image).mean() < 2.0  # its own pose: nearly the photo
        shifted = np.roll(image, 8, axis=1)
        moved = warp.animate(shifted[None])[0]
        assert np.abs(moved.astype(int) - shifted).mean() < np.abs(image.astype(int) - shifted).mean()
    finally:
        warp.close()


def test_model_auto_tells_a_face_a_person_and_anything_else(shared_dir) -> None:
    pytest.importorskip("mediapipe")
    from enliven.examples import EXAMPLE_SOURCE
    from enliven.inference.choice import ModelChooser
    from enliven.io import read_image

    body = shared_dir / "data" / "bodies" / "MRAA-taichi" / "images" / "taichi_cmp1_source0.png"
    if not body.is_file():
        pytest.skip(f"{body} is not in the shared data")
    with ModelChooser() as chooser:
        face, person = chooser.choose(read_image(EXAMPLE_SOURCE)), chooser.choose(read_image(body))
        other = chooser.choose(np.full((240, 320, 3), 90, np.uint8))
    assert (face.model, face.subject) == ("enliven-lite", "face")
    assert (person.model, person.subject) == ("enliven-body", "person") and person.reason.startswith("a person, ")
    assert (other.model, other.subject) == ("enliven-any", "other")
