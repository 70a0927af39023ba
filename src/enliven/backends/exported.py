"""Backends that run exported graphs: ``onnx`` (onnxruntime), ``tflite``, ``tflite-fp16``, ``tflite-int8`` (the
LiteRT interpreter) and ``tensorflow`` (SavedModels). A model is exported and checked once, then loaded from the
cache (:func:`enliven.export.export_cache_dir`); relative and absolute motion only (TPSMM's AVD is not exported),
at the model's own size, on the CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from enliven.backends import Backend
from enliven.errors import InputError
from enliven.export import (
    EXPORTED_MODES,
    ExportedMotionModel,
    cached_export,
    check_onnx_mode,
    compare_with_torch,
    load_export,
)
from enliven.models.base import MotionTransferModel
from enliven.types import MotionMode
from enliven.weights import LoadedModel


class ExportedBackend(Backend):
    """A format of :mod:`enliven.export` and its runtime (see the module docstring).

    Class attributes:
        export_format: ``onnx``, ``tflite`` or ``tensorflow``.
        quantization: of the exports made on first use (``float32``, ``float16``, ``int8``).
    """

    export_format: ClassVar[str]
    quantization: ClassVar[str] = "float32"
    devices = ("cpu",)

    def check(self, *, mode: MotionMode | None = None, size: int | None = None, device: str = "auto") -> None:
        super().check(mode=mode, size=size, device=device)
        if mode is not None:
            check_onnx_mode(EXPORTED_MODES, mode)

    def check_loaded(self, loaded: LoadedModel, size: int | None) -> None:
        """The exported graphs run at one size: the model's."""
        if size is not None and size != loaded.model.image_size:
            raise InputError(
                f"--backend {self.name} runs at the exported size {loaded.model.image_size}, not --size {size}; "
                "leave out --size or use --backend torch."
            )

    def load(
        self,
        model: str | Path | None = None,
        config: str | Path | None = None,
        *,
        threads: int | None = None,
        cache_dir: str | Path | None = None,
    ) -> LoadedModel:
        return load_export(
            model,
            config,
            export_format=self.export_format,
            quantization=self.quantization,
            cache_dir=cache_dir,
            threads=threads,
        )

    def cached(
        self, loaded: LoadedModel, *, threads: int | None = None, cache_dir: str | Path | None = None
    ) -> LoadedModel:
        exported = cached_export(
            loaded.model,
            loaded.metadata,
            export_format=self.export_format,
            quantization=self.quantization,
            cache_dir=cache_dir,
            threads=threads,
        )
        return LoadedModel(exported, loaded.source, loaded.metadata)

    def verify(self, model: MotionTransferModel, converted: MotionTransferModel) -> float:
        if not isinstance(converted, ExportedMotionModel) or converted.manifest.export_format != self.export_format:
            raise TypeError(f"the {self.name} backend verifies its own exports, got {type(converted).__name__}")
        return compare_with_torch(model, converted.folder)


class OnnxBackend(ExportedBackend):
    """onnxruntime on the CPU (:func:`enliven.export.export_onnx`)."""

    name = "onnx"
    description = "onnxruntime on the CPU (exported and cached on first use)"
    export_format = "onnx"

    def export(self, model: MotionTransferModel, output: str | Path, **options: Any) -> Any:
        """:func:`enliven.export.export_onnx` (options: ``opset``, ``check``, ``tolerance``, ``metadata``)."""
        from enliven.export import export_onnx

        return export_onnx(model, output, **options)


class TfliteBackend(ExportedBackend):
    """The LiteRT interpreter (``ai-edge-litert``) with XNNPACK on the CPU
    (:func:`enliven.export.litert.export_tflite`)."""

    name = "tflite"
    description = "LiteRT (TFLite) interpreter on the CPU, float32 (exported and cached on first use)"
    export_format = "tflite"

    def export(self, model: MotionTransferModel, output: str | Path, **options: Any) -> Any:
        """:func:`enliven.export.litert.export_tflite` (options: ``quantization``, ``calibration``, ``check``,
        ``tolerance``, ``metadata``); the backend's quantisation unless one is given."""
        from enliven.export.litert import export_tflite

        options.setdefault("quantization", self.quantization)
        return export_tflite(model, output, **options)


class TfliteFloat16Backend(TfliteBackend):
    name = "tflite-fp16"
    description = "LiteRT with float16 weights (exported and cached on first use)"
    quantization = "float16"


class TfliteInt8Backend(TfliteBackend):
    name = "tflite-int8"
    description = "LiteRT with int8 convolutions, calibrated on the bundled clip (exported and cached on first use)"
    quantization = "int8"


class TensorflowBackend(ExportedBackend):
    """TensorFlow SavedModels on the CPU (:func:`enliven.export.litert.export_tensorflow`)."""

    name = "tensorflow"
    description = "TensorFlow SavedModel on the CPU (exported and cached on first use)"
    export_format = "tensorflow"

    def export(self, model: MotionTransferModel, output: str | Path, **options: Any) -> Any:
        """:func:`enliven.export.litert.export_tensorflow` (options: ``check``, ``tolerance``, ``metadata``)."""
        from enliven.export.litert import export_tensorflow

        return export_tensorflow(model, output, **options)


__all__ = [
    "ExportedBackend",
    "OnnxBackend",
    "TensorflowBackend",
    "TfliteBackend",
    "TfliteFloat16Backend",
    "TfliteInt8Backend",
]
