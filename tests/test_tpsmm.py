"""TPSMM: configs, checkpoint layout, faithfulness to the authors' code, and a tiny model end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from conftest import assert_reproduces_reference
from enliven.config.tpsmm import TPSMM_PRESETS, TpsmmConfig
from enliven.errors import ConfigError
from enliven.models.motion_transfer import movement_scale
from enliven.models.tpsmm import TpsmmModel, build_bg_predictor
from enliven.models.tpsmm.tps import sample
from enliven.types import Keypoints, MotionMode

ENTRIES = ("inpainting_network", "kp_detector", "dense_motion_network", "avd_network", "bg_predictor")


@pytest.fixture(scope="module")
def manifests(reference_dir: Path) -> dict:
    return json.loads((reference_dir / "state-dict-manifests.json").read_text())


@pytest.mark.parametrize("preset", sorted(TPSMM_PRESETS))
def test_official_configs_match_manifest(preset: str, manifests: dict) -> None:
    manifest = manifests[f"tpsmm/{preset}.yaml"]
    assert TPSMM_PRESETS[preset]["model_params"] == manifest["model_params"]
    config = TpsmmConfig.from_preset(preset)
    assert config.to_yaml_dict()["model_params"] == manifest["model_params"]
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = TpsmmModel(config)
        modules = {name: getattr(model, name) for name in TpsmmModel.checkpoint_entries}
        modules["bg_predictor"] = build_bg_predictor(config)
    assert set(modules) == set(ENTRIES)
    for name, module in modules.items():
        shapes = {key: list(value.shape) for key, value in module.state_dict().items()}
        assert shapes == manifest[name], name


def test_config_reads_authors_yaml_and_round_trips(reference_dir: Path) -> None:
    raw = yaml.safe_load((reference_dir / "tpsmm-tiny" / "config.yaml").read_text())
    config = TpsmmConfig.from_yaml_dict(raw)
    assert config.image_size == 256  # frame_shape is null there
    assert config.generator.block_expansion == 8 and config.dense_motion.num_blocks == 3
    assert TpsmmConfig.from_yaml_dict(config.to_yaml_dict()) == config
    ted = TpsmmConfig.from_preset("ted-384")
    assert ted.image_size == 384 and TpsmmConfig.from_yaml_dict(ted.to_yaml_dict()) == ted
    assert TpsmmConfig.from_preset("mgif-256").common.bg is False


@pytest.mark.parametrize(
    ("section", "key", "value", "needle"),
    [
        ("common_params", "num_tpss", 10, "num_tpss"),  # unknown key
        ("common_params", "num_tps", None, "num_tps"),  # missing key (None = delete)
        ("generator_params", "max_features", "512", "generator_params.max_features"),
        ("common_params", "bg", 1, "common_params.bg"),
        ("dense_motion_params", "scale_factor", 0.3, "scale_factor"),
        ("generator_params", "num_down_blocks", 4, "num_down_blocks"),
    ],
)
def test_config_errors_name_the_key(section: str, key: str, value: object, needle: str) -> None:
    data = TpsmmConfig().to_yaml_dict()
    if value is None:
        del data["model_params"][section][key]
    else:
        data["model_params"][section][key] = value
    with pytest.raises(ConfigError, match=needle):
        TpsmmConfig.from_yaml_dict(data)


def test_config_accepts_integer_scale_factor() -> None:
    data = TpsmmConfig().to_yaml_dict()
    data["model_params"]["dense_motion_params"].update(scale_factor=1, num_blocks=4)
    assert TpsmmConfig.from_yaml_dict(data).dense_motion.scale_factor == 1.0


# --- faithfulness to the authors' code ------------------------------------------------------------------------


def _images(paths: list[Path]) -> torch.Tensor:
    """Load RGB images the way the authors' demo lays them out: one ``1 x T x H x W x C`` float32 array, permuted
    to ``1 x C x T x H x W`` (so every frame sliced from it is a channels-last view).

    The layout matters: the convolutions round differently for other memory layouts (~2e-6 on the keypoints),
    which the TPS solve amplifies to ~3e-3 on output pixels (see :meth:`ThinPlateSpline.fit`).
    """
    import imageio.v3 as iio

    array = np.stack([iio.imread(path)[..., :3] for path in paths])[None].astype(np.float32) / 255
    return torch.from_numpy(array).permute(0, 4, 1, 2, 3)


@pytest.fixture(scope="module")
def tiny(reference_dir: Path):
    root = reference_dir / "tpsmm-tiny"
    model = TpsmmModel(TpsmmConfig.from_yaml_dict(yaml.safe_load((root / "config.yaml").read_text())))
    checkpoint = torch.load(root / "checkpoint.pth.tar", weights_only=True, map_location="cpu")
    for name in TpsmmModel.checkpoint_entries:
        getattr(model, name).load_state_dict(checkpoint[name], strict=True)
    source = _images([root / "source.png"])[:, :, 0]
    driving = _images(sorted((root / "driving").glob("*.png")))
    return model.eval(), source, driving, dict(np.load(root / "expected.npz"))


@torch.no_grad()
def test_faithful_to_authors(tiny) -> None:
    """Reproduce the authors' demo (``make_animation``): frame by frame, inputs laid out as there.

    Each TPS is an 8x8 solve with condition numbers up to ~3e3 on these keypoints (many saturate at the border),
    so a one-ulp change of a keypoint moves output pixels by up to ~3e-3. The 1e-3 budget therefore holds only
    for the authors' float32 operation sequence on the demo's inputs, on the CPU that made the vectors: the same
    memory layout (see :func:`_images`) and one frame per call (batched linear layers and convolutions round
    differently). On an AVX-512 Xeon even this model run in float64 (the exact maths, nearly) differs from the
    vectors by up to 1.0e-3 / 3.1e-3 / 7.3e-3 (means 0.8e-5 / 5.1e-5 / 1.1e-4; avd / standard / relative), and
    float32 by 1.1e-3 / 4.3e-3 / 7.3e-3 (means 1.1e-5 / 6.4e-5 / 1.4e-4; 1.6% of values beyond 1e-3 in the worst
    mode): the vectors carry float32 rounding of that size. The bounds below are that, with some room; the
    modes differ from each other by 0.01 to 0.27 on average, a hundred times the mean bound.
    """
    model, source, driving, expected = tiny
    encoding = model.encode_source(source)
    np.testing.assert_allclose(encoding.keypoints.value.numpy(), expected["kp_source_fg_kp"], atol=1e-4, rtol=0)
    frames = [model.detect_keypoints(driving[:, :, i]) for i in range(driving.shape[2])]
    kp_driving = torch.cat([kp.value for kp in frames])
    np.testing.assert_allclose(kp_driving.numpy(), expected["kp_driving_fg_kp"], atol=1e-4, rtol=0)
    batched = model.detect_keypoints(driving[0].transpose(0, 1)).value
    np.testing.assert_allclose(batched.numpy(), expected["kp_driving_fg_kp"], atol=1e-4, rtol=0)

    reference = frames[0]
    scale = movement_scale(encoding.keypoints, reference)
    names = {MotionMode.AVD: "avd", MotionMode.ABSOLUTE: "standard", MotionMode.RELATIVE: "relative"}
    for mode, name in names.items():
        predictions = [
            model.generate(encoding, model.transfer_motion(encoding.keypoints, kp, reference, mode, scale=scale))
            for kp in frames
        ]
        animation = torch.cat([out.prediction for out in predictions]).permute(0, 2, 3, 1).numpy()
        assert_reproduces_reference(
            animation, expected[f"animation_{name}"], max_error=1e-2, mean_error=2.5e-4, beyond_fraction=0.03
        )


@torch.no_grad()
def test_batched_generation_matches_frame_by_frame(tiny) -> None:
    model, source, driving, expected = tiny
    encoding = model.encode_source(source)
    kp = Keypoints(torch.from_numpy(expected["kp_driving_fg_kp"][1:3]))
    batched = model.generate(encoding, kp).prediction
    single = torch.cat([model.generate(encoding, kp.index(i)).prediction for i in range(2)])
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=0)


# --- tiny random model ------------------------------------------------------------------------------------------


def _tiny_config() -> TpsmmConfig:
    data = TpsmmConfig().to_yaml_dict()
    data["dataset_params"]["frame_shape"] = [64, 64, 3]
    params = data["model_params"]
    params["common_params"]["num_tps"] = 2
    params["generator_params"].update(block_expansion=4, max_features=16)
    params["dense_motion_params"].update(block_expansion=4, max_features=16, num_blocks=2)
    params["avd_network_params"].update(id_bottle_size=8, pose_bottle_size=8)
    return TpsmmConfig.from_yaml_dict(data)


def test_tiny_model_shapes_and_gradients() -> None:
    model = TpsmmModel(_tiny_config())
    source, driving = torch.rand(1, 3, 64, 64), torch.rand(3, 3, 64, 64)
    encoding = model.encode_source(source)
    kp_driving = model.detect_keypoints(driving)
    assert encoding.keypoints.value.shape == (1, 10, 2) and encoding.keypoints.jacobian is None
    assert [tuple(f.shape[2:]) for f in encoding.features] == [(64, 64), (32, 32), (16, 16), (8, 8)]

    loss = torch.zeros(())
    for mode in model.supported_modes:
        kp = model.transfer_motion(encoding.keypoints, kp_driving, kp_driving.index(0), mode, scale=0.9)
        out = model.generate(encoding, kp)
        assert out.prediction.shape == (3, 3, 64, 64) and out.deformed.shape == (3, 3, 64, 64)
        assert 0 <= out.prediction.min() and out.prediction.max() <= 1
        assert out.motion.deformation.shape == (3, 16, 16, 2) and out.motion.mask.shape == (3, 3, 16, 16)
        assert [tuple(o.shape) for o in out.motion.occlusion] == [(3, 1, s, s) for s in (8, 16, 32, 64)]
        loss = loss + out.prediction.mean()
    loss.backward()
    for name in TpsmmModel.checkpoint_entries:
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name


def test_training_paths_background_and_dropout() -> None:
    torch.manual_seed(0)
    model = TpsmmModel(_tiny_config()).eval()
    bg_predictor = build_bg_predictor(model.config)
    source, driving = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    bg_param = bg_predictor(source, driving)
    torch.testing.assert_close(bg_param, torch.eye(3).expand(2, 3, 3))  # starts at the identity
    with torch.no_grad():
        src = model.dense_motion_network.prepare_source(source, model.kp_detector(source))
        kp = model.kp_detector(driving)
        plain = model.dense_motion_network(src, kp)
        with_bg = model.dense_motion_network(src, kp, bg_param=bg_param)
        dropped = model.dense_motion_network(src, kp, dropout_p=0.5)
    torch.testing.assert_close(with_bg.deformation, plain.deformation)
    assert torch.all(dropped.mask.sum(1) <= 1 + 1e-5) and dropped.deformation.shape == plain.deformation.shape


@pytest.mark.parametrize("shared", [1, 2])
def test_sample_matches_grid_sample(shared: int) -> None:
    image, grid = torch.rand(shared, 3, 9, 7), torch.rand(2, 4, 5, 6, 2) * 2.2 - 1.1
    expected = F.grid_sample(
        image.expand(2, -1, -1, -1).repeat_interleave(4, 0), grid.reshape(8, 5, 6, 2), align_corners=True
    ).view(2, 4, 3, 5, 6)
    torch.testing.assert_close(sample(image, grid), expected)
    torch.testing.assert_close(sample(image, grid[:, 0]), expected[:, 0])
