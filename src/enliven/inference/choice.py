"""``--model auto`` (the default): which bundled model animates a photo.

A face big enough to animate (:func:`~enliven.inference.cropper.is_usable_face`: at least 15 % of the photo's
shorter side and 64 px) goes to the face model; otherwise a person (MediaPipe pose) goes to the body model; anything
else (animals, cartoons, drawings, objects) to the generic model. The same choice serves ``enliven animate``,
``batch``, ``live``, the notebook and the server, each of which says in one line what was chosen and why
(:attr:`ModelChoice.line`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import numpy as np

from enliven.inference.cropper import face_size, is_usable_face
from enliven.inference.options import AUTO, is_auto
from enliven.preprocess import FaceDetector
from enliven.preprocess.person import PersonDetector
from enliven.weights.presets import BODY_MODEL, DEFAULT_MODEL, GENERIC_MODEL

if TYPE_CHECKING:
    from collections.abc import Callable

    from enliven.inference.face_worker import FaceWorker
    from enliven.inference.options import AnimateOptions

__all__ = ["AUTO", "BODY_MODEL", "ModelChoice", "ModelChooser", "choose_model", "is_auto", "resolve_auto"]

Subject = Literal["face", "person", "other"]


@dataclass(frozen=True)
class ModelChoice:
    """The model ``auto`` picked for a photo.

    Attributes:
        model: a preset name (``enliven models``).
        subject: what was found: ``face``, ``person`` or ``other``.
        reason: why, in a few words (e.g. ``a face, 34% of the photo's shorter side``).
    """

    model: str
    subject: Subject
    reason: str

    @property
    def line(self) -> str:
        """One line for the user: ``model auto: enliven-lite (a face, 34% of the photo's shorter side)``."""
        return f"model auto: {self.model} ({self.reason})"


def _face_choice(share: float) -> ModelChoice:
    """The face model, for a face ``share`` of the photo's shorter side."""
    return ModelChoice(DEFAULT_MODEL, "face", f"a face, {share:.0%} of the photo's shorter side")


class ModelChooser:
    """:func:`choose_model` with its MediaPipe detectors kept between photos (each made on first use; thread-safe):
    for a batch worker or a server, which choose for every job. Close it (or use ``with``) to free them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faces: FaceDetector | None = None
        self._people: PersonDetector | None = None

    def choose(self, image: np.ndarray) -> ModelChoice:
        """The model for an ``H x W x 3`` uint8 RGB photo (see the module docstring)."""
        height, width = image.shape[:2]
        with self._lock:
            if self._faces is None:
                self._faces = FaceDetector()
            found = self._faces.detect(image)
            if found and is_usable_face(found[0], width, height):
                return _face_choice(face_size(found[0], width, height)[1])
            if self._people is None:
                self._people = PersonDetector(video=False)
            person = self._people.detect(image)
        face = "a face too small to animate" if found else "no face"
        if person is not None:
            return ModelChoice(BODY_MODEL, "person", f"a person, {face}")
        return ModelChoice(GENERIC_MODEL, "other", f"{face} and no person: animals, drawings and objects")

    def resolve(self, options: AnimateOptions, image: np.ndarray) -> tuple[AnimateOptions, ModelChoice | None]:
        """``options`` with ``auto`` (or no model) replaced by the model chosen for ``image``, and that choice;
        options naming a model come back as they are, with ``None``."""
        if not is_auto(options.model) or options.config is not None:
            return options, None
        choice = self.choose(image)
        return replace(options, model=choice.model), choice

    def close(self) -> None:
        with self._lock:
            for detector in (self._faces, self._people):
                if detector is not None:
                    detector.close()
            self._faces = self._people = None

    def __enter__(self) -> ModelChooser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def choose_model(image: np.ndarray) -> ModelChoice:
    """The model for an ``H x W x 3`` uint8 RGB photo (see the module docstring)."""
    with ModelChooser() as chooser:
        return chooser.choose(image)


def resolve_auto(
    options: AnimateOptions,
    image: np.ndarray | Callable[[], np.ndarray],
    face_worker: FaceWorker | None = None,
) -> tuple[AnimateOptions, ModelChoice | None]:
    """``options`` with ``auto`` (or no model) replaced by the model :func:`choose_model` picks for ``image`` (or
    what ``image()`` reads, called only when needed), and that choice; options naming a model come back as they
    are, with ``None`` (no detector is made for them). A ``face_worker`` started on the same photo answers the face
    question without MediaPipe in this process: the face model then costs ``auto`` nothing."""
    if not is_auto(options.model) or options.config is not None:
        return options, None
    if face_worker is not None and face_worker.source_has_face():
        choice = _face_choice(face_worker.source_face_share or 0.0)
        return replace(options, model=choice.model), choice
    with ModelChooser() as chooser:
        return chooser.resolve(options, image() if callable(image) else image)
