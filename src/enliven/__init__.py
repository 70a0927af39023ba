"""enliven: bring a still image to life with the motion of a driving video.

Public API: :class:`Animator` (source once, then frames), :func:`load_model`, :func:`animate_file` with
:class:`AnimateOptions`, :func:`export_onnx` and :class:`OnnxMotionModel` (the onnxruntime backend). They are
imported lazily so that ``import enliven`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Animator": "enliven.pipelines.animator",
    "load_model": "enliven.models.loader",
    "animate_file": "enliven.pipelines.animate",
    "AnimateOptions": "enliven.pipelines.animate",
    "export_onnx": "enliven.export",
    "OnnxMotionModel": "enliven.export",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'enliven' has no attribute {name!r}")
