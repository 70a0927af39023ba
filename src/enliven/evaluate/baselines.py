"""What a model is compared with: the method interface, the model itself, and two baselines without a model.

* ``static`` ("no model"): the source, repeated; what a method scores by not moving at all.
* ``mesh warp`` ("no learning"): MediaPipe face-mesh landmarks (the refined mesh the face models are driven by) of the
  source and of each driving frame, and a piecewise-affine warp of the source over the Delaunay triangulation of the
  source's landmarks plus anchor points on the image border. Each triangle gets its own affine map (solved exactly
  from its three corners); the maps are rasterised into one dense sampling grid and applied with a single bilinear
  ``cv2.remap``, which is the classical per-triangle warp without its per-triangle copies. Driven by another face
  (relative motion), the eyelids and lips are retargeted and the mesh kept whole as the face models' are
  (:func:`~enliven.models.motion_transfer.retarget_openings`, :func:`~enliven.models.motion_transfer.keep_mesh_whole`).

* ``part warp`` ("no learning", bodies): MediaPipe pose landmarks of the source and of each driving frame; each body
  part (torso, head, limbs) moved by its own transform and the parts blended by the distance to their bones, the
  background kept still (:func:`enliven.pose.part_warp_map`).

Every method takes ``N x H x W x 3`` uint8 RGB frames at the evaluation size and returns frames of that shape.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

import numpy as np
import torch

from enliven.face_mesh import NUM_FACE_MESH_POINTS, border_anchor_points, delaunay_triangles
from enliven.inference.animator import Animator
from enliven.models.base import MotionTransferModel
from enliven.models.motion_transfer import keep_mesh_whole, retarget_openings
from enliven.pose import part_warp_map
from enliven.preprocess._deps import import_cv2
from enliven.types import MotionMode


class MethodKind(StrEnum):
    """What a method's numbers stand for in the report."""

    MODEL = "model"
    NO_MODEL = "no model"
    NO_LEARNING = "no learning"


class Method(Protocol):
    """Something that animates a source with driving frames."""

    name: str
    kind: MethodKind

    def set_source(self, image: np.ndarray) -> None:
        """Take a new ``H x W x 3`` uint8 source; the next driving frame starts a new clip."""
        ...

    def set_reference(self, frame: np.ndarray) -> None:
        """Relative motion from this ``H x W x 3`` uint8 driving frame instead of the clip's first (after
        :meth:`set_source`); the clip is then animated from its first frame."""
        ...

    def animate(self, frames: np.ndarray) -> np.ndarray:
        """``N x H x W x 3`` uint8 driving frames in, as many animated frames out."""
        ...

    def close(self) -> None: ...


class ModelMethod:
    """A motion-transfer model run through :class:`~enliven.inference.animator.Animator`.

    Args:
        model: the model.
        name: its name in the report.
        mode: absolute for reconstruction (the authors' protocol), relative for animation.
        device: ``auto``, ``cpu`` or ``cuda``.
        batch_size: driving frames per model call.
    """

    kind = MethodKind.MODEL

    def __init__(
        self, model: MotionTransferModel, name: str, mode: MotionMode, device: str = "auto", batch_size: int = 8
    ) -> None:
        self.name = name
        self.batch_size = batch_size
        self.animator = Animator(model, device=device, mode=mode, adapt_scale=True)

    @property
    def image_size(self) -> int:
        return self.animator.size

    def set_source(self, image: np.ndarray) -> None:
        self.animator.set_source(image)

    def set_reference(self, frame: np.ndarray) -> None:
        keypoints = self.animator.driving_keypoints(frame)
        self.animator.restart_tracking()  # the clip is tracked from its first frame, as without a reference
        if not keypoints.value.isnan().any():  # not found by the model's landmarks: its first frame with them
            self.animator.set_reference_keypoints(keypoints)

    def animate(self, frames: np.ndarray) -> np.ndarray:
        parts = [self.animator(frames[i : i + self.batch_size]) for i in range(0, len(frames), self.batch_size)]
        return np.concatenate(parts)

    def close(self) -> None:
        self.animator.close()


class StaticBaseline:
    """The source repeated: the score of not moving."""

    name = "static"
    kind = MethodKind.NO_MODEL

    def __init__(self) -> None:
        self._source: np.ndarray | None = None

    def set_source(self, image: np.ndarray) -> None:
        self._source = np.array(image, copy=True)

    def set_reference(self, frame: np.ndarray) -> None:
        pass  # nothing moves

    def animate(self, frames: np.ndarray) -> np.ndarray:
        if self._source is None:
            raise RuntimeError("call set_source() before animating")
        return np.repeat(self._source[None], len(frames), axis=0)

    def close(self) -> None:
        pass


