"""The body model (enliven-body): its candidate flows, pose retargeting, training from pose sidecars, inference."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import TINY_SIDE, write_square_clips
from enliven.config.lite import LITE_BODY, LiteConfig
from enliven.errors import ConfigError, NoFaceError
from enliven.models.factory import build_model
from enliven.models.lite.body import BLEND_CANDIDATE, body_flows, layer_parts, retarget_pose, source_layers
from enliven.pose import (
    LEFT_ELBOW,
    LEFT_HIP,
    LEFT_KNEE,
    LEFT_SHOULDER,
    LEFT_WRIST,
    NUM_POSE_POINTS,
    RIGHT_SHOULDER,
    joint_angles,
    part_warp_map,
)
from enliven.train.trainer import train
from enliven.types import Keypoints, LandmarkKind, MotionMode

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_BODY = LiteConfig(
    image_size=TINY_SIDE,
    keypoints="pose",
    piecewise=False,
    face_margin=None,
    motion_size=16,
    channels=(8, 16),
    motion_expansion=8,
    num_bottleneck_blocks=1,
)


def standing(side: int = 200) -> np.ndarray:
    """A stick figure's 33 pose points in pixels of a ``side`` square (hands, feet and face points placed too)."""
    spots = {0: (100, 40), 1: (97, 37), 2: (95, 35), 3: (93, 35), 4: (103, 37), 5: (105, 35), 6: (107, 35),
             7: (88, 38), 8: (112, 38), 9: (97, 48), 10: (103, 48), 11: (80, 70), 12: (120, 70), 13: (70, 100),
             14: (130, 100), 15: (65, 130), 16: (135, 130), 17: (63, 138), 18: (137, 138), 19: (65, 140),
             20: (135, 140), 21: (67, 136), 22: (133, 136), 23: (85, 130), 24: (115, 130), 25: (85, 165),
             26: (115, 165), 27: (85, 190), 28: (115, 190), 29: (83, 194), 30: (117, 194), 31: (90, 196),
             32: (110, 196)}  # fmt: skip
    return np.array([spots[i] for i in range(NUM_POSE_POINTS)], dtype=np.float64) * side / 200


def normalised(pixels: np.ndarray, side: int = 200) -> torch.Tensor:
    """``1 x 33 x 2`` normalised keypoints of pixel positions (pixel ``i`` covers ``[i, i + 1)``)."""
    return torch.from_numpy((pixels - 0.5) / (side - 1) * 2 - 1).float()[None]


def raised_forearm(points: np.ndarray) -> np.ndarray:
    """The stick figure with its left forearm (and hand) turned up about the elbow."""
    moved = points.copy()
    elbow = points[LEFT_ELBOW]
    turn = np.array([[0.0, -1.0], [1.0, 0.0]])  # 90 degrees
    for index in (LEFT_WRIST, 17, 19, 21):
        moved[index] = elbow + turn @ (points[index] - elbow)
    return moved


def test_the_blend_candidate_is_the_part_warp() -> None:
    source, driving = standing(), raised_forearm(standing())
    flows = body_flows(normalised(source), normalised(driving), 200)
    grids, weights = flows.grids, flows.weights
    assert flows.shown is None and grids.shape == (1, 12, 200, 200, 2) and weights.shape == (1, 10, 200, 200)
    reference = part_warp_map(source, driving, 200, 200) / 199 * 2 - 1  # remap positions (centres at i)
    difference = np.abs(grids[0, BLEND_CANDIDATE].numpy() - reference)
    assert difference.mean() < 1e-3 and difference.max() < 0.02  # the torso's affine map is pulled to a similarity
    identity = grids[0, 0].numpy()
    corner = (slice(0, 10), slice(180, 200))  # far from the body: the blend stands still
    assert np.abs(grids[0, BLEND_CANDIDATE].numpy()[corner] - identity[corner]).max() < 1e-3
    assert float(weights[0, 3].max()) > 0.99 and float(weights[0, 3, 5, 190]) < 1e-3  # the left forearm's own


