"""``Animator``: encode a source once, then animate it frame by frame (or by keypoints).

    >>> animator = Animator.from_pretrained("fomm-vox")          # doctest: +SKIP
    >>> animator.set_source(photo)                               # H x W x 3 uint8 RGB
    >>> for frame in driving_frames:                             # H x W x 3 uint8 RGB
    ...     out = animator(frame)                                # size x size x 3 uint8 RGB

Frames are taken as they are (already cropped) and resized to the model's size. Relative motion is measured
against a reference driving frame: the first frame animated after :meth:`Animator.set_source` unless
:meth:`Animator.set_reference` chose another (e.g. the best-matching frame). Nothing is kept per frame, so memory
does not grow with video length. Models driven by MediaPipe landmarks (enliven-lite: the face mesh; enliven-body: the
pose) get them from a :class:`~enliven.inference.landmarks.LandmarkTracker`, which finds the face mesh in each frame
and follows the body from frame to frame, and keeps the last landmarks found where a frame has none: feed one clip's
frames in order, and call :meth:`Animator.set_source` (or :meth:`Animator.restart_tracking`) before another clip.
Motion that does not come from frames (generated, edited, or landmarks found elsewhere) drives the same renderer
through :meth:`Animator.animate_keypoints`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from enliven.config import ModelConfig
from enliven.models.base import MotionTransferModel, SourceEncoding
from enliven.models.motion_transfer import movement_scale
from enliven.types import GeneratorOutput, Keypoints, LandmarkKind, MotionMode

if TYPE_CHECKING:
    from enliven.inference.landmarks import LandmarkTracker
    from enliven.preprocess.person import PersonSegmenter


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        from enliven.errors import EnlivenError

        raise EnlivenError("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto.")
    return resolved


@torch.inference_mode()
def landmark_kind(model: MotionTransferModel) -> LandmarkKind | None:
    """The landmarks a model is driven by when MediaPipe finds them outside it (face mesh, pose), else ``None``."""
    return model.keypoint_source.landmarks


def check_runs_at(model: MotionTransferModel, size: int) -> None:
    """Run ``model`` once on a blank ``size x size`` source and frame, so that a size its networks cannot take (their
    down- and up-sampling must meet again) is one clear sentence before any work, not a traceback mid-clip.

    Raises:
        InputError: the model fails at that size.
    """
    from enliven.errors import InputError

    device = next(iter(model.parameters()), torch.empty(0)).device
    image = torch.zeros(1, 3, size, size, device=device)
    keypoints = None
    kind = landmark_kind(model)
    if kind is not None:  # a grid of as many points stands in for the landmarks
        side = int(np.ceil(np.sqrt(kind.num_points)))
        grid = torch.stack(torch.meshgrid(*[torch.linspace(-0.5, 0.5, side)] * 2, indexing="xy"), -1)
        keypoints = Keypoints(grid.reshape(1, -1, 2)[:, : kind.num_points].to(device))
    try:
        encoding = model.encode_source(image, keypoints)
        model.generate(encoding, keypoints if keypoints is not None else model.detect_keypoints(image))
    except (RuntimeError, ValueError) as err:
        raise InputError(
            f"this {model.family} model cannot run at {size}x{size} (its networks halve the image several times and "
            f"the sizes no longer meet); leave out --size to run at its own {model.image_size}, or use a multiple of "
            "128."
        ) from err


class Animator:
    """Animate one source image with driving frames.

    Args:
        model: a motion-transfer model (moved to ``device`` and put in eval mode).
        device: ``auto``, ``cpu``, ``cuda`` or a ``torch.device``.
        mode: relative (default), absolute, or avd (TPSMM).
        adapt_scale: in relative mode, scale the movement by the ratio of the source's and the reference
            frame's keypoint hulls (FOMM ``--adapt_scale``).
        size: side of the square images the model runs at (default: the model's own).
    """

    def __init__(
        self,
        model: MotionTransferModel,
        *,
        device: str | torch.device = "auto",
        mode: MotionMode | str = MotionMode.RELATIVE,
        adapt_scale: bool = True,
        size: int | None = None,
    ) -> None:
        self.device = resolve_device(device)
        if self.device.type == "cpu":
            from enliven.inference.allocator import keep_freed_memory

            keep_freed_memory()  # a frame's temporaries reuse freed memory instead of fresh pages
        self.model = model.to(self.device).eval()
        self.mode = MotionMode(mode)
        if self.mode not in model.supported_modes:
            names = ", ".join(m.value for m in model.supported_modes)
            raise ValueError(f"{model.family} models support the modes {names}, not {self.mode.value}")
        self.adapt_scale = adapt_scale
        self.size = int(size or model.image_size)
        if self.size != model.image_size:
            check_runs_at(self.model, self.size)
        self._source: SourceEncoding | None = None
        self._reference: Keypoints | None = None
        self._scale = 1.0
        self._landmark_kind = landmark_kind(model)
        self._face_mesh = self._landmark_kind is LandmarkKind.FACE_MESH
        self._tracker: LandmarkTracker | None = None  # made on first use: landmarks given from outside need none
        self._segmenter: PersonSegmenter | None = None  # made on first use, for models that take a plate

    @property
    def uses_face_mesh(self) -> bool:
        """Whether the model is driven by MediaPipe face-mesh landmarks (468 points) instead of its own detector."""
        return self._face_mesh

    @property
    def landmark_kind(self) -> LandmarkKind | None:
        """The landmarks MediaPipe finds for the model (face mesh, pose), or ``None`` for a model's own keypoints."""
        return self._landmark_kind

    def _mesh(self) -> LandmarkTracker:
        if self._tracker is None:
            from enliven.inference.landmarks import LandmarkTracker

            assert self._landmark_kind is not None
            self._tracker = LandmarkTracker(self._landmark_kind)
        return self._tracker

    def _on_device(self, points: np.ndarray) -> Keypoints:
        return Keypoints(torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)).to(self.device))

    @classmethod
    def from_pretrained(
        cls, model: str | Path | None = None, config: str | Path | ModelConfig | None = None, **kwargs: object
    ) -> Animator:
        """Load a preset or checkpoint (see :func:`enliven.weights.load_model`) into an animator."""
        from enliven.weights import load_model

        return cls(load_model(model, config).model, **kwargs)  # type: ignore[arg-type]

    # -- conversions -----------------------------------------------------------------------------------------
    def to_tensor(self, images: np.ndarray | Sequence[np.ndarray] | Tensor) -> Tensor:
        """Turn ``H x W x 3`` / ``N x H x W x 3`` uint8 RGB (or a float tensor ``N x 3 x H x W`` in ``[0, 1]``)
        into an ``N x 3 x size x size`` float tensor in ``[0, 1]`` on the animator's device."""
        if isinstance(images, Tensor):
            batch = images.to(self.device, torch.float32)
            if batch.ndim == 3:
                batch = batch[None]
        else:
            array = np.asarray(images)
            if array.ndim == 3:
                array = array[None]
            if array.ndim != 4 or array.shape[-1] != 3:
                raise ValueError(f"expected H x W x 3 or N x H x W x 3 RGB images, got shape {array.shape}")
            if array.dtype != np.uint8:
                raise ValueError(f"expected uint8 images, got {array.dtype}")
            if not array.flags.writeable or not array.flags.c_contiguous:
                array = np.array(array, order="C")  # torch wants writable, contiguous memory
            batch = torch.from_numpy(array).to(self.device)
            batch = batch.permute(0, 3, 1, 2).float().div_(255.0)
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected N x 3 x H x W images, got {tuple(batch.shape)}")
        if batch.shape[-2:] != (self.size, self.size):
            batch = F.interpolate(
                batch, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False
            ).clamp_(0, 1)
        return batch

    @staticmethod
    def to_uint8(images: Tensor) -> np.ndarray:
        """``N x 3 x H x W`` float in ``[0, 1]`` to ``N x H x W x 3`` uint8."""
        return images.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    # -- state -----------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def set_source(
        self, image: np.ndarray | Tensor, landmarks: np.ndarray | None = None, *, detail: np.ndarray | None = None
    ) -> None:
        """Encode the source once (``H x W x 3`` uint8 or ``1 x 3 x H x W`` float); forget the reference frame.

        Args:
            image: the source.
            landmarks: for face-mesh models, the source's ``468 x 2`` (or ``1 x 468 x 2``) landmarks in ``[-1, 1]``
                when found elsewhere (e.g. by :class:`~enliven.inference.face_worker.FaceWorker`); ``None``: found
                here. Ignored by other models.
            detail: the same crop at another resolution, ``D x D x 3`` uint8 (e.g. cut from the photo at its own
                resolution, for paste-back): models that compose at that resolution
                (:attr:`~enliven.models.base.MotionTransferModel.composes_detail`, enliven-lite) then return
                ``D x D`` frames, the photo's own texture warped there; other models ignore it.

        Raises:
            NoFaceError: the model is driven by face landmarks and the source shows no face.
        """
        source = self.to_tensor(image)[:1]
        keypoints = None
        if self._landmark_kind is not None:
            if self._tracker is not None:
                self._tracker.restart()  # a new source starts a new driving clip
            if landmarks is None:
                landmarks = self._mesh().still(self.to_uint8(source)[0])
            points = np.asarray(landmarks, dtype=np.float32).reshape(1, -1, 2)
            if points.shape[1] != self._landmark_kind.num_points:
                raise ValueError(f"expected {self._landmark_kind.num_points} source landmarks, got {points.shape[1]}")
            keypoints = self._on_device(points)
        extra: dict[str, Tensor] = {}
        if getattr(self.model, "needs_plate", False):  # a body model: the background behind the person, once
            extra["plate"] = self._plate(self.to_uint8(source)[0])
        if detail is not None and self.composes_detail:
            detail_tensor = torch.from_numpy(np.ascontiguousarray(detail)).to(self.device)
            extra["detail"] = detail_tensor.permute(2, 0, 1)[None].float().div_(255.0)
        self._source = self.model.encode_source(source, keypoints, **extra)  # type: ignore[call-arg]
        self.reset_reference()

    def _plate(self, image: np.ndarray) -> Tensor:
        """``1 x 4 x H x W`` the source ``image`` (``H x W x 3`` uint8) with its person painted out, and the person's
        mask (:func:`enliven.preprocess.person.person_plate`)."""
        from enliven.preprocess.person import PersonSegmenter, person_plate

        if self._segmenter is None:
            self._segmenter = PersonSegmenter()
        plate = person_plate(image, self._segmenter.mask(image))
        return torch.from_numpy(plate).to(self.device).permute(2, 0, 1)[None].float().div_(255.0)

    @property
    def composes_detail(self) -> bool:
        """Whether :meth:`set_source` takes ``detail`` (the model composes its frames at the detail's resolution)."""
        return bool(getattr(self.model, "composes_detail", False))

    @torch.inference_mode()
    def set_reference(self, frame: np.ndarray | Tensor) -> None:
        """Measure relative motion against this driving frame (default: the first frame animated)."""
        frame_tensor = self.to_tensor(frame)[:1]
        if self._landmark_kind is None:
            keypoints = self.model.detect_keypoints(frame_tensor)
        else:  # found on its own: the clip's tracking state stays untouched
            keypoints = self._on_device(self._mesh().still(self.to_uint8(frame_tensor)[0]))
        self._set_reference_keypoints(keypoints)

    def set_reference_keypoints(self, keypoints: Keypoints | np.ndarray) -> None:
        """Measure relative motion against these driving keypoints (``1 x K x 2``, or ``K x 2``), e.g. a clip's
        first tracked frame when frames are animated out of order (the notebook's frame slider)."""
        if self._source is None:
            raise RuntimeError("call set_source() before set_reference_keypoints()")
        if not isinstance(keypoints, Keypoints):
            points = np.asarray(keypoints, dtype=np.float32)
            keypoints = self._on_device(points[None] if points.ndim == 2 else points)
        self._set_reference_keypoints(keypoints.to(self.device))

    def restart_tracking(self) -> None:
        """Start a new driving clip: forget the last landmarks found (and the body's track) and the reference."""
        if self._tracker is not None:
            self._tracker.restart()
        self.reset_reference()

    def reset_reference(self) -> None:
        """Make the next animated frame the reference again."""
        self._reference = None
        self._scale = 1.0

    @property
    def has_source(self) -> bool:
        return self._source is not None

    @property
    def reference_keypoints(self) -> np.ndarray | None:
        """The relative-motion reference, ``K x 2`` in ``[-1, 1]``; ``None`` until a reference is chosen (by
        :meth:`set_reference`, :meth:`set_reference_keypoints`, or the first frame animated)."""
        if self._reference is None:
            return None
        return self._reference.value[0].detach().cpu().numpy()

    @property
    def source_keypoints(self) -> np.ndarray | None:
        """The encoded source's keypoints, ``K x 2`` in ``[-1, 1]`` (face-mesh models: its 468 landmarks); ``None``
        before :meth:`set_source`."""
        if self._source is None:
            return None
        return self._source.keypoints.value[0].detach().cpu().numpy()

    def _set_reference_keypoints(self, keypoints: Keypoints) -> None:
        assert self._source is not None
        self._reference = keypoints
        adapt = self.adapt_scale and self.mode is MotionMode.RELATIVE
        self._scale = movement_scale(self._source.keypoints, keypoints) if adapt else 1.0

    # -- animation -------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def animate(self, frames: Tensor, frames_uint8: np.ndarray | None = None) -> GeneratorOutput:
        """Animate a batch of driving frames (``B x 3 x size x size`` in ``[0, 1]`` on the device).

        Args:
            frames: the frames.
            frames_uint8: the same frames as ``B x size x size x 3`` uint8, when the caller has them (face-mesh
                models track landmarks on uint8 frames; this saves converting back).
        """
        if self._source is None:
            raise RuntimeError("call set_source() before animating")
        return self._generate(self._driving_keypoints(frames, frames_uint8))

    @torch.inference_mode()
    def animate_keypoints(self, keypoints: Keypoints | Tensor | np.ndarray, *, transfer: bool = True) -> np.ndarray:
        """Animate the source with driving keypoints instead of frames (generated or edited motion, landmarks found
        elsewhere): the same renderer as :meth:`__call__`.

        Args:
            keypoints: ``B x K x 2`` (or ``K x 2``) driving keypoints in the models' ``[-1, 1]`` convention (see
                :mod:`enliven.types`): for face-mesh models the 468 landmarks of frames of the model's size (e.g.
                :func:`enliven.face_mesh.pixels_to_normalized` of MediaPipe's pixel positions); for learned-keypoint
                models, keypoints as the model's detector gives them (a :class:`Keypoints` with jacobians for FOMM).
            transfer: apply the animator's mode (relative motion against the reference keypoints, which the first
                keypoints given become unless :meth:`set_reference` chose a frame); ``False`` drives the generator
                with the keypoints as they are.

        Returns:
            ``B x size x size x 3`` uint8 frames (``size x size x 3`` for ``K x 2`` input).
        """
        if self._source is None:
            raise RuntimeError("call set_source() before animating")
        single = not isinstance(keypoints, Keypoints) and keypoints.ndim == 2
        if not isinstance(keypoints, Keypoints):
            value = torch.as_tensor(np.asarray(keypoints) if isinstance(keypoints, np.ndarray) else keypoints)
            keypoints = Keypoints(value[None] if single else value)
        keypoints = keypoints.to(self.device)
        expected = self._source.keypoints.num_keypoints
        if keypoints.num_keypoints != expected:
            raise ValueError(f"this model is driven by {expected} keypoints, got {keypoints.num_keypoints}")
        if transfer:
            output = self._generate(keypoints)
        else:
            output = self.model.generate(self._source, keypoints)
        frames = self.to_uint8(output.prediction)
        return frames[0] if single else frames

    @torch.inference_mode()
    def driving_keypoints(self, frames: np.ndarray) -> Keypoints:
        """Keypoints of ``N x H x W x 3`` (or ``H x W x 3``) uint8 driving frames, for :meth:`animate_keypoints`:
        what :meth:`__call__` does before rendering, split off so that a pipeline can find the next frame's keypoints
        (MediaPipe, or the model's detector) while the current frame renders. Face-mesh rows are NaN before the
        clip's first face. Frames go in clip order, as to :meth:`__call__`."""
        array = np.asarray(frames)
        array = array[None] if array.ndim == 3 else array
        at_size = array.shape[1:3] == (self.size, self.size)  # the tracker takes these as they are: no round trip
        return self._driving_keypoints(self.to_tensor(array), array if at_size else None)

    def _generate(self, kp_driving: Keypoints) -> GeneratorOutput:
        """Transfer ``B`` driving keypoints by the animator's mode and generate. Rows of NaN (face-mesh frames before
        the clip's first face) show the source, unmoved."""
        assert self._source is not None
        found = ~kp_driving.value.isnan().flatten(1).any(dim=1)
        rest = self._source.keypoints.value  # frames before the clip's first face show the source, unmoved
        if self._reference is None:
            if not bool(found.any()):
                return self.model.generate(self._source, self._source.keypoints.expand(kp_driving.value.shape[0]))
            self._set_reference_keypoints(kp_driving.index(int(found.float().argmax())))
        kp = self.model.transfer_motion(
            self._source.keypoints, kp_driving, self._reference, self.mode, scale=self._scale
        )
        if not bool(found.all()):
            kp = Keypoints(torch.where(found[:, None, None], kp.value, rest))
        return self.model.generate(self._source, kp)

    def _driving_keypoints(self, frames: Tensor, frames_uint8: np.ndarray | None = None) -> Keypoints:
        """Keypoints of ``B`` driving frames (face-mesh rows are NaN before the clip's first face)."""
        if self._landmark_kind is None:
            return self.model.detect_keypoints(frames)
        return self._on_device(self._mesh().driving(self.to_uint8(frames) if frames_uint8 is None else frames_uint8))

    def close(self) -> None:
        """Release MediaPipe's graphs (landmark and plate models); the animator cannot animate afterwards."""
        if self._tracker is not None:
            self._tracker.close()
        if self._segmenter is not None:
            self._segmenter.close()
            self._segmenter = None

    def __enter__(self) -> Animator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @torch.inference_mode()
    def __call__(self, frames: np.ndarray | Sequence[np.ndarray] | Tensor) -> np.ndarray:
        """Animate one frame (``H x W x 3`` uint8 -> ``size x size x 3``) or a batch (``N x H x W x 3``)."""
        if isinstance(frames, Tensor):
            return self.to_uint8(self.animate(self.to_tensor(frames)).prediction)
        if self._source is None:
            raise RuntimeError("call set_source() before animating")
        single = isinstance(frames, np.ndarray) and frames.ndim == 3
        out = self.to_uint8(self._generate(self.driving_keypoints(frames)).prediction)
        return out[0] if single else out
