"""The export cache: a model is exported (and checked) once per format and quantisation, into a folder keyed by
everything the export depends on, and opened from there afterwards."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from enliven import __version__
from enliven.export.exporter import DEFAULT_OPSET, export_onnx
from enliven.export.manifest import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    ExportError,
    Manifest,
    is_export_folder,
    require_package,
)
from enliven.export.runtime import ExportedMotionModel, OnnxMotionModel, open_export
from enliven.models.base import MotionTransferModel
from enliven.weights import LoadedModel, load_model

#: The package that runs each format's exports.
RUNTIME_PACKAGES = {"onnx": "onnxruntime", "tflite": "ai_edge_litert", "tensorflow": "tensorflow"}


def onnx_cache_dir() -> Path:
    """Where :func:`load_onnx_model` keeps exports (``$ENLIVEN_ONNX_CACHE`` or ``~/.cache/enliven/onnx``)."""
    return export_cache_dir("onnx")


def export_cache_dir(export_format: str) -> Path:
    """Where exports of a format are cached: ``$ENLIVEN_ONNX_CACHE`` for ONNX, ``$ENLIVEN_EXPORT_CACHE/FORMAT``
    for the others, else ``~/.cache/enliven/FORMAT``."""
    env = os.environ.get("ENLIVEN_ONNX_CACHE") if export_format == "onnx" else None
    if env:
        return Path(env).expanduser()
    root = os.environ.get("ENLIVEN_EXPORT_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "enliven") / export_format


def model_hash(
    model: MotionTransferModel, opset: int = DEFAULT_OPSET, export_format: str = "onnx", quantization: str = "float32"
) -> str:
    """A hex key of everything an export depends on: family, config, weights and buffers, format, opset or
    quantisation, and versions."""
    digest = hashlib.sha256()
    header = {
        "family": model.family,
        "config": model.config.to_yaml_dict(),  # type: ignore[attr-defined]
        "opset": opset,
        "enliven": __version__,
        "torch": torch.__version__,
        "format": FORMAT_VERSION,
    }
    if export_format != "onnx":  # ONNX keys stay as they were
        header.update(export_format=export_format, quantization=quantization, opset=None)
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
    exported = cached_export(model, metadata, export_format="onnx", cache_dir=cache_dir, threads=threads)
    assert isinstance(exported, OnnxMotionModel)
    return exported


def cached_export(
    model: MotionTransferModel,
    metadata: dict[str, str] | None = None,
    *,
    export_format: str = "onnx",
    quantization: str = "float32",
    cache_dir: str | Path | None = None,
    threads: int | None = None,
) -> ExportedMotionModel:
    """``model`` exported to ``export_format`` (``onnx``, ``tflite``, ``tensorflow``) and opened with its runtime,
    exported (and checked) into the cache on first use; quantised LiteRT exports calibrate on the bundled example
    clip (``enliven export --format tflite --quantize int8 --calibration ...`` chooses other frames)."""
    folder = Path(cache_dir).expanduser() if cache_dir is not None else export_cache_dir(export_format)
    entry = folder / model_hash(model, export_format=export_format, quantization=quantization)
    if not (entry / MANIFEST_NAME).is_file():
        folder.mkdir(parents=True, exist_ok=True)
        try:
            if export_format == "onnx":
                export_onnx(model, entry, metadata=metadata)
            else:
                from enliven.export.litert import export_tensorflow, export_tflite

                if export_format == "tflite":
                    export_tflite(model, entry, quantization=quantization, metadata=metadata)
                else:
                    export_tensorflow(model, entry, metadata=metadata)
        except ExportError:
            if not (entry / MANIFEST_NAME).is_file():  # another process may have exported it meanwhile
                raise
    return open_export(entry, threads=threads)


def load_onnx_model(
    model: str | Path | None = None,
    config: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    threads: int | None = None,
) -> LoadedModel:
    """:func:`load_export` for the ONNX backend."""
    return load_export(model, config, export_format="onnx", cache_dir=cache_dir, threads=threads)


def load_export(
    model: str | Path | None = None,
    config: str | Path | None = None,
    *,
    export_format: str = "onnx",
    quantization: str = "float32",
    cache_dir: str | Path | None = None,
    threads: int | None = None,
) -> LoadedModel:
    """:func:`~enliven.weights.loader.load_model` for the exported backends.

    Args:
        model: an export folder of ``export_format``, or anything ``load_model`` takes (exported into the cache on
            first use).
        config: the YAML config of an authors' checkpoint (see ``load_model``).
        export_format: ``onnx``, ``tflite`` or ``tensorflow``.
        quantization: of a LiteRT export made on first use (an export folder says its own).
        cache_dir: the export cache (default :func:`export_cache_dir`).
        threads: the runtime's intra-op threads (default: ``torch.get_num_threads()``).

    Returns:
        The exported model with the origin and metadata ``load_model`` gives.
    """
    if is_export_folder(model):
        folder = Path(model).expanduser()
        Manifest.read(folder, export_format)  # an export of another format is refused in one sentence
        exported = open_export(folder, threads=threads)
        return LoadedModel(exported, str(folder), dict(exported.manifest.metadata))
    require_package(RUNTIME_PACKAGES[export_format])  # fail before a long export when the runtime is missing
    loaded = load_model(model, config)
    exported = cached_export(
        loaded.model,
        loaded.metadata,
        export_format=export_format,
        quantization=quantization,
        cache_dir=cache_dir,
        threads=threads,
    )
    return LoadedModel(exported, loaded.source, loaded.metadata)