def test_parts_computed_together_are_the_parts_computed_one_by_one() -> None:
    """body_flows batches the parts of one shape (the limbs); each part's transform and weight are those of the part
    alone, in BODY_PARTS' order."""
    from enliven.geometry import fit_similarity, make_coordinate_grid
    from enliven.models.lite import body
    from enliven.pose import BODY_PARTS

    assert sorted(i for group in body._PART_GROUPS for i in group.parts) == list(range(len(BODY_PARTS)))
    side = 48
    source = normalised(standing(side), side)
    driving = torch.cat([normalised(raised_forearm(standing(side)), side), source * 0.9 + 0.05])  # B = 2
    flows = body_flows(source.expand(2, -1, -1), driving, side)
    grid = make_coordinate_grid((side, side), torch.float32, "cpu").view(1, side * side, 2)
    homogeneous = torch.cat([grid, torch.ones_like(grid[..., :1])], -1)
    scale = body._body_scale(driving)
    for index, part in enumerate(BODY_PARTS):
        frm, to = driving[:, list(part.fit)], source.expand(2, -1, -1)[:, list(part.fit)]
        transform = fit_similarity(frm, to)
        if part.affine:
            transform = body._affine_near(frm, to, transform, body.TORSO_RIDGE)
        moved = (homogeneous @ transform).view(2, side, side, 2)
        torch.testing.assert_close(flows.grids[:, 2 + index], moved, atol=1e-6, rtol=0)
        distance = body._distance_to_bone(grid, driving[:, list(part.bone)], side)
        weight = torch.exp(-0.5 * (distance / (part.width * scale[:, None])) ** 2).view(2, side, side)
        torch.testing.assert_close(flows.weights[:, index], weight, atol=1e-6, rtol=0)


def test_layered_parts_move_a_limb_whole_and_leave_the_torso_behind() -> None:
    """The layered candidate: the raised forearm's points come from the source's forearm (its own transform), the
    torso's from the torso, the place the forearm left shows no forearm, and off the person the blend stands."""
    side = 200
    source, driving = standing(side), raised_forearm(standing(side))
    person = torch.zeros(1, 1, side, side)
    person[..., 30:200, 50:150] = 1.0  # the person's box: everything outside it is background
    layers = source_layers(normalised(source, side), person, side)
    assert layers.shape == (1, 10, side, side)
    assert torch.allclose(layers.sum(1, keepdim=True), person)  # every point of the person has one owner, no other
    assert float(layers[0, 3, 115, 68]) == 1.0  # the left forearm owns its bone's middle (x 68, y 115)
    assert float(layers[0, 0, 115, 68]) == 0.0  # and the torso does not, though it lies nearby

    plain = body_flows(normalised(source, side), normalised(driving, side), side).grids
    flows = body_flows(normalised(source, side), normalised(driving, side), side, layers)
    layered, forearm, torso = flows.grids[0, BLEND_CANDIDATE], flows.grids[0, 2 + 3], flows.grids[0, 2 + 0]
    up = ((driving[LEFT_ELBOW] + driving[LEFT_WRIST]) / 2).astype(int)  # the raised forearm's middle
    assert torch.allclose(layered[up[1], up[0]], forearm[up[1], up[0]], atol=1e-4)
    assert torch.allclose(layered[100, 100], torso[100, 100], atol=1e-4)  # the chest
    assert float(flows.shown[0, 0, up[1], up[0]]) == 1.0 and float(flows.shown[0, 0, 100, 100]) == 1.0
    # where the forearm hung, and off the person, no part shows: the model takes its plate there
    gone = ((source[LEFT_ELBOW] + source[LEFT_WRIST]) / 2).astype(int)
    assert float(flows.shown[0, 0, gone[1], gone[0]]) == 0.0 and float(flows.shown[0, 0, 10, 10]) == 0.0
    assert torch.equal(flows.grids[:, 2:], plain[:, 2:]) and torch.allclose(layered[10, 190], plain[0, 1, 10, 190])

    # a part that owns nothing shows nowhere: the positions taken are the ones behind
    behind = torch.rand(1, 4, 4, 2)
    parts = torch.rand(1, 10, 4, 4, 2) * 2 - 1
    laid, shown = layer_parts(parts, torch.zeros(1, 10, 4, 4), behind)
    assert torch.equal(laid, behind) and not shown.any()


