"""Face identity embeddings for AED and the animation protocol's identity distance (dlib, imported lazily).

dlib's ``face_recognition_model_v1`` (a ResNet trained for face verification, from ``face_recognition_models``)
maps an aligned face to a 128-d vector; two faces of one person are typically closer than 0.6 (Euclidean), the
threshold dlib recommends. Faces are found by :class:`~enliven.evaluate.landmarks.DlibFaces` and aligned with
dlib's 5-point shape predictor, as the ``face_recognition`` package does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from enliven.evaluate.landmarks import DlibFaces

#: Length of a dlib face embedding.
EMBEDDING_SIZE = 128


class FaceIdentity:
    """Identity embeddings of faces."""

    def __init__(self) -> None:
        self._faces = DlibFaces()
        dlib, models = self._faces.dlib, self._faces.models
        self._aligner = dlib.shape_predictor(models.pose_predictor_five_point_model_location())
        self._network = dlib.face_recognition_model_v1(models.face_recognition_model_location())

    def embed(self, image: np.ndarray) -> np.ndarray:
        """The ``128`` embedding of the largest face of an ``H x W x 3`` uint8 RGB image; NaNs when no face is found."""
        image = np.ascontiguousarray(image)
        face = self._faces.largest_face(image)
        if face is None:
            return np.full(EMBEDDING_SIZE, np.nan)
        shape = self._aligner(image, face)
        return np.asarray(self._network.compute_face_descriptor(image, shape), dtype=np.float64)

    def embed_all(self, frames: Sequence[np.ndarray] | np.ndarray, every: int = 1) -> np.ndarray:
        """``N x 128`` embeddings of every ``every``-th frame (others, and faceless frames, are NaN rows)."""
        out = np.full((len(frames), EMBEDDING_SIZE), np.nan)
        for i in range(0, len(frames), every):
            out[i] = self.embed(frames[i])
        return out


def embedding_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between rows of ``N x 128`` and ``N x 128`` (or ``1 x 128``) embeddings; NaN where either
    row is NaN."""
    return np.linalg.norm(a - b, axis=-1)
