"""The ``torch`` backend: models run as they are, in PyTorch, on the CPU or a CUDA GPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from enliven.backends import Backend
from enliven.models.base import MotionTransferModel
from enliven.weights import LoadedModel, save_release


class TorchBackend(Backend):
    """PyTorch itself: nothing to convert; exports are enliven release files (``.safetensors``)."""

    name = "torch"
    description = "PyTorch (CPU or CUDA)"

    def export(self, model: MotionTransferModel, output: str | Path, **options: Any) -> Path:
        """An enliven release file (weights, config and ``metadata=`` in one ``.safetensors``)."""
        return save_release(model, output, options.get("metadata"))

    def cached(
        self, loaded: LoadedModel, *, threads: int | None = None, cache_dir: str | Path | None = None
    ) -> LoadedModel:
        return loaded

    def verify(self, model: MotionTransferModel, converted: MotionTransferModel) -> float:
        """0: PyTorch runs the model itself (``cached`` returns it unchanged)."""
        if converted is not model:
            raise ValueError("the torch backend converts nothing; verify a model against itself")
        return 0.0
