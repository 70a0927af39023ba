"""Export models to ONNX, one graph per stage, and run the exports with onnxruntime.

    >>> export_onnx(load_model("fomm-vox").model, "fomm-vox-onnx/")          # doctest: +SKIP
    >>> Animator(OnnxMotionModel("fomm-vox-onnx/"))                         # doctest: +SKIP

``onnx`` and ``onnxruntime`` come with the ``export`` extra (``pip install 'enliven[export]'``).
"""

from __future__ import annotations

from enliven.export.exporter import (
    DEFAULT_OPSET,
    EXPORT_FORMATS,
    EXPORTED_MODES,
    TOLERANCE,
    ExportResult,
    check_format,
    check_output_folder,
    compare_with_torch,
    export_model,
    export_onnx,
)
from enliven.export.flatten import flatten, unflatten
from enliven.export.manifest import ExportCheckError, ExportError, Manifest
from enliven.export.runtime import (
    OnnxMotionModel,
    cached_onnx_model,
    check_onnx_mode,
    load_onnx_model,
    model_hash,
    onnx_cache_dir,
)

__all__ = [
    "DEFAULT_OPSET",
    "EXPORT_FORMATS",
    "EXPORTED_MODES",
    "TOLERANCE",
    "ExportCheckError",
    "ExportError",
    "ExportResult",
    "Manifest",
    "OnnxMotionModel",
    "cached_onnx_model",
    "check_format",
    "check_output_folder",
    "check_onnx_mode",
    "compare_with_torch",
    "export_model",
    "export_onnx",
    "flatten",
    "load_onnx_model",
    "model_hash",
    "onnx_cache_dir",
    "unflatten",
]