def test_retargeting_keeps_a_pose_and_moves_joints_as_the_driver() -> None:
    still = normalised(standing())
    assert torch.allclose(retarget_pose(still, still, still), still, atol=1e-5)
    raised = normalised(raised_forearm(standing()))
    # the driver's own reference: its own pose back (torso, limbs; hands turn with the forearm)
    assert torch.allclose(retarget_pose(still, raised, still), raised, atol=1e-4)

    # A source with longer arms bent the other way: the elbow still folds as the driver's does, the forearm keeps
    # its own length times the driver's change.
    other = standing()
    other[LEFT_ELBOW] = (60, 105)
    other[LEFT_WRIST] = (70, 145)
    folded = standing()
    folded[LEFT_WRIST] = (80, 125)  # the driver's elbow folds more
    result = retarget_pose(normalised(other), normalised(folded), still)[0].numpy()
    angles = joint_angles(np.stack([standing(), folded, other, (result + 1) / 2 * 199 + 0.5]))[:, 0]
    assert angles[1] < angles[0] and angles[3] < angles[2]  # both fold
    assert np.isclose(angles[2] - angles[3], angles[0] - angles[1], atol=1e-3)  # by the same angle

    def forearm(points: np.ndarray) -> float:
        return float(np.linalg.norm(points[LEFT_WRIST] - points[LEFT_ELBOW]))

    shortened = forearm(folded) / forearm(standing())  # the driver's forearm looks shorter: so does the source's
    assert np.isclose(forearm((result + 1) / 2 * 199 + 0.5), forearm(other) * shortened, rtol=1e-3)

    # a limb the driver does not show (outside the frame) keeps the source's pose; the hips follow the shoulders
    gone = folded.copy()
    gone[LEFT_WRIST] = (80, 260)
    gone[LEFT_HIP] = (85, 150)  # a half-body shot's wandering hip: ignored, the knees are not in the frame
    gone[[25, 26, 27, 28]] += (0, 100)
    unseen = retarget_pose(still, normalised(gone), still)[0]
    assert torch.allclose(unseen[LEFT_WRIST], still[0, LEFT_WRIST], atol=1e-5)
    assert torch.allclose(unseen[LEFT_HIP], still[0, LEFT_HIP], atol=1e-5)

    # nor does a limb the source does not show: a half-body photo's thighs keep their pose while a dancer's turn
    half = standing()
    half[[25, 26, 27, 28]] += (0, 100)  # knees and ankles below the frame
    kicking = standing()
    kicking[LEFT_KNEE] += (25, -10)
    moved = retarget_pose(normalised(half), normalised(kicking), still)[0]
    assert torch.allclose(moved, normalised(half)[0], atol=1e-5)


def test_a_batch_of_frames_is_retargeted_as_each_frame_alone() -> None:
    """Every bone of a skeleton level is placed at once, for every frame of a batch (no frame leaks into another)."""
    generator = torch.Generator().manual_seed(0)
    source, reference = (torch.rand(1, 33, 2, generator=generator) * 1.6 - 0.8 for _ in range(2))
    frames = torch.rand(5, 33, 2, generator=generator) * 2.4 - 1.2  # some landmarks outside the frame
    together = retarget_pose(source, frames, reference, 0.7)
    alone = torch.cat([retarget_pose(source, frames[i : i + 1], reference, 0.7) for i in range(5)])
    torch.testing.assert_close(together, alone)


