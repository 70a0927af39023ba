"""Export models to ONNX, one graph per stage, and run the exports with onnxruntime.

    >>> export_onnx(load_model("fomm-vox").model, "fomm-vox-onnx/")          # doctest: +SKIP
    >>> Animator(OnnxMotionModel("fomm-vox-onnx/"))                         # doctest: +SKIP

Modules, in import order (none imports a later one): :mod:`~enliven.export.manifest` (folder layout, errors),
:mod:`~enliven.export.flatten`, :mod:`~enliven.export.stages` (the traced wrappers), :mod:`~enliven.export.runtime`
(:class:`OnnxMotionModel`), :mod:`~enliven.export.verify` (onnxruntime against PyTorch),
:mod:`~enliven.export.exporter` (:func:`export_onnx`) and :mod:`~enliven.export.cache` (exported once, reused).
The backend registry (:mod:`enliven.backends`) exposes them as the ``onnx`` backend.

``onnx`` and ``onnxruntime`` come with the ``export`` extra (``pip install 'enliven[export]'``).
"""

from __future__ import annotations

from enliven.export.cache import cached_onnx_model, load_onnx_model, model_hash, onnx_cache_dir
from enliven.export.exporter import (
    DEFAULT_OPSET,
    EXPORTED_MODES,
    TOLERANCE,
    ExportResult,
    check_output_folder,
    export_onnx,
)
from enliven.export.flatten import flatten, unflatten
from enliven.export.manifest import ExportCheckError, ExportError, Manifest, require_package
from enliven.export.runtime import OnnxMotionModel, check_onnx_mode
from enliven.export.verify import compare_with_torch

__all__ = [
    "DEFAULT_OPSET",
    "EXPORTED_MODES",
    "TOLERANCE",
    "ExportCheckError",
    "ExportError",
    "ExportResult",
    "Manifest",
    "OnnxMotionModel",
    "cached_onnx_model",
    "check_onnx_mode",
    "check_output_folder",
    "compare_with_torch",
    "export_onnx",
    "flatten",
    "load_onnx_model",
    "model_hash",
    "onnx_cache_dir",
    "require_package",
    "unflatten",
]
