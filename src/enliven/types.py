"""Typed values passed between models, the animator and the pipelines.

Coordinate convention (shared with FOMM and TPSMM): keypoints and sampling grids are ``(x, y)`` pairs in
normalised image coordinates, ``-1`` at the centre of the left/top pixel and ``+1`` at the centre of the
right/bottom pixel (``make_coordinate_grid``). Images are ``B x 3 x H x W`` float tensors in ``[0, 1]``, RGB.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is for annotations only: option parsing (batch, server) does not import it
    import torch
    from torch import Tensor


@dataclass(frozen=True)
class Keypoints:
    """Keypoints of a batch of images.

    Attributes:
        value: ``B x K x 2`` positions, ``(x, y)`` in ``[-1, 1]`` (see module docstring).
        jacobian: ``B x K x 2 x 2`` local affine transforms (FOMM), or ``None`` where the model has none (TPSMM).
    """

    value: Tensor
    jacobian: Tensor | None = None

    def __post_init__(self) -> None:
        if self.value.ndim != 3 or self.value.shape[-1] != 2:
            raise ValueError(f"Keypoints.value must be B x K x 2, got {tuple(self.value.shape)}")
        if self.jacobian is not None and self.jacobian.shape != (*self.value.shape, 2):
            raise ValueError(
                f"Keypoints.jacobian must be B x K x 2 x 2 matching value, got {tuple(self.jacobian.shape)}"
            )

    @property
    def num_keypoints(self) -> int:
        return self.value.shape[1]

    def to(self, device: torch.device | str) -> Keypoints:
        jac = None if self.jacobian is None else self.jacobian.to(device)
        return replace(self, value=self.value.to(device), jacobian=jac)

    def detach(self) -> Keypoints:
        jac = None if self.jacobian is None else self.jacobian.detach()
        return replace(self, value=self.value.detach(), jacobian=jac)

    def index(self, item: slice | int) -> Keypoints:
        """Select batch entries, keeping the batch dimension (an ``int`` gives a batch of one)."""
        sel = slice(item, item + 1) if isinstance(item, int) else item
        jac = None if self.jacobian is None else self.jacobian[sel]
        return Keypoints(self.value[sel], jac)

    def expand(self, batch: int) -> Keypoints:
        """Repeat a batch of one ``batch`` times (views, no copy)."""
        if self.value.shape[0] == batch:
            return self
        if self.value.shape[0] != 1:
            raise ValueError(f"can only expand a batch of one, got {self.value.shape[0]}")
        jac = None if self.jacobian is None else self.jacobian.expand(batch, -1, -1, -1)
        return Keypoints(self.value.expand(batch, -1, -1), jac)


class LandmarkKind(StrEnum):
    """Landmarks MediaPipe finds outside the models, stored beside training clips and computed by the animator.

    ``face_mesh``: the face mesh's 468 points (:mod:`enliven.face_mesh`); ``pose``: the body's 33 pose points
    (:mod:`enliven.pose`). A clip's sidecar is ``<split>/<clip name><suffix>``: ``T x N x 2`` float32 pixel
    positions of the stored frames, a NaN row where nothing was found.
    """

    FACE_MESH = "face_mesh"
    POSE = "pose"

    @property
    def num_points(self) -> int:
        """Points per frame: 468 or 33."""
        return 468 if self is LandmarkKind.FACE_MESH else 33

    @property
    def suffix(self) -> str:
        """The sidecar's file name suffix: ``.face_mesh.npy`` or ``.pose.npy``."""
        return f".{self.value}.npy"

    @property
    def subject(self) -> str:
        """What the landmarks are found on, for messages: ``a face`` or ``a person``."""
        return "a face" if self is LandmarkKind.FACE_MESH else "a person"


class MotionMode(StrEnum):
    """How driving keypoints move the source.

    ``relative``: the source keypoints move by the driving frame's displacement from a reference driving
    frame (FOMM ``--relative``, TPSMM ``relative``); ``absolute``: the driving keypoints are used as they are
    (FOMM's default, TPSMM ``standard``); ``avd``: TPSMM's animation-via-disentanglement network.
    """

    RELATIVE = "relative"
    ABSOLUTE = "absolute"
    AVD = "avd"


@dataclass(frozen=True)
class MotionField:
    """Dense motion from the driving frame back to the source (FOMM Eq. 4: ``T_{s<-d}(z)``).

    Attributes:
        deformation: ``B x h x w x 2`` sampling grid into the source, ``(x, y)`` in ``[-1, 1]``.
        occlusion: occlusion maps in ``[0, 1]``, each ``B x 1 x h_i x w_i`` (FOMM: one; TPSMM: one per scale).
        mask: ``B x (K + 1) x h x w`` soft assignment of each pixel to the background and each motion, or ``None``.
    """

    deformation: Tensor
    occlusion: tuple[Tensor, ...] = ()
    mask: Tensor | None = None


@dataclass(frozen=True)
class GeneratorOutput:
    """What a generator returns for one batch of driving frames.

    Attributes:
        prediction: ``B x 3 x H x W`` animated frames in ``[0, 1]``.
        motion: the dense motion used.
        deformed: ``B x 3 x H x W`` the source warped by the motion, before inpainting (for visualisation), or ``None``.
    """

    prediction: Tensor
    motion: MotionField
    deformed: Tensor | None = None
