"""The interface every motion-transfer family implements, so that the animator is family-agnostic.

A family (FOMM, TPSMM, ...) is an ``nn.Module`` holding its inference networks under the names its
checkpoints use. Work that depends only on the source image is done once by :meth:`encode_source`;
:meth:`generate` then animates any number of driving frames from that encoding.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from torch import Tensor, nn

from enliven.models.motion_transfer import keep_mesh_whole, relative_keypoints, retarget_openings
from enliven.types import GeneratorOutput, Keypoints, LandmarkKind, MotionMode


class KeypointSource(StrEnum):
    """Where a model's keypoints come from.

    ``learned``: the model's own detector (:meth:`MotionTransferModel.detect_keypoints`; FOMM, TPSMM).
    ``face_mesh``: MediaPipe face-mesh landmarks computed outside the model (``B x 468 x 2``, normalised, see
    :mod:`enliven.face_mesh`) and passed in; the animator computes them, training reads them from the dataset.
    ``pose``: the same for MediaPipe's 33 body pose landmarks (``B x 33 x 2``, :mod:`enliven.pose`).
    """

    LEARNED = "learned"
    FACE_MESH = "face_mesh"
    POSE = "pose"

    @property
    def landmarks(self) -> LandmarkKind | None:
        """The MediaPipe landmarks found outside the model (face mesh, pose), or ``None`` for a model's own."""
        return None if self is KeypointSource.LEARNED else LandmarkKind(self.value)


@dataclass(frozen=True)
class SourceEncoding:
    """Everything computed from the source alone. Families subclass it to add their cached features.

    Attributes:
        image: ``1 x 3 x H x W`` source in ``[0, 1]``.
        keypoints: the source's keypoints (batch 1).
    """

    image: Tensor
    keypoints: Keypoints


class MotionTransferModel(nn.Module, ABC):
    """Keypoint detector + dense motion + generator, for inference.

    Subclasses set ``family`` and keep their config in ``self.config`` (a frozen dataclass with
    ``image_size`` and ``to_yaml_dict()``).
    """

    family: ClassVar[str]
    keypoint_source: ClassVar[KeypointSource] = KeypointSource.LEARNED
    supported_modes: ClassVar[tuple[MotionMode, ...]] = (MotionMode.RELATIVE, MotionMode.ABSOLUTE)
    #: ``encode_source`` takes ``detail=``, the source at another resolution (the photo's own), and predictions are
    #: then composed at that resolution (the source's own texture warped there): paste-back stays sharp.
    composes_detail: ClassVar[bool] = False

    @property
    def image_size(self) -> int:
        """Side of the square images the model works at (e.g. 256)."""
        return int(self.config.image_size)  # type: ignore[attr-defined]

    @property
    def num_channels(self) -> int:
        """Image channels (3 for RGB)."""
        return int(self.config.num_channels)  # type: ignore[attr-defined]

    @abstractmethod
    def detect_keypoints(self, image: Tensor) -> Keypoints:
        """Keypoints of ``B x 3 x H x W`` images in ``[0, 1]`` (``learned`` keypoint source only)."""

    @abstractmethod
    def encode_source(self, source: Tensor, keypoints: Keypoints | None = None) -> SourceEncoding:
        """Compute everything that depends only on the ``1 x 3 x H x W`` source.

        Args:
            source: the source image.
            keypoints: the source's keypoints; detected when ``None`` (required for ``face_mesh`` models).
        """

    def host_source_inputs(self, keypoints: Keypoints) -> dict[str, Tensor]:
        """Source-only values no graph can compute (a solver's output), by name; ``encode_source`` computes them
        itself when not given them as further arguments, and exported encoder graphs take them as inputs.
        Keypoints of the ``1 x 3 x H x W`` source in, none for most families."""
        return {}

    @abstractmethod
    def generate(self, encoding: SourceEncoding, kp_driving: Keypoints) -> GeneratorOutput:
        """Animate the encoded source (batch 1) to B sets of (already transferred) driving keypoints."""

    def transfer_motion(
        self,
        kp_source: Keypoints,
        kp_driving: Keypoints,
        kp_reference: Keypoints | None,
        mode: MotionMode,
        scale: float = 1.0,
    ) -> Keypoints:
        """Turn driving keypoints into the keypoints the generator is driven with (relative motion of face-mesh
        landmarks retargets the eyelids and lips as openings,
        :func:`~enliven.models.motion_transfer.retarget_openings`, and keeps the mesh from tearing,
        :func:`~enliven.models.motion_transfer.keep_mesh_whole`).

        Args:
            kp_source: source keypoints (batch 1).
            kp_driving: keypoints of B driving frames.
            kp_reference: the reference driving frame's keypoints (batch 1); needed by ``relative``.
            mode: see :class:`~enliven.types.MotionMode`.
            scale: movement scale for ``relative`` (1 = none).
        """
        if mode not in self.supported_modes:
            names = ", ".join(m.value for m in self.supported_modes)
            raise ValueError(f"{self.family} models support the modes {names}, not {mode.value}")
        if mode is MotionMode.ABSOLUTE:
            return kp_driving
        if mode is MotionMode.RELATIVE:
            if kp_reference is None:
                raise ValueError("relative motion needs the reference driving keypoints")
            moved = relative_keypoints(kp_source, kp_driving, kp_reference, scale=scale)
            if self.keypoint_source is KeypointSource.FACE_MESH:  # lids and lips that never pass through each other,
                opened = retarget_openings(moved.value, kp_source.value, kp_driving.value, kp_reference.value)
                return Keypoints(keep_mesh_whole(opened, kp_source.value))  # and a face that is never torn apart
            return moved
        raise NotImplementedError(f"{type(self).__name__} does not implement mode {mode.value}")
