"""Loading the authors' checkpoints and enliven releases, and refusing bad files with clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from enliven.config import config_from_dict, load_model_config
from enliven.errors import CheckpointError, ConfigError
from enliven.models.checkpoint import load_authors_checkpoint, load_release, save_release
from enliven.models.loader import load_model


@pytest.fixture(scope="module")
def fomm_dir(reference_dir: Path) -> Path:
    return reference_dir / "fomm-tiny"


@pytest.mark.parametrize("name", ["checkpoint-full.pth.tar", "checkpoint-stripped.pth.tar"])
def test_fomm_checkpoint_loads_with_its_config(fomm_dir: Path, name: str) -> None:
    config = load_model_config(fomm_dir / "config.yaml")
    loaded = load_authors_checkpoint(fomm_dir / name, config)
    assert loaded.model.family == "fomm"
    reference = torch.load(fomm_dir / name, map_location="cpu", weights_only=True)
    for key, value in reference["kp_detector"].items():
        assert torch.equal(loaded.model.kp_detector.state_dict()[key], value)


def test_tpsmm_checkpoint_loads_and_ignores_unused_entries(reference_dir: Path) -> None:
    folder = reference_dir / "tpsmm-tiny"
    loaded = load_model(folder / "checkpoint.pth.tar", folder / "config.yaml")
    assert loaded.model.family == "tpsmm"
    assert loaded.model.kp_detector.fg_encoder.conv1.weight.dtype == torch.float32


def test_config_is_required_when_no_published_config_matches(fomm_dir: Path) -> None:
    with pytest.raises(CheckpointError, match="--config"):
        load_authors_checkpoint(fomm_dir / "checkpoint-stripped.pth.tar")


def test_checkpoint_that_does_not_match_its_config(fomm_dir: Path) -> None:
    with pytest.raises(CheckpointError, match="does not match its config"):
        load_authors_checkpoint(fomm_dir / "checkpoint-stripped.pth.tar", config_from_dict(_vox_config()))


def test_tpsmm_file_with_fomm_config_is_refused(reference_dir: Path, fomm_dir: Path) -> None:
    config = load_model_config(fomm_dir / "config.yaml")
    with pytest.raises(CheckpointError, match="TPSMM checkpoint but the config describes a FOMM"):
        load_authors_checkpoint(reference_dir / "tpsmm-tiny" / "checkpoint.pth.tar", config)


def test_truncated_checkpoint(fomm_dir: Path, tmp_path: Path) -> None:
    data = (fomm_dir / "checkpoint-stripped.pth.tar").read_bytes()
    broken = tmp_path / "broken.pth.tar"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_authors_checkpoint(broken)


@pytest.mark.parametrize("content", [b"", b"this is not a checkpoint at all\n" * 10])
def test_not_a_checkpoint(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.pth.tar"
    path.write_bytes(content)
    with pytest.raises(CheckpointError):
        load_authors_checkpoint(path)


class _Evil:
    def __reduce__(self):  # pragma: no cover - must never run
        return (print, ("pickle code ran",))


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth.tar"
    torch.save({"generator": {}, "kp_detector": {}, "payload": _Evil()}, path)
    with pytest.raises(CheckpointError, match="could run code"):
        load_authors_checkpoint(path)


def test_unknown_layout(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"model": {"w": torch.zeros(1)}}, path)
    with pytest.raises(CheckpointError, match="not the entries"):
        load_authors_checkpoint(path)


def test_missing_model_file_and_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="neither a file nor a known model name"):
        load_model(str(tmp_path / "nope.pth.tar"))


def test_preset_without_installed_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENLIVEN_MODELS", str(tmp_path))
    with pytest.raises(CheckpointError, match="vox-cpk.pth.tar"):
        load_model("fomm-vox")


def test_preset_weights_found_in_models_dir(fomm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENLIVEN_MODELS", str(tmp_path))
    shutil.copy(fomm_dir / "checkpoint-full.pth.tar", tmp_path / "vox-cpk.pth.tar")
    # The tiny weights do not fit the vox architecture: the error names the mismatch.
    with pytest.raises(CheckpointError, match="does not match"):
        load_model("fomm-vox")


def test_release_round_trip(fomm_dir: Path, tmp_path: Path) -> None:
    loaded = load_model(fomm_dir / "checkpoint-full.pth.tar", fomm_dir / "config.yaml")
    path = save_release(loaded.model, tmp_path / "model.safetensors", {"model_card": "tiny test model"})
    again = load_release(path)
    assert again.metadata["model_card"] == "tiny test model"
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[key], value)
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temporary file left


def test_safetensors_that_is_not_a_release(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="not an enliven release"):
        load_release(path)


def test_bad_yaml_config(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("model_params: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_model_config(path)
    path.write_text("model_params:\n  common_params: {num_channels: 3}\n")
    with pytest.raises(ConfigError, match="cannot tell the model family"):
        load_model_config(path)


def _vox_config() -> dict:
    from enliven.models.presets import PRESETS

    return PRESETS["fomm-vox"].config
