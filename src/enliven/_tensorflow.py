"""Keep TensorFlow out of processes that do not use it.

Installed with the ``tensorflow`` extra, TensorFlow is imported by libraries that only use it when it is there:
MediaPipe (for a decorator of its API docs) and TensorBoard's writer (``torch.utils.tensorboard``, which otherwise uses
its own stub). Each falls back cleanly without it; the import itself costs seconds of start-up and prints
TensorFlow's native start-up messages in every face command and training run.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def tensorflow_hidden(first_import_of: str) -> Iterator[None]:
    """Make ``import tensorflow`` fail while ``first_import_of`` (a module name) is first imported; TensorFlow stays
    importable afterwards. Does nothing when TensorFlow or that module is imported already."""
    if "tensorflow" in sys.modules or first_import_of in sys.modules:
        yield
        return
    sys.modules["tensorflow"] = None  # type: ignore[assignment]  # an import now raises ModuleNotFoundError
    try:
        yield
    finally:
        if sys.modules.get("tensorflow", 0) is None:
            del sys.modules["tensorflow"]
