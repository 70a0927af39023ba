"""``load_model``: a preset name or a file path in, a model ready for inference out."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from enliven.config import ModelConfig, config_from_dict, load_model_config
from enliven.errors import CheckpointError
from enliven.models.factory import build_model
from enliven.weights.checkpoint import LoadedModel, load_authors_checkpoint, load_release
from enliven.weights.presets import DEFAULT_MODEL, PRESETS, Content

# Words in an authors' checkpoint file name that mean the model does not animate faces.
_NON_FACE_WORDS = ("taichi", "mgif", "fashion", "bair", "ted")


def load_model(model: str | Path | None = None, config: str | Path | ModelConfig | None = None) -> LoadedModel:
    """Load a model by preset name (see ``enliven models``) or from a file.

    Args:
        model: a preset name, an authors' ``.pth.tar`` checkpoint, or an enliven ``.safetensors`` release;
            ``None`` for the default model.
        config: the YAML config (path or parsed) of an authors' checkpoint; detected when omitted.

    Returns:
        The model (eval mode, CPU) with its origin and metadata; ``metadata["content"]`` is ``face`` or ``other``.
    """
    spec = str(model) if model is not None else DEFAULT_MODEL
    cfg = load_model_config(config) if isinstance(config, (str, Path)) else config
    if spec in PRESETS:
        preset = PRESETS[spec]
        cfg = cfg or config_from_dict(preset.config, preset.family)
        weights = preset.weights_path()
        if weights is None:
            with torch.random.fork_rng():
                torch.manual_seed(0)
                loaded = LoadedModel(build_model(cfg), preset.name, {"untrained": "true"})
        elif not weights.is_file():
            raise CheckpointError(
                f"the weights of {preset.name} ({preset.weights}) are not in {weights.parent}; put the authors' "
                "checkpoint there (or set ENLIVEN_MODELS), or pass --model PATH."
            )
        elif preset.bundled:
            loaded = replace(load_release(weights), source=preset.name)
        else:
            loaded = load_authors_checkpoint(weights, cfg)
        return _with_content(loaded, preset.content)
    path = Path(spec).expanduser()
    if not path.exists():
        raise CheckpointError(
            f"--model {spec} is neither a file nor a known model name; run 'enliven models' to list the names."
        )
    if path.suffix == ".safetensors":
        loaded = load_release(path)
        return _with_content(loaded, loaded.metadata.get("content", "face"))  # type: ignore[arg-type]
    loaded = load_authors_checkpoint(path, cfg)
    is_face = not any(word in path.name.lower() for word in _NON_FACE_WORDS)
    return _with_content(loaded, "face" if is_face else "other")


def _with_content(loaded: LoadedModel, content: Content) -> LoadedModel:
    return replace(loaded, metadata={**loaded.metadata, "content": content})