def test_the_body_model_runs_and_transfers_relative_motion_by_retargeting() -> None:
    model = build_model(TINY_BODY).eval()
    assert model.keypoint_source.value == "pose"
    source, driving = (
        normalised(standing(TINY_SIDE), TINY_SIDE),
        normalised(raised_forearm(standing(TINY_SIDE)), TINY_SIDE),
    )
    with torch.inference_mode():
        encoding = model.encode_source(torch.rand(1, 3, TINY_SIDE, TINY_SIDE), Keypoints(source))
        output = model.generate(encoding, Keypoints(driving.expand(2, -1, -1)))
        assert output.prediction.shape == (2, 3, TINY_SIDE, TINY_SIDE)
        assert output.motion.mask.shape == (2, 12, 16, 16)
        # untrained, the mixture prefers the parts' blend
        assert float(output.motion.mask[:, BLEND_CANDIDATE].mean()) > 0.5
        relative = model.transfer_motion(Keypoints(source), Keypoints(driving), Keypoints(source), MotionMode.RELATIVE)
        assert torch.allclose(relative.value, retarget_pose(source, driving, source))
        absolute = model.transfer_motion(Keypoints(source), Keypoints(driving), None, MotionMode.ABSOLUTE)
        assert absolute.value is driving
    with pytest.raises(ValueError, match="33 pose landmarks"):
        model.generate(encoding, Keypoints(torch.zeros(1, 468, 2)))
    with pytest.raises(ValueError, match="pose landmarks"):
        model.encode_source(torch.rand(1, 3, TINY_SIDE, TINY_SIDE))


def test_a_body_config_has_no_face_mesh() -> None:
    assert LiteConfig.from_yaml_dict(LITE_BODY.to_yaml_dict()) == LITE_BODY
    with pytest.raises(ConfigError, match="keypoints: pose"):
        LiteConfig(keypoints="pose")  # the face mesh's piecewise warp is on by default
    layered = dataclasses.replace(LITE_BODY, layered_parts=True)
    assert LiteConfig.from_yaml_dict(layered.to_yaml_dict()) == layered
    with pytest.raises(ConfigError, match="layered_parts.*background_plate: true"):
        dataclasses.replace(LITE_BODY, background_plate=False, layered_parts=True)


def test_the_two_stage_recipe_trains_one_model() -> None:
    from enliven.config import load_model_config
    from enliven.train.config import load_train_config

    configs = Path(__file__).resolve().parents[1] / "configs"
    assert load_model_config(configs / "lite-body.yaml") == LITE_BODY
    assert load_model_config(configs / "lite-body-finetune.yaml") == LITE_BODY
    first, second = (load_train_config(configs / name) for name in ("lite-body.yaml", "lite-body-finetune.yaml"))
    assert first.init_from is None and second.init_from == "runs/lite-body/stage1.safetensors"
    # enliven-body 1.1: the bundled weights trained on with the parts laid over each other
    assert load_model_config(configs / "lite-body-layered.yaml") == dataclasses.replace(LITE_BODY, layered_parts=True)
    assert load_train_config(configs / "lite-body-layered.yaml").init_from == "enliven-body"


def test_what_the_source_hides_comes_from_the_background_plate() -> None:
    model = build_model(dataclasses.replace(TINY_BODY, background_plate=True)).eval()
    assert model.needs_plate
    source, plate = torch.full((1, 3, TINY_SIDE, TINY_SIDE), 0.8), torch.full((1, 3, TINY_SIDE, TINY_SIDE), 0.2)
    keypoints = Keypoints(normalised(standing(TINY_SIDE), TINY_SIDE))
    with pytest.raises(ValueError, match="plate"):
        model.encode_source(source, keypoints)
    with torch.no_grad():
        model.dense_motion.head.bias[-1] = -20.0  # everything hidden: the warped source gives way to the plate
        output = model.generate(model.encode_source(source, keypoints, plate=plate), keypoints)
    assert torch.allclose(output.prediction, plate, atol=1e-4) and torch.allclose(output.deformed, plate, atol=1e-4)

    # a layered model reads the person's mask from the plate's fourth channel, and says so when it is missing
    layered = build_model(dataclasses.replace(TINY_BODY, background_plate=True, layered_parts=True)).eval()
    with pytest.raises(ValueError, match="fourth channel"):
        layered.encode_source(source, keypoints, plate=plate)
    with torch.no_grad():
        encoding = layered.encode_source(source, keypoints, plate=torch.cat([plate, torch.ones_like(plate[:, :1])], 1))
        assert encoding.plate.shape[1] == 3 and encoding.layers.shape == (1, 10, 16, 16)
        assert layered.generate(encoding, keypoints).prediction.shape == (1, 3, TINY_SIDE, TINY_SIDE)


