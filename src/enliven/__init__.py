"""enliven: bring a still image to life with the motion of a driving video.

Public API, the stable library surface that the CLI, the notebook, the batch runner and the servers call
(:mod:`enliven.inference`): :func:`animate` (an alias of :func:`animate_file`: a photo and a clip in, a video out) with
:class:`AnimateOptions`, :class:`Animator` (source once, then frames or keypoints), :class:`FaceCropper`,
:func:`load_for_options`, :func:`set_threads`; :func:`run_batch` and :class:`BatchJob` (:mod:`enliven.batch`);
:func:`load_model` (:mod:`enliven.weights`); the registries' :func:`register_family` and :func:`register_backend` /
:func:`get_backend`; :func:`export_onnx` and :class:`OnnxMotionModel`; motion without a driving video:
:class:`MotionGenerator` (the motion VAE: sample, vary, interpolate), :func:`motion_from_clip`, :class:`FaceMotion`,
:func:`animate_motion`, and :class:`ExpressionEdit` (expression and pose controls, also ``AnimateOptions.edit``);
:func:`choose_model` and :class:`ModelChoice` (what ``--model auto`` picks for a photo).
They are imported lazily so that ``import enliven`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "animate": ("enliven.inference", "animate_file"),
    "run_batch": "enliven.batch",
    "BatchJob": "enliven.batch",
    "Animator": "enliven.inference",
    "FaceCropper": "enliven.inference",
    "animate_file": "enliven.inference",
    "AnimateOptions": "enliven.inference",
    "load_for_options": "enliven.inference",
    "set_threads": "enliven.inference",
    "load_model": "enliven.weights",
    "register_family": "enliven.families",
    "register_backend": "enliven.backends",
    "get_backend": "enliven.backends",
    "export_onnx": "enliven.export",
    "OnnxMotionModel": "enliven.export",
    "animate_motion": "enliven.inference.motion",
    "MotionGenerator": "enliven.motion.generator",
    "motion_from_clip": "enliven.motion.generator",
    "FaceMotion": "enliven.motion.sequence",
    "ExpressionEdit": "enliven.motion.edits",
    "choose_model": "enliven.inference.choice",
    "ModelChoice": "enliven.inference.choice",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name] if isinstance(_LAZY[name], tuple) else (_LAZY[name], name)
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'enliven' has no attribute {name!r}")
