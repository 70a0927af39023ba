"""``Animator``: encode a source once, then animate it frame by frame.

    >>> animator = Animator.from_pretrained("fomm-vox")          # doctest: +SKIP
    >>> animator.set_source(photo)                               # H x W x 3 uint8 RGB
    >>> for frame in driving_frames:                             # H x W x 3 uint8 RGB
    ...     out = animator(frame)                                # size x size x 3 uint8 RGB

Frames are taken as they are (already cropped) and resized to the model's size. Relative motion is measured
against a reference driving frame: the first frame animated after :meth:`Animator.set_source` unless
:meth:`Animator.set_reference` chose another (e.g. the best-matching frame). Nothing is kept per frame, so memory
does not grow with video length.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from enliven.config import ModelConfig
from enliven.models.base import MotionTransferModel, SourceEncoding
from enliven.models.loader import load_model
from enliven.models.motion_transfer import movement_scale
from enliven.types import GeneratorOutput, Keypoints, MotionMode


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        from enliven.errors import EnlivenError

        raise EnlivenError("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto.")
    return resolved


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
        self.model = model.to(self.device).eval()
        self.mode = MotionMode(mode)
        if self.mode not in model.supported_modes:
            names = ", ".join(m.value for m in model.supported_modes)
            raise ValueError(f"{model.family} models support the modes {names}, not {self.mode.value}")
        self.adapt_scale = adapt_scale
        self.size = int(size or model.image_size)
        self._source: SourceEncoding | None = None
        self._reference: Keypoints | None = None
        self._scale = 1.0

    @classmethod
    def from_pretrained(
        cls, model: str | Path | None = None, config: str | Path | ModelConfig | None = None, **kwargs: object
    ) -> Animator:
        """Load a preset or checkpoint (see :func:`enliven.models.loader.load_model`) into an animator."""
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
    def set_source(self, image: np.ndarray | Tensor) -> None:
        """Encode the source once (``H x W x 3`` uint8 or ``1 x 3 x H x W`` float); forget the reference frame."""
        self._source = self.model.encode_source(self.to_tensor(image)[:1])
        self.reset_reference()

    @torch.inference_mode()
    def set_reference(self, frame: np.ndarray | Tensor) -> None:
        """Measure relative motion against this driving frame (default: the first frame animated)."""
        self._set_reference_keypoints(self.model.detect_keypoints(self.to_tensor(frame)[:1]))

    def reset_reference(self) -> None:
        """Make the next animated frame the reference again."""
        self._reference = None
        self._scale = 1.0

    @property
    def has_source(self) -> bool:
        return self._source is not None

    def _set_reference_keypoints(self, keypoints: Keypoints) -> None:
        assert self._source is not None
        self._reference = keypoints
        adapt = self.adapt_scale and self.mode is MotionMode.RELATIVE
        self._scale = movement_scale(self._source.keypoints, keypoints) if adapt else 1.0

    # -- animation -------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def animate(self, frames: Tensor) -> GeneratorOutput:
        """Animate a batch of driving frames (``B x 3 x size x size`` in ``[0, 1]`` on the device)."""
        if self._source is None:
            raise RuntimeError("call set_source() before animating")
        kp_driving = self.model.detect_keypoints(frames)
        if self._reference is None:
            self._set_reference_keypoints(kp_driving.index(0))
        kp = self.model.transfer_motion(
            self._source.keypoints, kp_driving, self._reference, self.mode, scale=self._scale
        )
        return self.model.generate(self._source, kp)

    def __call__(self, frames: np.ndarray | Sequence[np.ndarray] | Tensor) -> np.ndarray:
        """Animate one frame (``H x W x 3`` uint8 -> ``size x size x 3``) or a batch (``N x H x W x 3``)."""
        single = isinstance(frames, np.ndarray) and frames.ndim == 3
        out = self.to_uint8(self.animate(self.to_tensor(frames)).prediction)
        return out[0] if single else out
