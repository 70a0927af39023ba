"""FOMM family: config, checkpoint layout of every official config, and faithfulness to the authors' code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import assert_reproduces_reference, tiny_fomm_document
from enliven.config.fomm import FOMM_PRESETS
from enliven.errors import ConfigError
from enliven.models.fomm import (
    FommConfig,
    FommModel,
    FommSourceEncoding,
    build_discriminator,
    build_generator,
    build_kp_detector,
)
from enliven.models.motion_transfer import movement_scale
from enliven.types import Keypoints, MotionMode

PRESET_FILES = {name: f"fomm/{name}-256.yaml" for name in FOMM_PRESETS}


@pytest.fixture(scope="module")
def manifests(reference_dir: Path) -> dict:
    return json.loads((reference_dir / "state-dict-manifests.json").read_text())


# --- config -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FOMM_PRESETS))
def test_presets_equal_official_model_params_and_round_trip(name: str, manifests: dict) -> None:
    official = manifests[PRESET_FILES[name]]["model_params"]
    assert FOMM_PRESETS[name] == official
    config = FommConfig.from_yaml_dict({"model_params": official})
    assert config.to_yaml_dict()["model_params"] == official
    assert FommConfig.from_yaml_dict(config.to_yaml_dict()) == config
    assert FommConfig.from_preset(name) == config


def test_config_reads_image_size_and_defaults() -> None:
    data = {"model_params": FOMM_PRESETS["vox"], "dataset_params": {"frame_shape": [512, 512, 3]}}
    assert FommConfig.from_yaml_dict(data).image_size == 512
    config = FommConfig.from_yaml_dict({"model_params": FOMM_PRESETS["mgif"]})
    assert config.image_size == 256
    assert config.kp_detector.single_jacobian_map and config.kp_detector.pad == 0
    assert config.discriminator is not None and config.discriminator.sn and not config.discriminator.use_kp
    assert FommConfig.family == "fomm"


_DELETE = object()


def _with(params: dict, section: str, key: str, value: object) -> dict:
    out = json.loads(json.dumps(params))
    if value is _DELETE:
        del out[section][key]
    else:
        out[section][key] = value
    return {"model_params": out}


@pytest.mark.parametrize(
    ("section", "key", "value", "named"),
    [
        ("kp_detector_params", "bogus", 1, "kp_detector_params.bogus"),
        ("kp_detector_params", "temperature", _DELETE, "kp_detector_params.temperature"),
        ("kp_detector_params", "num_blocks", "five", "kp_detector_params.num_blocks"),
        ("kp_detector_params", "scale_factor", 2, "kp_detector_params.scale_factor"),
        ("common_params", "estimate_jacobian", "yes", "common_params.estimate_jacobian"),
        ("common_params", "num_kp", True, "common_params.num_kp"),
        ("generator_params", "dense_motion_params", _DELETE, "generator_params.dense_motion_params"),
        ("discriminator_params", "scales", [1, "a"], "discriminator_params.scales"),
    ],
)
def test_config_errors_name_the_key(section: str, key: str, value: object, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        FommConfig.from_yaml_dict(_with(FOMM_PRESETS["vox"], section, key, value))


def test_config_rejects_missing_model_params() -> None:
    with pytest.raises(ConfigError, match="model_params"):
        FommConfig.from_yaml_dict({"dataset_params": {}})
    no_disc = {k: v for k, v in FOMM_PRESETS["vox"].items() if k != "discriminator_params"}
    config = FommConfig.from_yaml_dict({"model_params": no_disc})
    assert config.discriminator is None
    with pytest.raises(ConfigError, match="discriminator_params"):
        build_discriminator(config)


# --- checkpoint layout ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FOMM_PRESETS))
def test_state_dicts_match_official_manifests(name: str, manifests: dict) -> None:
    manifest = manifests[PRESET_FILES[name]]
    config = FommConfig.from_yaml_dict({"model_params": manifest["model_params"]})
    with torch.device("meta"):  # shapes only: no memory, no random init cost
        modules = {
            "generator": build_generator(config),
            "kp_detector": build_kp_detector(config),
            "discriminator": build_discriminator(config),
        }
    for entry, module in modules.items():
        got = {key: list(value.shape) for key, value in module.state_dict().items()}
        assert got == manifest[entry], f"{name}: {entry} differs from the published layout"


# --- faithfulness to the authors' code (fomm-tiny reference vectors) -----------------------------------------------


def _load_image(path: Path) -> torch.Tensor:
    array = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


@pytest.fixture(scope="module")
def tiny(reference_dir: Path) -> dict:
    root = reference_dir / "fomm-tiny"
    config = FommConfig.from_yaml_dict(yaml.safe_load((root / "config.yaml").read_text()))
    checkpoint = torch.load(root / "checkpoint-full.pth.tar", weights_only=True, map_location="cpu")
    model = FommModel(config)
    model.kp_detector.load_state_dict(checkpoint["kp_detector"], strict=True)
    model.generator.load_state_dict(checkpoint["generator"], strict=True)
    model.eval()
    driving = torch.stack([_load_image(p) for p in sorted((root / "driving").glob("*.png"))])
    return {
        "root": root,
        "config": config,
        "checkpoint": checkpoint,
        "model": model,
        "source": _load_image(root / "source.png")[None],
        "driving": driving,
        "expected": dict(np.load(root / "expected.npz")),
    }


def _max_diff(actual: torch.Tensor, expected: np.ndarray) -> float:
    return float(np.abs(actual.detach().numpy() - expected).max())


@torch.no_grad()
def test_keypoints_match_reference(tiny: dict) -> None:
    model, exp = tiny["model"], tiny["expected"]
    kp_source = model.detect_keypoints(tiny["source"])
    kp_driving = model.detect_keypoints(tiny["driving"])
    assert _max_diff(kp_source.value, exp["kp_source_value"]) < 1e-4
    assert _max_diff(kp_source.jacobian, exp["kp_source_jacobian"]) < 1e-4
    assert _max_diff(kp_driving.value, exp["kp_driving_value"]) < 1e-4
    assert _max_diff(kp_driving.jacobian, exp["kp_driving_jacobian"]) < 1e-4


@torch.no_grad()
def test_single_prediction_matches_reference(tiny: dict) -> None:
    model, exp = tiny["model"], tiny["expected"]
    kp_driving = Keypoints(
        torch.from_numpy(exp["kp_driving_value"][3:4]), torch.from_numpy(exp["kp_driving_jacobian"][3:4])
    )
    out = model.generate(model.encode_source(tiny["source"]), kp_driving)
    assert_reproduces_reference(out.prediction.numpy(), exp["single_prediction_frame3"])
    assert _max_diff(out.motion.mask, exp["single_mask_frame3"]) < 1e-3
    assert _max_diff(out.motion.occlusion[0], exp["single_occlusion_frame3"]) < 1e-3


@torch.no_grad()
@pytest.mark.parametrize(
    ("name", "mode", "adapt"),
    [
        ("animation_relative_adapt", MotionMode.RELATIVE, True),
        ("animation_relative", MotionMode.RELATIVE, False),
        ("animation_absolute", MotionMode.ABSOLUTE, False),
    ],
)
def test_animation_modes_match_reference(tiny: dict, name: str, mode: MotionMode, adapt: bool) -> None:
    model = tiny["model"]
    encoding = model.encode_source(tiny["source"])
    assert isinstance(encoding, FommSourceEncoding)
    kp_driving = model.detect_keypoints(tiny["driving"])
    kp_reference = kp_driving.index(0)
    scale = movement_scale(encoding.keypoints, kp_reference) if adapt else 1.0
    kp_new = model.transfer_motion(encoding.keypoints, kp_driving, kp_reference, mode, scale=scale)
    frames = model.generate(encoding, kp_new).prediction.permute(0, 2, 3, 1)
    assert_reproduces_reference(frames.numpy(), tiny["expected"][name])  # an AVX2 CPU: 1 value of 1.57 M 1.1e-3 off


@torch.no_grad()
def test_stripped_checkpoint_and_discriminator_load(tiny: dict) -> None:
    stripped = torch.load(tiny["root"] / "checkpoint-stripped.pth.tar", weights_only=True, map_location="cpu")
    model = FommModel(tiny["config"])
    model.kp_detector.load_state_dict(stripped["kp_detector"], strict=True)
    model.generator.load_state_dict(stripped["generator"], strict=True)
    kp = model.eval().detect_keypoints(tiny["source"])
    assert _max_diff(kp.value, tiny["expected"]["kp_source_value"]) < 1e-4
    discriminator = build_discriminator(tiny["config"])
    discriminator.load_state_dict(tiny["checkpoint"]["discriminator"], strict=True)
    out = discriminator.eval()([tiny["source"]])
    assert out.prediction_maps[0].shape[:2] == (1, 1)


# --- a tiny random model ------------------------------------------------------------------------------------------


def _tiny_config(**kp_changes: object) -> FommConfig:
    discriminator = {
        "scales": [1, 0.5],
        "block_expansion": 8,
        "max_features": 32,
        "num_blocks": 2,
        "sn": True,
        "use_kp": True,
    }
    document = tiny_fomm_document(scale_factor=0.25, kp_detector=kp_changes, discriminator=discriminator)
    return FommConfig.from_yaml_dict(document)


@pytest.mark.parametrize("kp_changes", [{}, {"single_jacobian_map": True, "pad": 3}])
def test_tiny_model_shapes_and_batches(kp_changes: dict) -> None:
    model = FommModel(_tiny_config(**kp_changes)).eval()
    assert model.image_size == 64
    source, driving = torch.rand(1, 3, 64, 64), torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        encoding = model.encode_source(source)
        kp = model.detect_keypoints(driving)
        assert kp.value.shape == (3, 4, 2) and kp.jacobian is not None and kp.jacobian.shape == (3, 4, 2, 2)
        assert kp.value.abs().max() <= 1
        out = model.generate(encoding, kp, with_deformed=True)
        assert out.prediction.shape == (3, 3, 64, 64)
        assert 0 <= out.prediction.min() and out.prediction.max() <= 1
        assert out.deformed is not None and out.deformed.shape == (3, 3, 64, 64)
        assert out.motion.deformation.shape == (3, 16, 16, 2)
        assert out.motion.mask is not None and out.motion.mask.shape == (3, 5, 16, 16)
        assert out.motion.occlusion[0].shape == (3, 1, 16, 16)
        one_by_one = torch.cat([model.generate(encoding, kp.index(i)).prediction for i in range(3)])
        torch.testing.assert_close(out.prediction, one_by_one, atol=1e-5, rtol=0)


def test_tiny_model_without_jacobian_or_occlusion() -> None:
    data = _tiny_config().to_yaml_dict()
    data["model_params"]["common_params"]["estimate_jacobian"] = False
    data["model_params"]["generator_params"]["estimate_occlusion_map"] = False
    data["model_params"]["generator_params"]["dense_motion_params"]["scale_factor"] = 1
    model = FommModel(FommConfig.from_yaml_dict(data)).eval()
    with torch.no_grad():
        encoding = model.encode_source(torch.rand(1, 3, 64, 64))
        assert encoding.keypoints.jacobian is None
        out = model.generate(encoding, model.detect_keypoints(torch.rand(2, 3, 64, 64)))
    assert out.prediction.shape == (2, 3, 64, 64) and out.motion.occlusion == ()
    assert out.motion.deformation.shape == (2, 64, 64, 2)


def test_tiny_model_gradients_flow() -> None:
    config = _tiny_config()
    model = FommModel(config).train()
    source, driving = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    kp_source, kp_driving = model.kp_detector(source), model.kp_detector(driving)
    out = model.generator(source, kp_source, kp_driving)
    discriminator = build_discriminator(config)
    pyramid = [driving, torch.nn.functional.interpolate(out.prediction, scale_factor=0.5)]
    scores = discriminator(pyramid, kp=kp_driving.detach())
    assert [p.shape[1] for p in scores.prediction_maps] == [1, 1] and len(scores.feature_maps[0]) == 2
    loss = (out.prediction - driving).abs().mean() + sum(p.mean() for p in scores.prediction_maps)
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    assert model.kp_detector.kp.weight.grad.abs().sum() > 0
    assert model.generator.dense_motion_network.hourglass.encoder.down_blocks[0].conv.weight.grad.abs().sum() > 0
