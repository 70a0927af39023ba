"""The ONNX export cache: a model is exported (and checked) once, into a folder keyed by everything the export
depends on, and opened from there afterwards."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from enliven import __version__
from enliven.export.exporter import DEFAULT_OPSET, export_onnx
from enliven.export.manifest import FORMAT_VERSION, MANIFEST_NAME, ExportError, require_package
from enliven.export.runtime import OnnxMotionModel
from enliven.models.base import MotionTransferModel
from enliven.weights import LoadedModel, load_model


def onnx_cache_dir() -> Path:
    """Where :func:`load_onnx_model` keeps exports (``$ENLIVEN_ONNX_CACHE`` or ``~/.cache/enliven/onnx``)."""
    env = os.environ.get("ENLIVEN_ONNX_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "enliven" / "onnx"


def model_hash(model: MotionTransferModel, opset: int = DEFAULT_OPSET) -> str:
    """A hex key of everything an export depends on: family, config, weights and buffers, opset and versions."""
    digest = hashlib.sha256()
    header = {
        "family": model.family,
        "config": model.config.to_yaml_dict(),  # type: ignore[attr-defined]
        "opset": opset,
        "enliven": __version__,
        "torch": torch.__version__,
        "format": FORMAT_VERSION,
    }
    digest.update(json.dumps(header, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()[:24]


def cached_onnx_model(
    model: MotionTransferModel,
    metadata: dict[str, str] | None = None,
    *,
    cache_dir: str | Path | None = None,
    threads: int | None = None,
) -> OnnxMotionModel:
    """The ONNX version of ``model``, exported (and checked) into the cache on first use."""
    folder = Path(cache_dir).expanduser() if cache_dir is not None else onnx_cache_dir()
    entry = folder / model_hash(model)
    if not (entry / MANIFEST_NAME).is_file():
        folder.mkdir(parents=True, exist_ok=True)
        try:
            export_onnx(model, entry, metadata=metadata)
        except ExportError:
            if not (entry / MANIFEST_NAME).is_file():  # another process may have exported it meanwhile
                raise
    return OnnxMotionModel(entry, threads=threads)


def load_onnx_model(
    model: str | Path | None = None,
    config: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    threads: int | None = None,
) -> LoadedModel:
    """:func:`~enliven.weights.loader.load_model` for the ONNX backend.

    Args:
        model: an export folder, or anything ``load_model`` takes (exported into the cache on first use).
        config: the YAML config of an authors' checkpoint (see ``load_model``).
        cache_dir: the export cache (default :func:`onnx_cache_dir`).
        threads: onnxruntime intra-op threads (default: ``torch.get_num_threads()``).

    Returns:
        The :class:`OnnxMotionModel` with the origin and metadata ``load_model`` gives.
    """
    if model is not None and (Path(model).expanduser() / MANIFEST_NAME).is_file():
        folder = Path(model).expanduser()
        onnx_model = OnnxMotionModel(folder, threads=threads)
        return LoadedModel(onnx_model, str(folder), dict(onnx_model.manifest.metadata))
    require_package("onnxruntime")  # fail before a long export when the runtime is missing
    loaded = load_model(model, config)
    onnx_model = cached_onnx_model(loaded.model, loaded.metadata, cache_dir=cache_dir, threads=threads)
    return LoadedModel(onnx_model, loaded.source, loaded.metadata)
