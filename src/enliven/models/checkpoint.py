"""Reading and writing model weights.

Two formats are read:

* the authors' FOMM/TPSMM checkpoints (``*.pth.tar``), full training files or stripped copies, loaded with
  ``torch.load(weights_only=True)`` so that no pickled code runs. Entries inference does not use
  (discriminator, optimisers, ``bg_predictor``, ``epoch``) are ignored. The family is detected from the entry
  names; the config is given, or found among the published configs whose tensor shapes match.
* enliven's release format: one safetensors file holding the weights, the resolved config and metadata.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from enliven.config import ModelConfig, config_from_dict
from enliven.errors import CheckpointError, ConfigError
from enliven.io.atomic import atomic_output
from enliven.models.base import MotionTransferModel
from enliven.models.factory import build_model

RELEASE_FORMAT = "enliven-release"
RELEASE_VERSION = "1"

# Checkpoint entries that inference loads, per family (names as in the authors' files).
INFERENCE_ENTRIES: dict[str, tuple[str, ...]] = {
    "fomm": ("kp_detector", "generator"),
    "tpsmm": ("kp_detector", "dense_motion_network", "inpainting_network", "avd_network"),
}


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference, with where it came from.

    Attributes:
        model: the model, in eval mode, on the CPU.
        source: the file it was read from, or the preset name for untrained models.
        metadata: release metadata (model card, training data, ...); empty for the authors' files.
    """

    model: MotionTransferModel
    source: str
    metadata: dict[str, str] = field(default_factory=dict)


def detect_checkpoint_family(entries: Mapping[str, Any]) -> str:
    """Tell FOMM from TPSMM by the checkpoint's entry names."""
    if "inpainting_network" in entries:
        return "tpsmm"
    if "generator" in entries and "kp_detector" in entries:
        return "fomm"
    names = ", ".join(sorted(map(str, entries))[:6]) or "nothing"
    raise CheckpointError(
        f"the checkpoint holds {names}, not the entries of a FOMM (generator, kp_detector) or TPSMM "
        "(inpainting_network, kp_detector, dense_motion_network) model; pass a checkpoint of one of them."
    )


def read_torch_checkpoint(path: Path) -> dict[str, Any]:
    """``torch.load`` a checkpoint safely (``weights_only=True``) and turn every failure into a clear error."""
    _check_file(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            raise CheckpointError(
                f"{path} holds Python objects besides tensors, and loading them could run code; "
                "re-save it with only state_dicts or use a trusted copy."
            ) from None
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (unpickling failed); check the file.") from None
    except Exception as err:  # noqa: BLE001 - torch.load fails on damaged bytes with many exception types
        message = str(err)
        truncated = isinstance(err, EOFError) or any(
            hint in message for hint in ("central directory", "truncated", "unexpected EOF", "Ran out of input")
        )
        if truncated:
            raise CheckpointError(f"{path} is truncated or corrupt; download or copy it again.") from None
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (it could not be read); check the file.") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, not a checkpoint dictionary of state_dicts.")
    return data


def _check_file(path: Path) -> None:
    if not path.exists():
        raise CheckpointError(f"the model file {path} does not exist; check the --model path.")
    if not path.is_file():
        raise CheckpointError(f"the model path {path} is not a file; pass a checkpoint file.")
    if path.stat().st_size == 0:
        raise CheckpointError(f"the model file {path} is empty; download or copy it again.")


def _strip_parallel_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix that ``DataParallel`` adds, as many circulating copies have it."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