def test_the_person_plate_carries_the_mask() -> None:
    from enliven.preprocess.person import background_plate, person_plate

    image = np.full((32, 32, 3), 200, np.uint8)
    image[8:24, 12:20] = 30  # a dark figure on a light wall
    person = np.zeros((32, 32), np.float32)
    person[8:24, 12:20] = 1.0
    plate = person_plate(image, person)
    assert plate.shape == (32, 32, 4) and plate.dtype == np.uint8
    assert np.array_equal(plate[..., :3], background_plate(image, person))
    assert np.array_equal(plate[..., 3], (person * 255).astype(np.uint8))
    assert plate[16, 16, :3].min() > 150  # the figure painted out


@pytest.mark.parametrize("layered", [False, True], ids=["blend", "layered"])
def test_trains_from_pose_sidecars(tmp_path: Path, layered: bool) -> None:
    root = write_square_clips(tmp_path / "bodies", ("train",) * 2, 4)
    rng = np.random.default_rng(0)
    for clip in ("clip0", "clip1"):
        frames = standing(TINY_SIDE)[None] + rng.normal(0, 1.0, (4, NUM_POSE_POINTS, 2))
        frames[1] = np.nan  # nobody found in this frame: pairs are drawn among the others
        np.save(root / "train" / f"clip0{LandmarkKind.POSE.suffix}".replace("clip0", clip), frames.astype(np.float32))
    model_config = dataclasses.replace(TINY_BODY, background_plate=True, layered_parts=layered)
    document = copy.deepcopy(model_config.to_yaml_dict())
    document["dataset_params"].update({"id_sampling": False})  # the pose sidecars and plates: switched on by the model
    document["train_params"] = {
        "num_epochs": 1,
        "num_repeats": 2,
        "batch_size": 2,
        "dataloader_workers": 0,
        "scales": [1, 0.5],
        "loss_weights": {"equivariance_value": 0, "equivariance_jacobian": 0, "landmark_flow": 10},
        "log_every": 1,
        "seed": 0,
    }
    config = tmp_path / "body.yaml"
    config.write_text(yaml.safe_dump(document))
    result = train(config, root, tmp_path / "run", progress=False)
    assert result.step == 2 and all(np.isfinite(v) for v in result.losses.values())
    assert result.losses["landmark_flow"] > 0

    (root / "train" / f"clip1{LandmarkKind.POSE.suffix}").unlink()
    from enliven.data import PairDataset, PairDatasetConfig
    from enliven.errors import InputError

    with pytest.raises(InputError, match=r"enliven data landmarks .* --kind pose"):
        PairDataset(PairDatasetConfig(root=root, landmarks=LandmarkKind.POSE, frame_size=(TINY_SIDE, TINY_SIDE)))
    with pytest.raises(ConfigError, match="landmarks must be"):
        PairDatasetConfig(root=root, landmarks="hands")
    assert PairDatasetConfig(root=root, landmarks=True).landmarks is LandmarkKind.FACE_MESH


