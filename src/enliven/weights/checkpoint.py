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
import re
import tarfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from enliven.config import ModelConfig, config_from_dict
from enliven.errors import CheckpointError, ConfigError
from enliven.families import family_of_checkpoint, get_family
from enliven.io.atomic import atomic_output
from enliven.models.base import MotionTransferModel
from enliven.models.factory import build_model

RELEASE_FORMAT = "enliven-release"
RELEASE_VERSION = "1"


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
    """The name of the family whose authors' checkpoints hold these entries (see
    :func:`enliven.families.family_of_checkpoint`)."""
    return family_of_checkpoint(entries).name


#: The name in torch's refusal of a pickled global: "Unsupported global: GLOBAL argparse.Namespace was not an
#: allowed global by default" or "Trying to load unsupported GLOBAL os.system whose module os is blocked".
_REFUSED_GLOBAL = re.compile(r"GLOBAL (\S*) (?:was not an allowed global|whose module)")
_GLOBAL_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")  # builtins come without a module: "print"
#: ``torch.save``'s legacy (non-zip) files start with a pickle of this number.
_LEGACY_MAGIC = torch.serialization.MAGIC_NUMBER.to_bytes(10, "little")
#: Size of a zip local file header before the entry's name.
_ZIP_HEADER_SIZE = 30


def read_torch_checkpoint(path: Path) -> dict[str, Any]:
    """``torch.load`` a checkpoint safely (``weights_only=True``) and turn every failure into a clear error.

    torch raises :class:`pickle.UnpicklingError` for a pickled global it refuses and for bytes it cannot parse
    alike, so the refused global's name, the file's tail and its header tell a file holding Python objects from a
    truncated file and from one that is no checkpoint at all.
    """
    _check_file(path)
    try:
        with warnings.catch_warnings():
            # Said before failing on a newer protocol's opcode, which the error below explains.
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch.load fails on damaged bytes with many exception types
        raise _load_error(path, err) from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, not a checkpoint dictionary of state_dicts.")
    return data


def _load_error(path: Path, err: Exception) -> CheckpointError:
    """The error to report when ``torch.load(path, weights_only=True)`` raised ``err``."""
    message = str(err)
    refused = _REFUSED_GLOBAL.search(message) if isinstance(err, pickle.UnpicklingError) else None
    if refused and _GLOBAL_NAME.fullmatch(refused.group(1)) and not _ends_with_name(path, refused.group(1)):
        return CheckpointError(
            f"{path} holds Python objects besides tensors ({refused.group(1)}), and loading them could run code; "
            "re-save it with only state_dicts or use a trusted copy."
        )
    if not _has_torch_header(path):
        return CheckpointError(
            f"{path} is not a PyTorch checkpoint (neither the zip archive nor the pickle that torch.save writes); "
            "check the file."
        )
    operand = re.search(r"Unsupported operand (\d+)", message)
    if operand and not refused:
        # torch.save's pickle protocol 2 has no such opcode: a newer protocol (torch.save(pickle_protocol=4))
        # or damaged bytes.
        return CheckpointError(
            f"{path} is a PyTorch file that the safe loader cannot read (pickle opcode {operand.group(1)}: saved "
            "with a pickle protocol above 2, or damaged); re-save it with torch.save's default protocol."
        )
    return CheckpointError(f"{path} is truncated or corrupt; download or copy it again.")


def _ends_with_name(path: Path, name: str) -> bool:
    """Whether the file ends inside the pickled global ``name`` (``module\\nqualname\\n``, cut short): then torch's
    refusal is of a truncated file, not of a real global (a pickle goes on past every global it holds).

    torch drops the last character of each line it reads as the newline, so a cut-off ``name`` lacks one more.
    """
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - len(name.encode()) - 3))
        tail = handle.read().rstrip(b"\n").replace(b"\n", b".")
    stem = name.rstrip(".").encode()
    return tail.endswith(stem) or tail[:-1].endswith(stem)


def _has_torch_header(path: Path) -> bool:
    """Whether the file starts as ``torch.save`` output does: a zip archive whose first entry is ``*/data.pkl``
    (read from the first local header, which a cut-off archive still has), the legacy format's magic number, or
    the tar archive of torch before 0.4."""
    with path.open("rb") as handle:
        head = handle.read(_ZIP_HEADER_SIZE + 256)
    if head.startswith(b"PK\x03\x04"):
        name_size = int.from_bytes(head[26:28], "little")
        return head[_ZIP_HEADER_SIZE : _ZIP_HEADER_SIZE + name_size].endswith(b"/data.pkl")
    return _LEGACY_MAGIC in head[:64] or tarfile.is_tarfile(path)


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
    for name in get_family(model.family).checkpoint_entries:
        if name not in entries:
            problems.append(f"entry {name} is missing")
            continue
        problems += [f"{name}: {p}" for p in _shape_mismatches(getattr(model, name), entries[name])]
    return problems


def _config_candidates(family: str) -> list[tuple[str, dict[str, Any]]]:
    from enliven.weights.presets import PRESETS

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
        for name in get_family(family).checkpoint_entries
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
