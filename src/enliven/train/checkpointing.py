"""Training checkpoints (resumable runs) and the release of a run as an inference file.

A run folder holds::

    RUN_DIR/config.yaml                       the resolved training config
    RUN_DIR/data.json                         what the training data was (sources, licences, clip counts)
    RUN_DIR/checkpoints/step-000001000.pt     the last ``keep_last`` checkpoints
    RUN_DIR/tensorboard/                      TensorBoard event files

A checkpoint is a ``torch.save`` dict that ``torch.load(weights_only=True)`` reads: state_dicts, numbers, strings
(configs as YAML text) and tensors (RNG states); see :func:`capture_rng`. It is written to a temporary file and
renamed, so a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from enliven.config import config_from_dict
from enliven.errors import CheckpointError, InputError, OutputError
from enliven.io.atomic import temp_path_beside

CHECKPOINT_FORMAT = "enliven-train"
CHECKPOINT_VERSION = 1
CHECKPOINT_DIR = "checkpoints"
CONFIG_FILE = "config.yaml"
DATA_FILE = "data.json"
_NAME = re.compile(r"^step-(\d+)\.pt$")


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step-{step:09d}.pt"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """The run's checkpoints, oldest (fewest steps) first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def save_checkpoint(state: Mapping[str, Any], run_dir: Path, step: int, keep_last: int) -> Path:
    """Write ``state`` as the checkpoint of ``step`` (atomically), then delete all but the newest ``keep_last``."""
    path = checkpoint_path(run_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_beside(path)
    try:
        torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    for old in list_checkpoints(run_dir)[:-keep_last]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a training checkpoint safely (``weights_only=True``).

    Raises:
        CheckpointError: the file is missing, unreadable, or not an enliven training checkpoint.
    """
    from enliven.weights.checkpoint import read_torch_checkpoint

    data = read_torch_checkpoint(Path(path))
    if data.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an enliven training checkpoint; pass a file from RUN_DIR/checkpoints.")
    if data.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} is a version {data.get('version')} training checkpoint; this enliven reads {CHECKPOINT_VERSION}."
        )
    return data


def capture_rng(device: torch.device) -> dict[str, Any]:
    """The state of every random generator training draws from (python, numpy, torch, CUDA), as tensors."""
    version, mt_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": torch.tensor([version, *mt_state], dtype=torch.int64),
        "python_gauss": torch.tensor([] if gauss is None else [gauss], dtype=torch.float64),
        "numpy": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "numpy_extra": torch.tensor([pos, has_gauss, cached], dtype=torch.float64),
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    del kind
    return state


def warm_start(model: torch.nn.Module, weights: str) -> list[str]:
    """Copy into ``model`` every tensor of a released model (a preset name such as ``enliven-lite``, or a weights
    file, loaded with ``weights_only``) whose name and shape match: a new architecture starts from the parts it
    shares with an old one. Returns the names copied.

    Raises:
        CheckpointError: the weights cannot be loaded, or not one tensor fits ``model``.
    """
    from enliven.weights import load_model

    try:
        source = load_model(weights).model.state_dict()
    except Exception as err:  # noqa: BLE001 - any loading failure is the config's init_from
        raise CheckpointError(
            f"train_params.init_from {weights!r} could not be loaded ({err}); fix the name or path."
        ) from err
    own = model.state_dict()
    matched = {name: value for name, value in source.items() if name in own and own[name].shape == value.shape}
    if not matched:
        raise CheckpointError(
            f"train_params.init_from {weights!r} shares no tensor with this model; start without init_from."
        )
    model.load_state_dict(matched, strict=False)
    return sorted(matched)


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators (torch seeds CUDA's too)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def restore_rng(state: Mapping[str, Any], device: torch.device) -> None:
    """Put back the generators saved by :func:`capture_rng`."""
    values = state["python"].tolist()
    gauss = state["python_gauss"].tolist()
    random.setstate((values[0], tuple(values[1:]), gauss[0] if gauss else None))
    pos, has_gauss, cached = state["numpy_extra"].tolist()
    keys = state["numpy"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def describe_dataset(root: Path, split: str = "train") -> dict[str, Any]:
    """What a dataset is, from its ``metadata.json``: kind, clip counts per split, and the sources (with their
    licences and clip counts) of the clips of ``split``, the one trained on."""
    info: dict[str, Any] = {"name": Path(root).name, "kind": None, "split": split, "splits": {}, "sources": {}}
    path = Path(root) / "metadata.json"
    if not path.is_file():
        return info
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path} is not readable JSON ({err}); fix or delete it.") from None
    info["kind"] = meta.get("kind")
    for clip in (meta.get("clips") or {}).values():
        if not isinstance(clip, Mapping):
            continue
        clip_split = str(clip.get("split", "?"))
        info["splits"][clip_split] = info["splits"].get(clip_split, 0) + 1
        if clip_split != split:
            continue
        source = str(clip.get("source", "unknown"))
        entry = info["sources"].setdefault(source, {"license": str(clip.get("license", "unknown")), "clips": 0})
        entry["clips"] += 1
    return info


def model_card(config_yaml: str, data: Mapping[str, Any], step: int, epoch: int, ema: bool) -> str:
    """A markdown model card: family, config summary, training data (sources and licences), steps, date."""
    document = yaml.safe_load(config_yaml)
    model = config_from_dict(document)
    train = document.get("train_params") or {}
    weights = f"EMA of the generator-side model (decay {train.get('ema_decay')})" if ema else "raw (not EMA)"
    lines = [
        f"# enliven {model.family.upper()} model",
        "",
        f"- Family: {model.family}",
        f"- Image size: {model.image_size} x {model.image_size}",
        f"- Trained: {step} steps ({epoch} epochs), batch size {train.get('batch_size')}, "
        f"generator learning rate {train.get('lr_generator')}",
        f"- Weights: {weights}",
        f"- Released: {_dt.datetime.now(_dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        "## Training data",
        "",
        f"Dataset `{data.get('name')}` (kind: {data.get('kind') or 'unknown'}); clips per split: "
        + (", ".join(f"{k} {v}" for k, v in sorted(data.get("splits", {}).items())) or "unknown"),
        "",
    ]
    sources = data.get("sources") or {}
    if sources:
        lines += [f"Sources of the {data.get('split')} clips:", "", "| source | licence | clips |", "|---|---|---|"]
        lines += [f"| {name} | {s['license']} | {s['clips']} |" for name, s in sorted(sources.items())]
        lines += ["", "Check each source's licence before using this model beyond research."]
    else:
        lines.append("The dataset has no metadata.json: sources and licences are unknown.")
    lines += ["", "## Architecture", "", "```yaml", yaml.safe_dump(document["model_params"], sort_keys=False).rstrip()]
    lines += ["```", ""]
    return "\n".join(lines)


def release_run(
    run_dir: Path, output: Path, checkpoint: Path | None = None, use_ema: bool = True
) -> tuple[Path, dict[str, str]]:
    """Write a run's model as an enliven release (``.safetensors``) that ``enliven animate --model`` loads.

    Args:
        run_dir: the training run folder.
        output: the ``.safetensors`` file to write.
        checkpoint: the checkpoint to release; the run's latest by default.
        use_ema: release the EMA weights (default) rather than the raw ones.

    Returns:
        The written path and the metadata stored in it.
    """
    from enliven.models.base import KeypointSource
    from enliven.models.factory import build_model
    from enliven.weights.checkpoint import save_release

    run_dir = Path(run_dir)
    if checkpoint is None:
        if not run_dir.is_dir():
            raise InputError(f"the run folder {run_dir} does not exist; pass the --out folder of 'enliven train'.")
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is None:
            raise InputError(f"{run_dir} holds no checkpoints; train first or pass --checkpoint.")
    if Path(output).suffix != ".safetensors":
        raise InputError(f"the release file must end in .safetensors, got {output}; change -o.")
    if not Path(output).resolve().parent.is_dir():
        raise OutputError(f"the folder of {output} does not exist; create it or change -o.")
    state = load_checkpoint(checkpoint)
    model = build_model(config_from_dict(yaml.safe_load(state["config"])))
    if use_ema:
        weights = state["ema"]
    else:
        prefix = "model."
        weights = {k[len(prefix) :]: v for k, v in state["generator_objective"].items() if k.startswith(prefix)}
    model.load_state_dict(weights, strict=True)
    data = json.loads(state.get("data", "{}"))
    metadata = {
        "model_card": model_card(state["config"], data, int(state["step"]), int(state["epoch"]), use_ema),
        "training_steps": str(int(state["step"])),
        "training_data": json.dumps(data),
        "training_config": state["config"],
        "weights": "ema" if use_ema else "raw",
    }
    if model.keypoint_source is KeypointSource.POSE:  # crops around the person, as its training clips
        metadata["content"] = "body"
    elif data.get("kind"):
        metadata["content"] = "face" if str(data["kind"]).startswith("face") else "other"
    return save_release(model, Path(output), metadata), metadata