def test_pose_sidecars_cropper_and_animator_on_a_real_body(shared_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("mediapipe")
    import cv2

    from enliven.inference.animator import Animator
    from enliven.inference.cropper import FaceCropper
    from enliven.io import read_image
    from enliven.prepare.landmarks import add_landmarks

    bodies = shared_dir / "data" / "bodies" / "MRAA-taichi"
    photo, clip = bodies / "images" / "taichi_cmp1_source0.png", bodies / "videos" / "taichi_copart01.mp4"
    if not (photo.is_file() and clip.is_file()):
        pytest.skip("the shared tai-chi photo and clip are not here")
    capture = cv2.VideoCapture(str(clip))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 60)  # standing, facing the camera (the clip opens with a high kick)
    frames = [cv2.cvtColor(capture.read()[1], cv2.COLOR_BGR2RGB) for _ in range(6)]
    capture.release()
    folder = tmp_path / "bodies" / "train" / "taichi"
    folder.mkdir(parents=True)
    for index, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{index:06d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    summary = add_landmarks(tmp_path / "bodies", progress=False, kind=LandmarkKind.POSE)
    assert (summary.computed, summary.frames, summary.missing) == (1, 6, 0) and "without a person" in summary.line()
    stored = np.load(folder.with_name("taichi" + LandmarkKind.POSE.suffix))
    assert stored.shape == (6, NUM_POSE_POINTS, 2) and np.isfinite(stored).all()

    image = read_image(photo)  # 256 x 256, the woman standing from head to feet
    wide = np.concatenate([np.full_like(image, 90), image, np.full_like(image, 90)], axis=1)
    side = 128  # MediaPipe finds no one in a 64 px frame
    with FaceCropper(side, content="body") as cropper:
        box = cropper.source_box(wide)
        assert box is not None and box.width == pytest.approx(box.height)
        assert 256 <= box.center[0] <= 512 and box.width <= 300  # around the woman, not the whole frame
        boxes = cropper.clip_boxes(frames)
        assert boxes is not None and len(boxes) == 1
        streamed = [cropper.crop_frame(frame) for frame in frames]
        assert all(crop.image.shape == (side, side, 3) for crop in streamed) and streamed[0].face_found
        with pytest.raises(NoFaceError, match="no person"):
            cropper.source_box(np.full((120, 160, 3), 90, np.uint8))

    model = build_model(dataclasses.replace(TINY_BODY, image_size=side, motion_size=32))
    with Animator(model, device="cpu") as animator:
        assert animator.landmark_kind is LandmarkKind.POSE and not animator.uses_face_mesh
        animator.set_source(cropper.cut(wide, box))
        out = animator(np.stack([cropper.cut(frame, boxes[0]) for frame in frames]))
        assert out.shape == (6, side, side, 3)
        with pytest.raises(NoFaceError, match="No person"):
            animator.set_source(np.full((side, side, 3), 90, np.uint8))


def test_the_best_frame_of_a_body_is_the_one_posed_like_the_source() -> None:
    from enliven.preprocess.best_frame import best_matching_pose

    source = standing()
    kick = source.copy()
    kick[[25, 27]] = ((40, 130), (10, 125))  # the left leg raised to the side
    shifted = source * 1.3 + (25, -10)  # the same pose, larger and elsewhere in the frame
    nobody = np.full_like(source, np.nan)
    assert best_matching_pose(source, [kick, nobody, shifted, raised_forearm(source)]) == 2
    assert best_matching_pose(source, [nobody, nobody]) == 0  # no person anywhere: the first frame, as by default


def test_a_half_body_photo_is_matched_by_what_it_shows() -> None:
    """A photo cut at the hips: MediaPipe still places its knees and ankles (below the frame), and the model's best
    frame leaves them out of the match, so the driver's legs do not choose its reference; the evaluation's keypoints
    (NaN there) give the same frame."""
    from enliven.preprocess.best_frame import best_matching_pose, best_model_pose_frame

    source = standing() / 200 * 2 - 1  # [-1, 1]
    source[25:, 1] += 1.2  # knees, ankles and feet below the frame
    same_top = source.copy()
    same_top[25:] = source[25:] * (1, 0.3)  # the legs anywhere: not seen in the photo
    other_top = source.copy()
    other_top[[13, 15]] = ((-0.6, -0.8), (-0.4, -1.0))  # the left arm raised, the legs exactly as the photo's guess
    assert best_model_pose_frame(source, [other_top, same_top]) == 1
    assert best_matching_pose(source, [other_top, same_top]) == 0  # all points: the guessed legs decide
    missing = source.copy()
    missing[25:] = np.nan
    assert best_matching_pose(missing, [other_top, same_top]) == 1


def test_the_skeleton_turns_the_joints_the_evaluation_measures() -> None:
    from enliven.pose import POSE_JOINTS, SKELETON

    measured = {joint[:2] for joint in POSE_JOINTS} | {joint[1:] for joint in POSE_JOINTS}
    assert all((bone.parent, bone.child) in measured for bone in SKELETON)
    assert {LEFT_SHOULDER, RIGHT_SHOULDER} <= {bone.parent for bone in SKELETON}


def test_a_body_model_is_not_exported_but_says_why(tmp_path: Path) -> None:
    from enliven.errors import InputError
    from enliven.export import export_onnx

    with pytest.raises(InputError, match="cannot be exported yet.*--backend torch"):
        export_onnx(build_model(TINY_BODY), tmp_path / "export")
    assert not (tmp_path / "export").exists()


def test_a_body_photo_goes_to_the_body_model_and_is_pasted_back(shared_dir: Path, tmp_path: Path) -> None:
    """The CLI with no --model: a tai-chi photo in a wider frame, the body model, pasted back by the person mask."""
    pytest.importorskip("mediapipe")
    import os
    import subprocess
    import sys

    from PIL import Image

    from enliven.io import read_frames, read_image

    bodies = shared_dir / "data" / "bodies" / "MRAA-taichi"
    photo, clip = bodies / "images" / "taichi_cmp1_source0.png", bodies / "videos" / "taichi_copart01.mp4"
    if not (photo.is_file() and clip.is_file()):
        pytest.skip("the shared tai-chi photo and clip are not here")
    image = read_image(photo)
    wide = np.concatenate([np.full_like(image, 90), image, np.full_like(image, 90)], axis=1)  # 768 x 256
    Image.fromarray(wide).save(tmp_path / "wide.png")
    short = tmp_path / "short.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-frames:v", "12", "-y", str(short)], check=True)
    out = tmp_path / "out.mp4"
    done = subprocess.run(
        [sys.executable, "-m", "enliven", "animate", str(tmp_path / "wide.png"), str(short), "-o", str(out), "-q",
         "--paste-back"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "ENLIVEN_MODELS": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "enliven: model auto: enliven-body (a person, " in done.stdout
    assert ", reference frame " in done.stdout  # by default for a body: the driving frame posed most like the photo
    frames = read_frames(out)
    assert frames.shape[1:] == (256, 768, 3)
    # pasted where the person is: the grey sides of the photo are untouched
    assert np.abs(frames[:, :, :200].astype(int) - 90).max() <= 3


def test_the_best_frame_is_a_body_models_default_reference() -> None:
    """``find_best_frame`` unset (``None``, the CLI without ``--[no-]find-best-frame``, a job without the option) means
    the best frame for a model driven by pose landmarks and the first frame for the others; given, it is obeyed."""
    from enliven.errors import InputError
    from enliven.inference.options import AnimateOptions, options_from_mapping, wants_best_frame
    from enliven.types import LandmarkKind

    assert AnimateOptions().find_best_frame is None
    assert wants_best_frame(None, LandmarkKind.POSE)
    assert not wants_best_frame(None, LandmarkKind.FACE_MESH) and not wants_best_frame(None, None)
    assert not wants_best_frame(False, LandmarkKind.POSE) and wants_best_frame(True, LandmarkKind.FACE_MESH)
    for text, value in (("auto", None), ("", None), ("true", True), ("off", False)):
        assert options_from_mapping({"find-best-frame": text}).find_best_frame is value
    with pytest.raises(InputError, match="option find_best_frame must be true or false, or auto"):
        options_from_mapping({"find_best_frame": "sometimes"})


def test_the_notebook_takes_a_bodys_best_frame_as_its_render_does(shared_dir: Path, tmp_path: Path) -> None:
    """The studio's previews and its render start from the same best frame: for a body, the pose most like the
    photo's (the tai-chi clip opens with a kick; the photo stands)."""
    for module in ("mediapipe", "ipywidgets", "anywidget"):
        pytest.importorskip(module)
    import subprocess

    from enliven.inference import AnimateOptions
    from enliven.notebook import Studio

    bodies = shared_dir / "data" / "bodies" / "MRAA-taichi"
    photo, clip = bodies / "images" / "taichi_cmp1_source0.png", bodies / "videos" / "taichi_copart01.mp4"
    if not (photo.is_file() and clip.is_file()):
        pytest.skip("the shared tai-chi photo and clip are not here")
    short = tmp_path / "short.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-frames:v", "36", "-y", str(short)], check=True)
    options = AnimateOptions(model="enliven-body")  # a body model's default: the best frame
    with Studio(options, work_dir=tmp_path / "studio") as studio:
        studio.load_photo(photo)
        studio.load_clip(short)
        assert studio.preview(5).result.shape == (256, 256, 3)
        result = studio.render(tmp_path / "out.mp4")
        assert studio.best_frame == result.best_frame and studio.best_frame > 10  # standing, not the opening kick