def _shape_mismatches(module: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    expected = module.state_dict()
    problems = [f"missing {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    problems += [
        f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    return problems


def _entries_match(model: MotionTransferModel, entries: Mapping[str, Mapping[str, torch.Tensor]]) -> list[str]:
    problems: list[str] = []
    for name in INFERENCE_ENTRIES[model.family]:
        if name not in entries:
            problems.append(f"entry {name} is missing")
            continue
        problems += [f"{name}: {p}" for p in _shape_mismatches(getattr(model, name), entries[name])]
    return problems


def _config_candidates(family: str) -> list[tuple[str, dict[str, Any]]]:
    from enliven.models.presets import PRESETS

    return [(p.name, p.config) for p in PRESETS.values() if p.family == family and p.weights is not None]


def load_authors_checkpoint(path: str | Path, config: ModelConfig | None = None) -> LoadedModel:
    """Load an authors' FOMM/TPSMM checkpoint (full or stripped) for inference.

    Args:
        path: the ``.pth.tar`` file.
        config: the model's config; when ``None``, the published configs of the detected family are tried and
            the first whose tensor shapes match is used.

    Raises:
        CheckpointError: unreadable, truncated or unsafe file, unknown layout, or weights that do not match.
    """
    path = Path(path)
    data = read_torch_checkpoint(path)
    family = detect_checkpoint_family(data)
    entries = {
        name: _strip_parallel_prefix(data[name])
        for name in INFERENCE_ENTRIES[family]
        if isinstance(data.get(name), Mapping)
    }
    if config is not None:
        if config.family != family:
            raise CheckpointError(
                f"{path} is a {family.upper()} checkpoint but the config describes a {config.family.upper()} model; "
                "pass the config it was trained with."
            )
        model = build_model(config)
        problems = _entries_match(model, entries)
        if problems:
            raise CheckpointError(
                f"{path} does not match its config ({len(problems)} differences, e.g. {problems[0]}); "
                "pass the YAML config the checkpoint was trained with."
            )
    else:
        model = _model_for_entries(path, family, entries)
    for name, state in entries.items():
        getattr(model, name).load_state_dict(state, strict=True)
    return LoadedModel(model.eval(), str(path))


def _model_for_entries(path: Path, family: str, entries: Mapping[str, Mapping[str, torch.Tensor]]) -> Any:
    for _, candidate in _config_candidates(family):
        model = build_model(config_from_dict(candidate, family))
        if not _entries_match(model, entries):
            return model
    raise CheckpointError(
        f"{path} is a {family.upper()} checkpoint whose tensors match none of the published configs; "
        "pass its YAML config with --config."
    )


def save_release(model: MotionTransferModel, path: str | Path, metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``model`` in enliven's release format (one safetensors file: weights + config + metadata), atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    header = {
        "format": RELEASE_FORMAT,
        "format_version": RELEASE_VERSION,
        "family": model.family,
        "config": json.dumps(model.config.to_yaml_dict()),  # type: ignore[attr-defined]
    }
    header.update({k: str(v) for k, v in (metadata or {}).items()})
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_output(path) as tmp:  # a plain new file: the usual permissions, unlike mkstemp's 0600
        save_file(tensors, str(tmp), metadata=header)
    return path


def load_release(path: str | Path) -> LoadedModel:
    """Load a model written by :func:`save_release`."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    _check_file(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file ({err}); copy it again.") from None
    if metadata.get("format") != RELEASE_FORMAT:
        raise CheckpointError(f"{path} is a safetensors file but not an enliven release (no '{RELEASE_FORMAT}' tag).")
    try:
        config = config_from_dict(json.loads(metadata["config"]), metadata.get("family"))
    except (KeyError, json.JSONDecodeError, ConfigError) as err:
        raise CheckpointError(f"{path} has no valid config in its metadata ({err}).") from None
    model = build_model(config)
    problems = _shape_mismatches(model, tensors)
    if problems:
        raise CheckpointError(
            f"{path} does not match its own config ({problems[0]}): the file is damaged, or was written by an "
            "enliven version whose architecture differs (earlier enliven-lite releases); retrain or release it "
            "again with this version."
        )
    model.load_state_dict(tensors, strict=True)
    extra = {k: v for k, v in metadata.items() if k not in ("config", "format", "format_version", "family")}
    return LoadedModel(model.eval(), str(path), extra)
