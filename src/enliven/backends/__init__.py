"""The backend registry: what runs a model (PyTorch, onnxruntime, LiteRT, TensorFlow), behind one interface.

A :class:`Backend` turns what the user named (a preset, a checkpoint, or the backend's own files such as an ONNX
export folder) into a :class:`~enliven.weights.LoadedModel` whose model is a
:class:`~enliven.models.base.MotionTransferModel`, so the :class:`~enliven.inference.Animator` runs every backend
the same way. Its four verbs:

* :meth:`Backend.load`: a model spec in, a runnable model out (converted and cached on first use where needed);
* :meth:`Backend.export`: a PyTorch model in, the backend's files written (``enliven export --format NAME``);
* :meth:`Backend.cached`: a loaded PyTorch model in, the backend's version out (the cache is keyed by the weights);
* :meth:`Backend.verify`: the largest frame difference between a PyTorch model and its converted version.

Built-in backends are named here and imported on first use (``import enliven.backends`` is free); another is added
with :func:`register_backend`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from enliven.errors import InputError
from enliven.families import resolve

if TYPE_CHECKING:
    from enliven.models.base import MotionTransferModel
    from enliven.types import MotionMode
    from enliven.weights import LoadedModel


class Backend(ABC):
    """One way of running models (see the module docstring).

    Class attributes:
        name: what ``--backend`` and ``--format`` take.
        description: one line for help texts.
        devices: devices it runs on (``cpu``, ``cuda``).
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    devices: ClassVar[tuple[str, ...]] = ("cpu", "cuda")

    def check(self, *, mode: MotionMode | None = None, size: int | None = None, device: str = "auto") -> None:
        """Raise :class:`~enliven.errors.InputError` for options this backend cannot run, before anything slow
        (a first export) starts. ``size`` is the side asked for (``None``: the model's own)."""
        if device != "auto" and device not in self.devices:
            raise InputError(
                f"--backend {self.name} runs on {' or '.join(self.devices)}, not {device}; use --device "
                f"{self.devices[0]} (or auto), or --backend torch."
            )

    def check_loaded(self, loaded: LoadedModel, size: int | None) -> None:
        """Raise :class:`~enliven.errors.InputError` when a loaded model cannot run at ``size`` (``None``: its
        own) on this backend; by default every model runs at any size."""
        return None

    def device(self, requested: str) -> str:
        """The device an animator should use for ``requested`` (``auto``, ``cpu``, ``cuda``)."""
        return requested if "cuda" in self.devices else "cpu"

    def load(
        self,
        model: str | Path | None = None,
        config: str | Path | None = None,
        *,
        threads: int | None = None,
        cache_dir: str | Path | None = None,
    ) -> LoadedModel:
        """Load a preset name, checkpoint or release (``None``: the default model) and convert it (:meth:`cached`);
        a backend that also opens its own files (an ONNX export folder) overrides this.

        Args:
            model: what to load.
            config: the YAML config of an authors' checkpoint (detected when omitted).
            threads: intra-op threads of the backend's runtime (``None``: torch's setting).
            cache_dir: where converted models are cached (``None``: the backend's default).
        """
        from enliven.weights import load_model

        return self.cached(load_model(model, config), threads=threads, cache_dir=cache_dir)

    @abstractmethod
    def export(self, model: MotionTransferModel, output: str | Path, **options: Any) -> Any:
        """Write ``model`` in this backend's format to ``output``; returns what was written."""

    @abstractmethod
    def cached(
        self, loaded: LoadedModel, *, threads: int | None = None, cache_dir: str | Path | None = None
    ) -> LoadedModel:
        """The backend's version of a loaded PyTorch model (converted once, then taken from the cache)."""

    @abstractmethod
    def verify(self, model: MotionTransferModel, converted: MotionTransferModel) -> float:
        """Largest absolute frame difference between ``model`` and its ``converted`` version on random inputs."""


#: The backends that ship with enliven: one registration line each.
BUILTIN_BACKENDS: Mapping[str, str] = {
    "torch": "enliven.backends.torch_backend:TorchBackend",
    "onnx": "enliven.backends.exported:OnnxBackend",
    "tflite": "enliven.backends.exported:TfliteBackend",
    "tflite-fp16": "enliven.backends.exported:TfliteFloat16Backend",
    "tflite-int8": "enliven.backends.exported:TfliteInt8Backend",
    "tensorflow": "enliven.backends.exported:TensorflowBackend",
}

_REGISTRY: dict[str, Any] = dict(BUILTIN_BACKENDS)  # name -> Backend, or its "module:Class" until first use


def register_backend(backend: Backend, *, replace: bool = False) -> Backend:
    """Register ``backend`` under ``backend.name``; returns it.

    Raises:
        ValueError: the name is taken (pass ``replace=True`` to override it).
    """
    if backend.name in _REGISTRY and not replace:
        raise ValueError(f"a backend named {backend.name!r} is already registered")
    _REGISTRY[backend.name] = backend
    return backend


def unregister_backend(name: str) -> None:
    """Remove a backend (tests register and remove dummy backends)."""
    _REGISTRY.pop(name, None)


def backend_names() -> list[str]:
    """Names of the registered backends (nothing is imported)."""
    return list(_REGISTRY)


def get_backend(name: str) -> Backend:
    """The backend registered as ``name``.

    Raises:
        InputError: no such backend.
    """
    entry = _REGISTRY.get(name)
    if entry is None:
        raise InputError(f"unknown backend {name!r}; use one of {', '.join(_REGISTRY)}.")
    if isinstance(entry, str):
        entry = _REGISTRY[name] = resolve(entry)()
    return entry


__all__ = ["BUILTIN_BACKENDS", "Backend", "backend_names", "get_backend", "register_backend", "unregister_backend"]
