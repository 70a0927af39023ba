"""Lazy imports of the optional dependencies of :mod:`enliven.preprocess`.

OpenCV (``opencv-python-headless``), MediaPipe (``enliven[face]``) and dlib with its face models (``enliven[identity]``)
are optional extras, so importing ``enliven.preprocess`` must work without them; they are imported on first use and a
missing one raises :class:`MissingDependencyError` with the ``pip install`` line that fixes it.

:func:`native_stderr_silenced` keeps MediaPipe's native start-up messages off the terminal.
"""

from __future__ import annotations

import importlib
import importlib.util
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


#: The MediaPipe solutions enliven uses. The ``mediapipe`` package's ``__init__`` imports all of its solutions and
#: its task APIs, among them the drawing helpers, which import matplotlib.pyplot: 0.5-1 s of every face command's
#: start-up (and of each batch worker's), for nothing enliven draws.
USED_SOLUTIONS = ("face_detection", "face_mesh", "pose", "selfie_segmentation")

_mediapipe_lock = threading.RLock()  # a package completing itself may complete another


def import_mediapipe_solutions() -> ModuleType:
    """Return ``mediapipe.solutions`` with :data:`USED_SOLUTIONS` imported, or raise :class:`MissingDependencyError`
    if MediaPipe is not installed.

    Unless ``mediapipe`` is imported already, its package and ``mediapipe.python.solutions`` are entered without
    running their ``__init__`` (see :func:`_deferred_package`): the other solutions, the drawing helpers and the task
    APIs are imported only if someone asks for them (``import mediapipe as mp; mp.solutions.drawing_utils`` works
    as ever).
    """
    with _mediapipe_lock, tensorflow_hidden("mediapipe"):
        fresh = "mediapipe" not in sys.modules
        try:
            if fresh:
                _deferred_package("mediapipe")
            importlib.import_module("mediapipe.python")
            if fresh:
                _deferred_package("mediapipe.python.solutions")
            for name in USED_SOLUTIONS:
                importlib.import_module(f"mediapipe.python.solutions.{name}")
            return sys.modules["mediapipe.python.solutions"]
        except ImportError as err:
            if fresh:  # no half-made package left behind
                for name in [n for n in sys.modules if n == "mediapipe" or n.startswith("mediapipe.")]:
                    del sys.modules[name]
            raise MissingDependencyError(
                "Face detection and landmarks need MediaPipe, which is not installed: run pip install 'enliven[face]'."
            ) from err


def _deferred_package(name: str) -> ModuleType:
    """Put the package ``name`` in ``sys.modules`` without running its ``__init__``, so that its submodules import
    alone; the first attribute asked of it that they do not provide runs the ``__init__`` (PEP 562's module
    ``__getattr__``; a submodule asked for is imported alone), after which the package is what a plain import
    makes."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise ImportError(f"no package {name}")
    module = importlib.util.module_from_spec(spec)

    def complete(attribute: str) -> object:
        with _mediapipe_lock:
            if importlib.util.find_spec(f"{name}.{attribute}") is not None:  # `from package import submodule`
                return importlib.import_module(f"{name}.{attribute}")
            if module.__dict__.pop("__getattr__", None) is not None:
                spec.loader.exec_module(module)  # type: ignore[union-attr]
        return getattr(module, attribute)

    module.__getattr__ = complete  # type: ignore[method-assign]
    sys.modules[name] = module
    return module


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
