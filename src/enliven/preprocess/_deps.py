"""Lazy imports of the optional dependencies of :mod:`enliven.preprocess`.

OpenCV (``opencv-python-headless``), MediaPipe (``enliven[face]``) and dlib with its face models (``enliven[identity]``)
are optional extras, so importing ``enliven.preprocess`` must work without them; they are imported on first use and a
missing one raises :class:`MissingDependencyError` with the ``pip install`` line that fixes it.
"""

from __future__ import annotations

import warnings
from types import ModuleType

from enliven.errors import EnlivenError


class MissingDependencyError(EnlivenError):
    """An optional dependency needed by the requested feature is not installed."""


def import_cv2() -> ModuleType:
    """Return the ``cv2`` module, or raise :class:`MissingDependencyError` if OpenCV is not installed."""
    try:
        import cv2
    except ImportError as err:
        raise MissingDependencyError(
            "Image cropping and resizing need OpenCV, which is not installed: run pip install opencv-python-headless."
        ) from err
    return cv2


def import_mediapipe_solutions() -> ModuleType:
    """Return ``mediapipe.solutions``, or raise :class:`MissingDependencyError` if MediaPipe is not installed."""
    try:
        from mediapipe.python import solutions
    except ImportError as err:
        raise MissingDependencyError(
            "Face detection and landmarks need MediaPipe, which is not installed: run pip install 'enliven[face]'."
        ) from err
    return solutions


def import_dlib() -> tuple[ModuleType, ModuleType]:
    """Return ``(dlib, face_recognition_models)``, or raise :class:`MissingDependencyError` if either is missing."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # face_recognition_models imports the deprecated pkg_resources
            import dlib
            import face_recognition_models
    except ImportError as err:
        raise MissingDependencyError(
            "Face identity and landmarks need dlib and its face models, which are not installed: "
            "run pip install 'enliven[identity]'."
        ) from err
    return dlib, face_recognition_models
