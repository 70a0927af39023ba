"""enliven-lite: config, landmark flows, model, training through the shared loop, animation from a photo."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import REPO_ROOT, TINY_SIDE, write_square_clips
from enliven.config import config_from_dict, load_model_config
from enliven.config.lite import LITE_1, LITE_2, LiteConfig
from enliven.errors import ConfigError
from enliven.face_mesh import LANDMARKS_SUFFIX, NUM_FACE_MESH_POINTS
from enliven.geometry import make_coordinate_grid
from enliven.inference.animator import Animator
from enliven.models.factory import build_model
from enliven.models.lite.motion import (
    landmark_flows,
    mesh_warp_flow,
    piecewise_affine_flow,
    sample_flow,
    source_triangles,
)
from enliven.prepare.pack import pack_dataset
from enliven.train.config import load_train_config
from enliven.train.families import LiteObjective, build_objectives
from enliven.train.losses import LossConfig
from enliven.train.objectives import LandmarkPair
from enliven.train.trainer import train
from enliven.types import Keypoints
from enliven.weights.checkpoint import load_release
from enliven.weights.presets import PRESETS

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = LiteConfig(image_size=TINY_SIDE, motion_size=16, channels=(8, 16), motion_expansion=8, num_bottleneck_blocks=1)


def face_points(batch: int = 1, seed: int = 0) -> torch.Tensor:
    """``batch x 468 x 2`` plausible landmark clouds: points inside a centred ellipse."""
    rng = np.random.default_rng(seed)
    angle, radius = (
        rng.uniform(0, 2 * np.pi, (batch, NUM_FACE_MESH_POINTS)),
        rng.uniform(0, 1, (batch, NUM_FACE_MESH_POINTS)),
    )
    points = np.stack([0.35 * radius * np.cos(angle), 0.45 * radius * np.sin(angle)], axis=-1)
    return torch.from_numpy(points.astype(np.float32))


def test_config_round_trips_and_is_checked() -> None:
    config = LITE_1
    assert config_from_dict(config.to_yaml_dict()) == config
    assert load_model_config(REPO_ROOT / "configs" / "lite-faces.yaml") == config
    # the card's fine-tuning experiment: the same model, only where it starts and how fast it learns differ
    assert load_model_config(REPO_ROOT / "configs" / "lite-faces-finetune.yaml") == config
    assert load_train_config(REPO_ROOT / "configs" / "lite-faces-finetune.yaml").init_from == "enliven-lite"
    assert config_from_dict(PRESETS["enliven-lite"].config) == config
    # The bundled files carry the configs they run with (release 1.1 of enliven-lite: bicubic sampling).
    assert load_release(PRESETS["enliven-lite"].weights_path()).model.config == LITE_1
    assert load_release(PRESETS["enliven-lite-2"].weights_path()).model.config == LITE_2
    assert config_from_dict(PRESETS["enliven-lite-2"].config) == LITE_2
    assert load_model_config(REPO_ROOT / "configs" / "lite2-faces.yaml") == LITE_2
    assert config_from_dict(LITE_2.to_yaml_dict()) == LITE_2
    with pytest.raises(ConfigError, match="mouth_interior"):
        LiteConfig(keypoints="learned", mouth_interior=True)
    with pytest.raises(ConfigError, match="image_warp"):
        LiteConfig(image_warp="nearest")
    with pytest.raises(ConfigError, match="num_refine_blocks"):
        LiteConfig(num_refine_blocks=0)
    with pytest.raises(ConfigError, match="motion_params.size"):
        LiteConfig(image_size=256, motion_size=32)
    with pytest.raises(ConfigError, match="landmarks"):
        LiteConfig(landmarks="ears")
    with pytest.raises(ConfigError, match="piecewise_landmarks"):
        LiteConfig(piecewise_landmarks="ears")
    with pytest.raises(ConfigError, match="piecewise_stride"):
        LiteConfig(piecewise_stride=3)
    with pytest.raises(ConfigError, match="face_margin"):
        LiteConfig(face_margin=0.5)
    chooses_everywhere = LiteConfig(face_margin=None)
    assert config_from_dict(chooses_everywhere.to_yaml_dict()) == chooses_everywhere
    without_mesh_warp = LiteConfig(piecewise=False)
    assert config_from_dict(without_mesh_warp.to_yaml_dict()) == without_mesh_warp
    assert build_model(without_mesh_warp).dense_motion.num_candidates == 4
    with_residual = LiteConfig(residual_flow=True, piecewise_landmarks="contour_and_nose", piecewise_stride=1)
    assert config_from_dict(with_residual.to_yaml_dict()) == with_residual
    head = build_model(with_residual).dense_motion.head
    assert head.out_channels == build_model(config).dense_motion.head.out_channels + 2  # a 2-d flow more
    document = config.to_yaml_dict()
    document["model_params"]["motion_params"]["sigma"] = 1
    with pytest.raises(ConfigError, match="unknown key 'model_params.motion_params.sigma'"):
        config_from_dict(document)


def test_landmark_flows_are_exact_where_they_must_be() -> None:
    source = face_points(2)
    grids, density = landmark_flows(source, source, 16, (0.05, 0.2))
    assert grids.shape == (2, 4, 16, 16, 2) and density.shape == (2, 2, 16, 16)
    identity = make_coordinate_grid((16, 16))
    torch.testing.assert_close(grids, identity.expand_as(grids), atol=1e-4, rtol=0)  # no motion, no flow
    # A driving frame that is an affine image of the source: the affine candidate undoes it everywhere.
    matrix = torch.tensor([[0.9, 0.1], [-0.05, 1.1]])
    driving = source @ matrix + torch.tensor([0.1, -0.05])
    grids, _ = landmark_flows(source, driving, 16, (0.05,))
    expected = (identity.view(-1, 2) - torch.tensor([0.1, -0.05])) @ torch.linalg.inv(matrix)
    torch.testing.assert_close(grids[:, 1].reshape(2, -1, 2), expected.expand(2, -1, -1), atol=1e-3, rtol=0)
    torch.testing.assert_close(grids[:, 2], grids[:, 1], atol=1e-3, rtol=0)  # nothing left for the kernel


@torch.no_grad()
def test_model_shapes_and_boundaries() -> None:
    model = build_model(TINY)
    source = torch.rand(1, 3, TINY_SIDE, TINY_SIDE)
    encoding = model.encode_source(source, Keypoints(face_points()))
    out = model.generate(encoding, Keypoints(face_points(3, seed=1)))
    assert out.prediction.shape == (3, 3, TINY_SIDE, TINY_SIDE)
    assert torch.isfinite(out.prediction).all()
    # identity, affine, piecewise affine, two kernel widths
    assert out.motion.deformation.shape == (3, 16, 16, 2) and out.motion.mask.shape == (3, 5, 16, 16)
    with pytest.raises(TypeError, match="face-mesh landmarks"):
        model.detect_keypoints(source)
    with pytest.raises(ValueError, match="468"):
        model.generate(encoding, Keypoints(torch.zeros(1, 10, 2)))
    with pytest.raises(ValueError, match="landmarks"):
        model.encode_source(source)


@torch.no_grad()
def test_untrained_model_is_the_mesh_warp() -> None:
    """At initialisation the decoder adds nothing and the mixture favours the piecewise-affine candidate."""
    model = build_model(TINY)
    source = torch.rand(1, 3, TINY_SIDE, TINY_SIDE)
    points = Keypoints(face_points())
    out = model.generate(model.encode_source(source, points), points)
    assert float((out.deformed - source).abs().max()) < 2e-3  # the affine fit's ridge moves it a hair
    torch.testing.assert_close(out.prediction, out.deformed, atol=0, rtol=0)
    assert float(out.motion.mask[:, 2].mean()) > 0.5


@torch.no_grad()
def test_candidates_on_a_coarser_grid_are_the_same_flows_resized() -> None:
    """``candidate_stride``: the candidates are computed coarser and resized; identity and affine stay exact, the
    mesh warp (already coarser) is the same, and an untrained model still renders the source unmoved."""
    from enliven.models.lite.motion import landmark_flows, resize_candidates

    source, driving = face_points(), face_points(seed=1) * 1.05 + 0.02
    fine, _ = landmark_flows(source, driving, 16, (0.05,))
    coarse, density = resize_candidates(*landmark_flows(source, driving, 8, (0.05,)), 16)
    assert coarse.shape == fine.shape and density.shape == (1, 1, 16, 16)
    torch.testing.assert_close(coarse[:, :2], fine[:, :2], atol=1e-5, rtol=0)  # identity and affine: linear
    model = build_model(dataclasses.replace(TINY, candidate_stride=2))
    image = torch.rand(1, 3, TINY_SIDE, TINY_SIDE)
    points = Keypoints(face_points())
    out = model.generate(model.encode_source(image, points), points)
    assert float((out.deformed - image).abs().max()) < 2e-3
    with pytest.raises(ConfigError, match="candidate_stride"):
        LiteConfig(candidate_stride=3)


def test_piecewise_affine_flow_is_the_mesh_warp() -> None:
    """Each driving triangle maps onto its source triangle: landmarks exactly, inner points by barycentric weights."""
    square = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [0.0, 0.0]])
    triangles = torch.tensor([[[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]]])
    source = square.clone()[None]
    driving = square.clone()[None]
    driving[0, 4] = torch.tensor([0.3, -0.2])  # the centre moves; the corners stay
    flow, chosen, depth = piecewise_affine_flow(source, driving, triangles, driving)
    torch.testing.assert_close(flow, source, atol=1e-5, rtol=0)
    assert chosen.shape == depth.shape == (1, 5) and bool((depth > -1e-5).all())
    # A point a third of the way from corner 0 towards the moved centre lands a third of the way to the old one.
    inner = (2 * driving[:, 0] + driving[:, 4]) / 3 + torch.tensor([0.01, 0.0])  # nudged inside triangle 0
    expected_weights = torch.linalg.solve(
        torch.cat([driving[0, [0, 1, 4]], torch.ones(3, 1)], 1).T, torch.cat([inner[0], torch.ones(1)])
    )
    flow, chosen, _ = piecewise_affine_flow(source, driving, triangles, inner[:, None])
    torch.testing.assert_close(flow[0, 0], expected_weights @ source[0, [0, 1, 4]], atol=1e-5, rtol=0)
    assert chosen.tolist() == [[0]]
    # A collapsed triangle (a closed eye) gives finite flows.
    driving[0, 4] = driving[0, 0]
    assert torch.isfinite(
        piecewise_affine_flow(source, driving, triangles, make_coordinate_grid((8, 8)).view(1, -1, 2))[0]
    ).all()


def test_sample_flow_reads_a_flow_at_points() -> None:
    """Bilinear sampling reproduces an affine flow exactly, between grid points and at the border."""
    matrix, shift = torch.tensor([[0.8, 0.2], [-0.1, 1.2]]), torch.tensor([0.05, -0.1])
    flow = (make_coordinate_grid((9, 9)) @ matrix + shift)[None].expand(2, -1, -1, -1)
    points = torch.rand(2, 30, 2) * 2 - 1
    torch.testing.assert_close(sample_flow(flow, points), points @ matrix + shift, atol=1e-5, rtol=0)


def test_mesh_warp_flow_moves_the_mesh_and_pins_the_border() -> None:
    source = face_points(1)[:, :60]
    driving = source * 1.05 + torch.tensor([0.03, -0.02])  # the face grows and moves; the border cannot
    mesh = mesh_warp_flow(source, driving, source_triangles(source), 65)
    flow = mesh.flow
    assert flow.shape == (1, 65, 65, 2) and mesh.face.shape == (1, 1, 65, 65)
    identity = make_coordinate_grid((65, 65))
    torch.testing.assert_close(flow[0, [0, -1]], identity[[0, -1]], atol=1e-5, rtol=0)
    torch.testing.assert_close(flow[0, :, [0, -1]], identity[:, [0, -1]], atol=1e-5, rtol=0)
    # Inside the face the warp is the inverse of the affine motion; bilinear reads between grid points are exact.
    inside = driving[:, driving[0].norm(dim=-1) < 0.15]  # far from the triangles that reach the anchors
    assert inside.shape[1] > 5
    torch.testing.assert_close(sample_flow(flow, inside), (inside - torch.tensor([0.03, -0.02])) / 1.05, atol=1e-4,
                               rtol=0)  # fmt: skip
    # The face: the driving mesh's hull (the centre), not the triangles reaching the border anchors.
    assert mesh.face[0, 0, 32, 32] == 1 and mesh.face[0, 0, 0, 0] == 0 and mesh.face[0, 0, 32, 2] == 0


def test_source_triangles_give_every_source_a_full_mesh_of_the_same_size() -> None:
    """Delaunay per source, clamped and padded: a face cut by the frame or with coincident points still has
    ``2 M + A - 2`` triangles, every index valid, every source its own mesh."""
    points = face_points(3, seed=2)[:, :40]
    points[1, 0] = torch.tensor([1.4, 0.2])  # outside the frame
    points[2, 5] = points[2, 6]  # coincident
    triangles = source_triangles(points)
    anchors = 16
    assert triangles.shape == (3, 2 * 40 + anchors - 2, 3) and triangles.dtype == torch.int64
    assert int(triangles.min()) >= 0 and int(triangles.max()) < 40 + anchors
    assert not torch.equal(triangles[0], source_triangles(face_points(1, seed=3)[:, :40])[0])


@torch.no_grad()
def test_the_face_takes_the_mesh_warp_and_the_network_chooses_around_it() -> None:
    model = build_model(TINY)
    source, points = torch.rand(1, 3, TINY_SIDE, TINY_SIDE), Keypoints(face_points())
    torch.nn.init.normal_(model.dense_motion.head.weight, std=1.0)  # a network with opinions
    mask = model.generate(model.encode_source(source, points), points).motion.mask
    assert torch.equal(mask[0, :, 8, 8], torch.tensor([0.0, 0, 1, 0, 0]))  # the face centre: the mesh warp
    assert float(mask[0, 2, 0, 0]) < 1  # the corner: the network's choice
    free = build_model(dataclasses.replace(TINY, face_margin=None))
    free.load_state_dict(model.state_dict())
    assert float(free.generate(free.encode_source(source, points), points).motion.mask[0, 2, 8, 8]) < 1


def test_landmark_flow_loss_pulls_the_motion_onto_the_landmarks() -> None:
    assert LossConfig.from_dict(LossConfig(landmark_flow=3.0).to_dict()).landmark_flow == 3.0
    generator, _ = build_objectives(TINY, LossConfig(scales=(1,), l1=0, ms_ssim=0, landmark_flow=3.0))
    source, driving = torch.rand(2, 3, TINY_SIDE, TINY_SIDE), torch.rand(2, 3, TINY_SIDE, TINY_SIDE)
    still = generator(source, driving, landmarks=LandmarkPair(face_points(2), face_points(2)))
    assert "landmark_flow" in still.parts
    assert float(still.parts["landmark_flow"]) < 3.0 * 0.01  # no motion: every candidate is (nearly) the identity
    moved = face_points(2) + torch.tensor([0.1, 0.0])
    out = generator(source, driving, landmarks=LandmarkPair(face_points(2), moved))
    assert float(out.parts["landmark_flow"]) > float(still.parts["landmark_flow"])
    out.loss.backward()  # the landmark flow alone: it trains the motion, not the image decoder
    assert float(generator.model.dense_motion.head.weight.grad.abs().sum()) > 0
    assert generator.model.decoder.head.weight.grad is None or not generator.model.decoder.head.weight.grad.any()


def test_objective_trains_without_equivariance() -> None:
    generator, discriminator = build_objectives(TINY, LossConfig(scales=(1, 0.5)))
    assert isinstance(generator, LiteObjective) and discriminator is None
    source, driving = torch.rand(2, 3, TINY_SIDE, TINY_SIDE), torch.rand(2, 3, TINY_SIDE, TINY_SIDE)
    out = generator(source, driving, landmarks=LandmarkPair(face_points(2), face_points(2, seed=3)))
    assert set(out.parts) == {"l1", "ms_ssim"} and torch.isfinite(out.loss)
    out.loss.backward()
    assert all(p.grad is not None for p in generator.trainable_parameters())
    with pytest.raises(ValueError, match="landmarks"):
        generator(source, driving)


def test_correction_prior_penalises_what_the_decoder_adds() -> None:
    generator, _ = build_objectives(TINY, LossConfig(scales=(1,), ms_ssim=0, correction=5.0))
    assert LossConfig.from_dict(LossConfig(correction=5.0).to_dict()).correction == 5.0
    with torch.no_grad():  # a decoder that adds something
        generator.model.decoder.head.bias.fill_(0.1)
    source, driving = torch.rand(2, 3, TINY_SIDE, TINY_SIDE), torch.rand(2, 3, TINY_SIDE, TINY_SIDE)
    out = generator(source, driving, landmarks=LandmarkPair(face_points(2), face_points(2, seed=3)))
    assert set(out.parts) == {"l1", "correction"}
    # The correction is 0.1 where the (initially visible) occlusion map lets it through: 5% of it.
    assert 0.0 < float(out.parts["correction"]) < 5.0 * 0.1 * 0.1


@pytest.mark.parametrize("packed", [False, True], ids=["frames", "packed"])
def test_trains_from_landmark_sidecars(tmp_path: Path, packed: bool) -> None:
    root = write_square_clips(tmp_path / "faces", ("train",) * 2 + ("val",), 4)
    for split, clip in (("train", "clip0"), ("train", "clip1"), ("val", "clip2")):
        pixels = (face_points(4, seed=len(clip)).numpy() + 1) * (TINY_SIDE - 1) / 2 + 0.5
        np.save(root / split / f"{clip}{LANDMARKS_SUFFIX}", pixels.astype(np.float32))
    if packed:  # as carried to a training machine: mp4 clips, float16 sidecars
        root = pack_dataset(root, tmp_path / "packed", progress=False).output
    document = copy.deepcopy(TINY.to_yaml_dict())
    document["dataset_params"].update({"id_sampling": False})  # landmarks are switched on by the family
    document["train_params"] = {
        "num_epochs": 1,
        "num_repeats": 2,
        "batch_size": 2,
        "dataloader_workers": 0,
        "scales": [1, 0.5],
        "loss_weights": {"equivariance_value": 0, "equivariance_jacobian": 0},
        "log_every": 1,
        "seed": 0,
    }
    config = tmp_path / "lite.yaml"
    config.write_text(yaml.safe_dump(document))
    result = train(config, root, tmp_path / "run", progress=False)
    assert result.step == 2 and all(np.isfinite(v) for v in result.losses.values())


def test_animator_finds_the_source_face_and_tracks_the_driving_one(data_dir: Path) -> None:
    model = build_model(LiteConfig(image_size=128, motion_size=32, channels=(8, 16), motion_expansion=8))
    animator = Animator(model, device="cpu")
    photo = np.asarray(Image.open(REPO_ROOT / "assets" / "source-astronaut.jpg").convert("RGB"))
    face = photo[30:230, 130:330]  # the astronaut's face, roughly centred
    animator.set_source(face)
    blank = np.zeros_like(face)  # no face yet: the source comes back unmoved, and is no reference
    out = animator(np.stack([blank, face, face[:, ::-1]]))
    assert out.shape == (3, 128, 128, 3) and out.dtype == np.uint8
    with torch.inference_mode():
        unmoved = animator.to_uint8(model.generate(animator._source, animator._source.keypoints).prediction)[0]
    assert np.abs(out[0].astype(int) - unmoved).max() <= 1
    tracked = animator._tracker._last
    animator.set_reference(face[:, ::-1])  # found on its own: the clip's tracking goes on
    assert animator._reference is not None and animator._tracker._last is tracked
    animator.close()


def test_learned_keypoint_variant_trains_with_equivariance() -> None:
    config = LiteConfig(
        image_size=TINY_SIDE, motion_size=16, channels=(8, 16), motion_expansion=8, keypoints="learned", num_kp=5
    )
    assert config_from_dict(config.to_yaml_dict()) == config
    generator, _ = build_objectives(config, LossConfig(scales=(1, 0.5), equivariance_value=10))
    assert generator.model.keypoint_source.value == "learned" and "kp_detector" in generator.networks()
    source, driving = torch.rand(2, 3, TINY_SIDE, TINY_SIDE), torch.rand(2, 3, TINY_SIDE, TINY_SIDE)
    out = generator(source, driving)
    assert {"l1", "ms_ssim", "equivariance_value"} <= set(out.parts) and torch.isfinite(out.loss)
    model = build_model(config)
    with torch.no_grad():
        animator = Animator(model, device="cpu")  # no MediaPipe: the model finds its own keypoints
        animator.set_source(torch.rand(1, 3, TINY_SIDE, TINY_SIDE))
        assert animator.animate(torch.rand(2, 3, TINY_SIDE, TINY_SIDE)).prediction.shape == (2, 3, TINY_SIDE, TINY_SIDE)


def test_the_triangle_search_gives_the_same_numbers_in_any_chunk_size(monkeypatch: pytest.MonkeyPatch) -> None:
    from enliven.models.lite import motion

    generator = torch.Generator().manual_seed(3)
    points_source = torch.rand(2, 60, 2, generator=generator) * 2 - 1
    points_driving = points_source + 0.05 * torch.randn(2, 60, 2, generator=generator)
    triangles = torch.randint(0, 60, (2, 90, 3), generator=generator)
    grid = torch.rand(1, 300, 2, generator=generator) * 2 - 1
    monkeypatch.setattr(motion, "SEARCH_PAIRS", 10_000 * 90)
    whole = motion.piecewise_affine_flow(points_source, points_driving, triangles, grid)
    monkeypatch.setattr(motion, "SEARCH_PAIRS", 7 * 90)
    chunked = motion.piecewise_affine_flow(points_source, points_driving, triangles, grid)
    for a, b in zip(whole, chunked, strict=True):
        assert torch.equal(a, b)


def test_keep_freed_memory_is_set_once() -> None:
    import platform

    from enliven.inference.allocator import keep_freed_memory

    applies = keep_freed_memory()
    assert keep_freed_memory() is applies
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert applies
