"""Model weights: named presets, the authors' checkpoints, enliven's release files and where they are found.

Everything here reads files or the environment (``ENLIVEN_MODELS``); :mod:`enliven.models` holds the pure
modules. The package's own trained weights (``enliven-lite.safetensors``, ``enliven-lite-2.safetensors`` and their
model cards) live in this folder.

    >>> loaded = load_model("enliven-lite")           # doctest: +SKIP
    >>> loaded.model, loaded.metadata["content"]
"""

from __future__ import annotations

from enliven.weights.checkpoint import (
    LoadedModel,
    detect_checkpoint_family,
    load_authors_checkpoint,
    load_release,
    read_torch_checkpoint,
    save_release,
)
from enliven.weights.loader import load_model
from enliven.weights.presets import DEFAULT_MODEL, PRESETS, Content, Preset, bundled_weights_dir, models_dir

__all__ = [
    "DEFAULT_MODEL",
    "PRESETS",
    "Content",
    "LoadedModel",
    "Preset",
    "bundled_weights_dir",
    "detect_checkpoint_family",
    "load_authors_checkpoint",
    "load_model",
    "load_release",
    "models_dir",
    "read_torch_checkpoint",
    "save_release",
]
