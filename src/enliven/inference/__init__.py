"""The inference surface every interface uses: the CLI, live video, the notebook, the servers.

* :class:`Animator`: encode a source once, then animate frames (``animator(frame)``) or keypoints
  (:meth:`Animator.animate_keypoints`);
* :class:`FaceCropper`: find the face, keep its box steady (a stable box per clip, or the One-Euro filter for
  streams), cut the model's square and paste the result back;
* :func:`animate_file`: a photo and a driving clip in, a video out, with a model loaded once by the caller
  (:func:`load_for_options`), progress callbacks and cancellation;
* :func:`animate_frames`: the per-frame pipeline (keypoints | render | paste and write, overlapping on the cores);
* :class:`FaceWorker`: MediaPipe's share of :func:`animate_file` (face boxes, face-mesh landmarks) in a process of
  its own, which does not import torch;
* :func:`set_threads`: the CPU threads the models use.

The family and backend registries are :mod:`enliven.families` and :mod:`enliven.backends`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Imported on first use (as ``enliven`` does): the driving worker imports this package's torch-free modules in a
# process that must not pay for torch.
_LAZY = {
    "AnimateOptions": "options",
    "AnimateResult": "animate",
    "animate_file": "animate",
    "find_best_frame": "animate",
    "load_for_options": "animate",
    "Animator": "animator",
    "resolve_device": "animator",
    "Crop": "cropper",
    "FaceCropper": "cropper",
    "FaceWorker": "face_worker",
    "Cancelled": "pipeline",
    "animate_frames": "pipeline",
    "default_threads": "threads",
    "set_threads": "threads",
}

__all__ = [
    "AnimateOptions",
    "AnimateResult",
    "Animator",
    "Cancelled",
    "Crop",
    "FaceCropper",
    "FaceWorker",
    "animate_file",
    "animate_frames",
    "default_threads",
    "find_best_frame",
    "load_for_options",
    "resolve_device",
    "set_threads",
]

if TYPE_CHECKING:
    from enliven.inference.animate import (
        AnimateResult,
        animate_file,
        find_best_frame,
        load_for_options,
    )
    from enliven.inference.animator import Animator, resolve_device
    from enliven.inference.cropper import Crop, FaceCropper
    from enliven.inference.face_worker import FaceWorker
    from enliven.inference.options import AnimateOptions
    from enliven.inference.pipeline import Cancelled, animate_frames
    from enliven.inference.threads import default_threads, set_threads


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"enliven.inference.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'enliven.inference' has no attribute {name!r}")
