"""Lazy imports of the optional dependencies of :mod:`enliven.preprocess`.

OpenCV (``opencv-python-headless``), MediaPipe (``enliven[face]``) and dlib with its face models (``enliven[identity]``)
are optional extras, so importing ``enliven.preprocess`` must work without them; they are imported on first use and a
missing one raises :class:`MissingDependencyError` with the ``pip install`` line that fixes it.

:func:`native_stderr_silenced` keeps MediaPipe's native start-up messages off the terminal.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from enliven._tensorflow import tensorflow_hidden
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
        with tensorflow_hidden("mediapipe"):
            from mediapipe.python import solutions
    except ImportError as err:
        raise MissingDependencyError(
            "Face detection and landmarks need MediaPipe, which is not installed: run pip install 'enliven[face]'."
        ) from err
    return solutions


# The redirection is process-wide (a file descriptor), so overlapping blocks in several threads share it: the first
# to enter redirects, the last to leave restores.
_stderr_lock = threading.Lock()
_stderr_users = 0
_saved_stderr: int | None = None


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at the null device while the block runs, so that native code's messages are dropped.

    MediaPipe's C++ side writes about ten lines to stderr when its graphs start and first see a face (absl's
    ``W0000 ... inference_feedback_manager.cc``, ``landmark_projection_calculator.cc``, "All log messages before
    absl::InitializeLog()", TensorFlow Lite's "Created TensorFlow Lite XNNPACK delegate"), even with ``-q``.
    MediaPipe 0.10 has no setting for them: absl's log library reads no environment variable, and ``GLOG_minloglevel``
    or ``TF_CPP_MIN_LOG_LEVEL`` change nothing. Exceptions still propagate; but Python text written to
    ``sys.stderr`` meanwhile, by any thread, is dropped too, so callers keep the blocks to those native calls.
    """
    global _stderr_users, _saved_stderr
    with _stderr_lock:
        if _stderr_users == 0:
            try:
                sys.stderr.flush()  # what Python buffered before the block still reaches the terminal
            except (AttributeError, OSError, ValueError):
                pass  # no usable sys.stderr (e.g. pythonw): nothing of ours to flush
            try:
                _saved_stderr = os.dup(2)
            except OSError:
                _saved_stderr = None  # fd 2 is closed: native messages go nowhere anyway
            if _saved_stderr is not None:
                null = os.open(os.devnull, os.O_WRONLY)
                try:
                    os.dup2(null, 2)
                finally:
                    os.close(null)
        _stderr_users += 1
    try:
        yield
    finally:
        with _stderr_lock:
            _stderr_users -= 1
            if _stderr_users == 0 and _saved_stderr is not None:
                os.dup2(_saved_stderr, 2)
                os.close(_saved_stderr)
                _saved_stderr = None


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
