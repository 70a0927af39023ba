"""enliven in Jupyter: :class:`EnlivenApp`, an ipywidgets app (photo, driving clip, every ``enliven animate``
option, a frame slider answered in one model call, render with progress and cancel, the browser's webcam), built
on :class:`Studio`, its state and work without widgets. ``notebooks/enliven.ipynb`` shows it; ``voila
notebooks/enliven.ipynb`` serves it as a page. Needs the ``notebook`` extra (``pip install "enliven[notebook]"``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

_LAZY = {
    "BoxAdjustment": "inputs",
    "Clip": "inputs",
    "Photo": "inputs",
    "Preview": "inputs",
    "Studio": "studio",
    "EnlivenApp": "app",
    "MotionStudio": "motion",
}

__all__ = ["BoxAdjustment", "Clip", "EnlivenApp", "MotionStudio", "Photo", "Preview", "Studio"]

if TYPE_CHECKING:
    from enliven.notebook.app import EnlivenApp
    from enliven.notebook.inputs import BoxAdjustment, Clip, Photo, Preview
    from enliven.notebook.motion import MotionStudio
    from enliven.notebook.studio import Studio


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"enliven.notebook.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'enliven.notebook' has no attribute {name!r}")
