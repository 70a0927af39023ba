"""Landmark keypoints for models driven by landmarks found outside them: MediaPipe's face mesh
(``KeypointSource.FACE_MESH``, e.g. enliven-lite) and MediaPipe's pose (``KeypointSource.POSE``, enliven-body).

MediaPipe finds the landmarks of the source once, the face mesh of each driving frame on its own (still-image
mode), and tracks the pose through the driving frames (video mode; see :meth:`LandmarkTracker.driving`). Frames are
taken at the model's size, as the training data stored its landmarks, and positions are returned in the models'
``[-1, 1]`` convention, as ``float32`` numpy arrays (``K x 2`` per image; wrap them in
:class:`~enliven.types.Keypoints` for a model). The module does not import torch, so the driving worker
(:mod:`enliven.inference.face_worker`) runs it in a process of its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from enliven.errors import NoFaceError
from enliven.face_mesh import pixels_to_normalized
from enliven.types import LandmarkKind


def face_mesh_landmarker() -> Any:
    """MediaPipe's face mesh as enliven's face models are driven by it: the refined mesh (its attention model, about
    1 ms a frame more), whose first 468 points are the plain mesh's; take those (the other 10 are the irises).

    Its eyelids meet on a blink: on the validation clips the plain mesh's eye aspect ratio spans 0.61 of what dlib
    measures on the same frames, the refined mesh's 1.06, and both its eyes and lips follow dlib's a little more
    closely (``scripts/landmark_signals.py``). Cross-identity on those clips, enliven-lite's output's mouth opening
    correlates 0.81 instead of 0.74 with the driver's, its eyes' 0.42 instead of 0.30; in reconstruction its
    landmarks land 1.42 px from the real frame's instead of 1.58 (dlib, AKD; both tracked from frame to frame, as
    driving frames were then: see :meth:`LandmarkTracker.driving`).
    """
    from enliven.preprocess import FaceLandmarker

    return FaceLandmarker(video=False, refine_landmarks=True)  # each image on its own: see LandmarkTracker.driving


class LandmarkTracker:
    """Landmarks of a source image and of a stream of driving frames (MediaPipe, loaded on first use).

    A driving frame whose face (person) is lost keeps the last landmarks found; frames before the first one found get
    NaN rows, which :class:`~enliven.inference.animator.Animator` renders as the unmoved source.

    Args:
        kind: the face mesh (468 points) or the body's pose (33 points).
    """

    def __init__(self, kind: LandmarkKind = LandmarkKind.FACE_MESH) -> None:
        self.kind = LandmarkKind(kind)
        self._still = self._landmarker(video=False)
        self._video: Any = None
        self._last: np.ndarray | None = None

    def _landmarker(self, video: bool) -> Any:
        if self.kind is LandmarkKind.POSE:
            from enliven.preprocess.person import PersonDetector

            return PersonDetector(video=video)
        return face_mesh_landmarker()  # driving frames too are found each on its own (see driving)

    def source(self, image: np.ndarray) -> np.ndarray:
        """Landmarks ``1 x K x 2`` of a ``H x W x 3`` uint8 source; restarts driving-frame tracking.

        Raises:
            NoFaceError: no face (no person, for the pose) was found.
        """
        keypoints = self.still(image)
        self.restart()
        return keypoints

    def still(self, image: np.ndarray) -> np.ndarray:
        """Landmarks ``1 x K x 2`` of one ``H x W x 3`` uint8 image found on its own (driving-frame tracking is
        untouched).

        Raises:
            NoFaceError: no face (no person, for the pose) was found.
        """
        points = self._still.landmarks(image)
        if points is None:
            if self.kind is LandmarkKind.POSE:
                raise NoFaceError(
                    "No person was found in the source image; this model animates bodies, so use a photo showing a "
                    "person (or --model auto, which picks a model for other content)."
                )
            raise NoFaceError(
                "No face landmarks were found in the source image; this model animates faces, so use a photo "
                "with a clearly visible face (or a FOMM/TPSMM model with --model)."
            )
        return self._to_keypoints(points[None, : self.kind.num_points], image.shape)

    def driving(self, frames: np.ndarray) -> np.ndarray:
        """Landmarks of ``N x H x W x 3`` uint8 consecutive driving frames (``N x K x 2``, NaN before the first face
        or person).

        The face mesh is found in each frame on its own, as the source's (the face detector, then the mesh in the
        box it found), not tracked from the last frame's landmarks (MediaPipe's video mode). Tracking is 1.7 ms a
        frame cheaper but less exact: it runs the mesh model in a box made from the last frame's landmarks instead
        of the detector's (the framing, not the lag: run twice on each frame, the second time in a box from that
        frame's own landmarks, it scores the same). On the validation clips (reconstruction, 19 clips x 40 frames)
        enliven-lite driven frame by frame puts dlib's landmarks 1.27 px from the real frames' instead of 1.43 (the
        nose 1.01 instead of 1.30, the jaw 1.77 instead of 2.01) and its L1 drops from 0.0306 to 0.0289, with no
        more jitter (frame-to-frame second differences of the landmarks 1.08 against 1.06 px).
        The pose is tracked (its still-image mode runs the person detector every frame, and bodies move more).
        """
        landmarker = self._still if self.kind is LandmarkKind.FACE_MESH else self._video
        if landmarker is None:
            landmarker = self._video = self._landmarker(video=True)
        rows = []
        for frame in frames:
            points = landmarker.landmarks(frame)
            if points is not None:
                self._last = points[: self.kind.num_points]
            rows.append(self._last if self._last is not None else np.full((self.kind.num_points, 2), np.nan))
        return self._to_keypoints(np.stack(rows), frames.shape[1:])

    def restart(self) -> None:
        """Forget the tracked face: the next driving frame starts a new clip."""
        if self._video is not None:
            self._video.close()
            self._video = None
        self._last = None

    def close(self) -> None:
        self.restart()
        self._still.close()

    @staticmethod
    def _to_keypoints(points: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        height, width = shape[0], shape[1]
        return pixels_to_normalized(points, width, height).astype(np.float32)


class FaceMeshTracker(LandmarkTracker):
    """:class:`LandmarkTracker` of the face mesh (468 landmarks)."""

    def __init__(self) -> None:
        super().__init__(LandmarkKind.FACE_MESH)