class _LandmarkWarp:
    """What the mesh warp and the part warp share: the motion mode, the loop over frames, the relative transfer of
    landmarks and the frame repeated when none are found. Subclasses find the landmarks and warp."""

    name: str
    kind = MethodKind.NO_LEARNING

    def __init__(self, mode: MotionMode) -> None:
        if mode not in (MotionMode.ABSOLUTE, MotionMode.RELATIVE):
            raise ValueError(f"the {self.name} supports absolute and relative motion, not {MotionMode(mode).value}")
        self.mode = MotionMode(mode)
        self._source: np.ndarray | None = None
        self._reference: np.ndarray | None = None
        self._last: np.ndarray | None = None

    def set_source(self, image: np.ndarray) -> None:
        self._source = np.array(image, copy=True)
        self._last = self._source
        self._reference = None

    def set_reference(self, frame: np.ndarray) -> None:
        self._reference = self._landmarks(frame)  # None (nothing found): the first frame with landmarks, as before

    def _landmarks(self, frame: np.ndarray) -> np.ndarray | None:
        """The driving frame's landmarks (pixels), or ``None`` where none were found."""
        raise NotImplementedError

    def animate(self, frames: np.ndarray) -> np.ndarray:
        if self._source is None:
            raise RuntimeError("call set_source() before animating")
        return np.stack([self._animate_one(frame) for frame in frames])

    def _target(self, source_points: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Where the source's landmarks go: the driving frame's (absolute), or the source's moved by the driving
        landmarks' displacement from the clip's first driving frame (relative)."""
        if self.mode is MotionMode.ABSOLUTE:
            return points
        if self._reference is None:
            self._reference = points
        return source_points + (points - self._reference)

    def _animate_one(self, frame: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class MeshWarpBaseline(_LandmarkWarp):
    """Piecewise-affine warp of the source along MediaPipe face-mesh landmarks (see the module docstring).

    Args:
        mode: ``absolute`` moves the source's landmarks onto each driving frame's; ``relative`` moves them by the
            driving landmarks' displacement from the clip's first driving frame (for another identity's motion).

    A frame whose landmarks are not found repeats the previous output (the source at first); a source without a
    face is repeated unchanged, as the static baseline does.
    """

    name = "mesh warp"

    def __init__(self, mode: MotionMode = MotionMode.ABSOLUTE) -> None:
        from enliven.inference.landmarks import face_mesh_landmarker

        super().__init__(mode)
        self._landmarker = face_mesh_landmarker()  # the source's and, as the models', each driving frame's own
        self._source_points: np.ndarray | None = None
        self._triangles: np.ndarray | None = None

    def set_source(self, image: np.ndarray) -> None:
        super().set_source(image)
        points = self._landmarker.landmarks(image)
        points = None if points is None else points[:NUM_FACE_MESH_POINTS]
        if points is None:
            self._source_points = self._triangles = None
        else:
            h, w = image.shape[:2]
            self._source_points = np.concatenate([points, border_anchors(w, h)])
            self._triangles = delaunay_triangles(self._source_points)

    def _animate_one(self, frame: np.ndarray) -> np.ndarray:
        assert self._source is not None and self._last is not None
        if self._source_points is None or self._triangles is None:
            return self._source
        points = self._landmarks(frame)
        if points is None:
            return self._last
        num_face = len(points)
        source_points = self._source_points[:num_face]
        moved = self._target(source_points, points)
        if self.mode is MotionMode.RELATIVE:  # as the face-mesh models' relative motion
            assert self._reference is not None
            arrays = (moved, source_points, points, self._reference)
            transferred, source, driving, reference = (torch.from_numpy(np.float32(a))[None] for a in arrays)
            moved = keep_mesh_whole(retarget_openings(transferred, source, driving, reference), source)[0].numpy()
        target = np.concatenate([moved, self._source_points[num_face:]])
        self._last = piecewise_affine_warp(self._source, self._source_points, target, self._triangles)
        return self._last

    def _landmarks(self, frame: np.ndarray) -> np.ndarray | None:
        points = self._landmarker.landmarks(frame)
        return None if points is None else points[:NUM_FACE_MESH_POINTS]

    def close(self) -> None:
        self._landmarker.close()


def border_anchors(width: int, height: int) -> np.ndarray:
    """Points evenly spaced along the image border (corners included): ``P x 2`` pixel positions.

    They lie on the outer edges (``0`` and ``width``/``height``), so the triangulation covers every pixel centre.
    """
    return border_anchor_points() * np.array([width, height])


def piecewise_affine_warp(
    image: np.ndarray, source_points: np.ndarray, target_points: np.ndarray, triangles: np.ndarray
) -> np.ndarray:
    """Warp ``image`` so that each triangle of ``source_points`` lands on the same triangle of ``target_points``.

    Args:
        image: ``H x W x C`` image (uint8 or float32).
        source_points: ``P x 2`` ``(x, y)`` pixel positions in ``image`` (pixel ``(i, j)`` covers ``[i, i + 1)``).
        target_points: ``P x 2`` where those points go in the output.
        triangles: ``T x 3`` vertex indices (e.g. :func:`delaunay_triangles` of ``source_points``).

    Returns:
        The warped image, same shape and dtype. Output pixels that no target triangle covers (where the warp folds)
        sample ``image`` at their own position; samples outside ``image`` repeat its border.
    """
    cv2 = import_cv2()
    h, w = image.shape[:2]
    src, dst = source_points[triangles], target_points[triangles]  # T x 3 x 2
    # Per triangle, the affine map from target to source: [x, y, 1] @ A = source position.
    corners = np.concatenate([dst, np.ones((*dst.shape[:2], 1))], axis=2)  # T x 3 x 3
    valid = np.abs(np.linalg.det(corners)) > 1e-6
    corners[~valid] = np.eye(3)
    affine = np.linalg.solve(corners, src)  # T x 3 x 2
    labels = np.full((h, w), -1, dtype=np.int32)
    shift = 4  # fillConvexPoly's sub-pixel bits
    # cv2 puts integer coordinates at pixel centres: subtract the half pixel of our convention.
    fixed = np.round((dst - 0.5) * (1 << shift)).astype(np.int32)
    for index in np.flatnonzero(valid):
        cv2.fillConvexPoly(labels, fixed[index], int(index), lineType=cv2.LINE_8, shift=shift)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    covered = labels >= 0
    map_x, map_y = xs.copy(), ys.copy()
    chosen = affine[labels[covered]]  # M x 3 x 2
    px, py = xs[covered], ys[covered]
    map_x[covered] = px * chosen[:, 0, 0] + py * chosen[:, 1, 0] + chosen[:, 2, 0]
    map_y[covered] = px * chosen[:, 0, 1] + py * chosen[:, 1, 1] + chosen[:, 2, 1]
    return cv2.remap(
        image,
        (map_x - 0.5).astype(np.float32),
        (map_y - 0.5).astype(np.float32),
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


class PartWarpBaseline(_LandmarkWarp):
    """The source's body parts moved along MediaPipe pose landmarks (see the module docstring).

    Args:
        mode: ``absolute`` moves the source's landmarks onto each driving frame's; ``relative`` moves them by the
            driving landmarks' displacement from the clip's first driving frame (for another person's motion).

    A frame without a body repeats the previous output (the source at first); a source without a body is repeated.
    """

    name = "part warp"

    def __init__(self, mode: MotionMode = MotionMode.ABSOLUTE) -> None:
        from enliven.evaluate.landmarks import PoseLandmarks

        super().__init__(mode)
        self._pose = PoseLandmarks()
        self._source_points: np.ndarray | None = None

    def set_source(self, image: np.ndarray) -> None:
        super().set_source(image)
        points = self._pose.detect(image)
        self._source_points = points if np.isfinite(points).any() else None

    def _animate_one(self, frame: np.ndarray) -> np.ndarray:
        assert self._source is not None and self._last is not None
        if self._source_points is None:
            return self._source
        points = self._target(self._source_points, self._landmarks(frame))
        height, width = self._source.shape[:2]
        where = part_warp_map(self._source_points, points, width, height)
        if where is None:
            return self._last
        cv2 = import_cv2()
        self._last = cv2.remap(
            self._source, where[..., 0], where[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        return self._last

    def _landmarks(self, frame: np.ndarray) -> np.ndarray | None:
        return self._pose.detect(frame)  # NaN rows where a point is not found: the part warp leaves those parts

    def close(self) -> None:
        self._pose.close()
