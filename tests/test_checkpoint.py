"""Loading the authors' checkpoints and enliven releases, and refusing bad files with clear errors."""

from __future__ import annotations

import io
import re
import shutil
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from enliven.config import config_from_dict, load_model_config
from enliven.errors import CheckpointError, ConfigError
from enliven.weights.checkpoint import load_authors_checkpoint, load_release, read_torch_checkpoint, save_release
from enliven.weights.loader import load_model


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


class _Settings:  # a plain class, as training scripts pickle beside their weights
    pass


def _one_sentence(message: str) -> bool:
    return message.count(". ") == 0 and message.endswith(".")


def _saved(obj: object, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, **kwargs)
    return buffer.getvalue()


def _zip_of_text() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes/readme.txt", "not weights")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "kind", ["random-0", "random-1", "random-2", "random-3", "text", "zip-of-text", "safetensors", "plain-pickle"]
)
def test_bytes_that_are_no_checkpoint(tmp_path: Path, kind: str) -> None:
    # torch reports random bytes as a weights_only refusal ("Unsupported operand"), like a pickled class.
    content = {
        "text": b"this is not a checkpoint at all\n" * 10,
        "zip-of-text": _zip_of_text(),
        "safetensors": (Path(__file__).parents[1] / "src/enliven/weights/enliven-lite.safetensors").read_bytes()[:5000],
        "plain-pickle": b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s.",  # pickle.dumps({"a": 1}, protocol=2)
    }.get(kind) or np.random.default_rng(int(kind[-1])).bytes(5000)
    path = tmp_path / "model.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        read_torch_checkpoint(path)
    assert str(err.value) == (
        f"{path} is not a PyTorch checkpoint (neither the zip archive nor the pickle that torch.save writes); "
        "check the file."
    )


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_pickled_class_is_refused(tmp_path: Path, zip_format: bool) -> None:
    path = tmp_path / "with-settings.pth.tar"
    path.write_bytes(_saved({"generator": {}, "settings": _Settings()}, _use_new_zipfile_serialization=zip_format))
    with pytest.raises(CheckpointError) as err:
        load_authors_checkpoint(path)
    message = str(err.value)
    assert re.search(r"holds Python objects besides tensors \((tests\.)?test_checkpoint\._Settings\)", message)
    assert "could run code" in message and _one_sentence(message)


def test_pickled_call_is_refused_and_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    path.write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")  # os.system("touch ...")
    with pytest.raises(CheckpointError, match=r"holds Python objects besides tensors \(os\.system\)"):
        read_torch_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_cut_checkpoint_is_reported_truncated(tmp_path: Path, zip_format: bool) -> None:
    # Cut inside a pickled name (collections.OrderedDict, torch._utils._rebuild_tensor_v2), torch refuses the
    # partial name as an unsupported global: that is a truncated file, not one holding Python objects.
    data = _saved({"generator": OrderedDict(w=torch.zeros(8)), "epoch": 3}, _use_new_zipfile_serialization=zip_format)
    header = 64 if zip_format else 16  # shorter files do not show torch's header yet
    path = tmp_path / "cut.pth.tar"
    messages = set()
    for cut in range(header, len(data)):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError) as err:
            read_torch_checkpoint(path)
        messages.add(str(err.value))
    assert messages == {f"{path} is truncated or corrupt; download or copy it again."}


def test_newer_pickle_protocol_is_named(tmp_path: Path) -> None:
    path = tmp_path / "protocol4.pth"
    path.write_bytes(_saved({"generator": {"w": torch.zeros(2)}}, pickle_protocol=4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's warning about the protocol is left out: the error explains it
        with pytest.raises(CheckpointError, match="pickle protocol above 2") as err:
            read_torch_checkpoint(path)
    assert _one_sentence(str(err.value)) and "not a PyTorch checkpoint" not in str(err.value)


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
    from enliven.weights.presets import PRESETS

    return PRESETS["fomm-vox"].config
