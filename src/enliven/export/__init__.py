"""Export models to ONNX, LiteRT (tflite) or TensorFlow, one graph per stage, and run the exports.

    >>> export_onnx(load_model("fomm-vox").model, "fomm-vox-onnx/")          # doctest: +SKIP
    >>> Animator(OnnxMotionModel("fomm-vox-onnx/"))                         # doctest: +SKIP

Modules, in import order (none imports a later one): :mod:`~enliven.export.manifest` (folder layout, errors),
:mod:`~enliven.export.flatten`, :mod:`~enliven.export.stages` (the traced wrappers), :mod:`~enliven.export.runtime`
(:class:`ExportedMotionModel` and one class per format's runtime), :mod:`~enliven.export.verify` (an export
against PyTorch), :mod:`~enliven.export.exporter` (:func:`export_onnx`, :func:`write_export`) and
:mod:`~enliven.export.cache` (exported once, reused); imported on use: :mod:`~enliven.export.calibration` (int8
calibration frames) and :mod:`~enliven.export.litert` (:func:`export_tflite`, :func:`export_tensorflow`). The
backend registry (:mod:`enliven.backends`) exposes them as the ``onnx``, ``tflite``, ``tflite-fp16``,
``tflite-int8`` and ``tensorflow`` backends.

``onnx`` and ``onnxruntime`` come with the ``export`` extra (``pip install 'enliven[export]'``), the LiteRT
interpreter with ``tflite``, the converters and TensorFlow with ``tensorflow``.
"""

from __future__ import annotations

from enliven.export.cache import (
    cached_export,
    cached_onnx_model,
    export_cache_dir,
    load_export,
    load_onnx_model,
    model_hash,
    onnx_cache_dir,
)
from enliven.export.exporter import (
    DEFAULT_OPSET,
    EXPORTED_MODES,
    TOLERANCE,
    ExportResult,
    check_output_folder,
    export_onnx,
    write_export,
)
from enliven.export.flatten import flatten, unflatten
from enliven.export.manifest import ExportCheckError, ExportError, Manifest, require_package
from enliven.export.runtime import ExportedMotionModel, OnnxMotionModel, check_onnx_mode, open_export
from enliven.export.verify import compare_with_torch

__all__ = [
    "DEFAULT_OPSET",
    "EXPORTED_MODES",
    "TOLERANCE",
    "ExportCheckError",
    "ExportError",
    "ExportResult",
    "ExportedMotionModel",
    "Manifest",
    "OnnxMotionModel",
    "cached_export",
    "cached_onnx_model",
    "check_onnx_mode",
    "check_output_folder",
    "compare_with_torch",
    "export_cache_dir",
    "export_onnx",
    "flatten",
    "load_export",
    "load_onnx_model",
    "model_hash",
    "onnx_cache_dir",
    "open_export",
    "require_package",
    "unflatten",
    "write_export",
]
