"""The ``onnx`` backend: models exported to ONNX (one graph per stage) and run by onnxruntime on the CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from enliven.backends import Backend
from enliven.errors import InputError
from enliven.export import (
    EXPORTED_MODES,
    OnnxMotionModel,
    cached_onnx_model,
    check_onnx_mode,
    compare_with_torch,
    export_onnx,
    load_onnx_model,
)
from enliven.models.base import MotionTransferModel
from enliven.types import MotionMode
from enliven.weights import LoadedModel


class OnnxBackend(Backend):
    """onnxruntime on the CPU; a model is exported and checked once, then loaded from the cache
    (:func:`enliven.export.onnx_cache_dir`). Relative and absolute motion only (TPSMM's AVD is not exported), at
    the model's own size."""

    name = "onnx"
    description = "onnxruntime on the CPU (exported and cached on first use)"
    devices = ("cpu",)

    def check(self, *, mode: MotionMode | None = None, size: int | None = None, device: str = "auto") -> None:
        super().check(mode=mode, size=size, device=device)
        if mode is not None:
            check_onnx_mode(EXPORTED_MODES, mode)

    def check_loaded(self, loaded: LoadedModel, size: int | None) -> None:
        """The exported graphs run at one size: the model's."""
        if size is not None and size != loaded.model.image_size:
            raise InputError(
                f"--backend onnx runs at the exported size {loaded.model.image_size}, not --size {size}; "
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
        return load_onnx_model(model, config, cache_dir=cache_dir, threads=threads)

    def export(self, model: MotionTransferModel, output: str | Path, **options: Any) -> Any:
        """:func:`enliven.export.export_onnx` (options: ``opset``, ``check``, ``tolerance``, ``metadata``)."""
        return export_onnx(model, output, **options)

    def cached(
        self, loaded: LoadedModel, *, threads: int | None = None, cache_dir: str | Path | None = None
    ) -> LoadedModel:
        onnx_model = cached_onnx_model(loaded.model, loaded.metadata, cache_dir=cache_dir, threads=threads)
        return LoadedModel(onnx_model, loaded.source, loaded.metadata)

    def verify(self, model: MotionTransferModel, converted: MotionTransferModel) -> float:
        if not isinstance(converted, OnnxMotionModel):
            raise TypeError(f"the onnx backend verifies OnnxMotionModel, got {type(converted).__name__}")
        return compare_with_torch(model, converted.folder)
