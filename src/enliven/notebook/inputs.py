"""What the notebook's studio holds: the photo and the clip as the model sees them, the user's box adjustment, a
previewed frame; and how a photo and a clip are cut for it (with the crop a render uses)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from enliven.errors import InputError
from enliven.inference import Animator, FaceCropper
from enliven.inference.driving import DrivingClip, box_at
from enliven.inference.pipeline import ProgressCallback
from enliven.preprocess import Box, resize_image
from enliven.types import Keypoints


@dataclass(frozen=True)
class BoxAdjustment:
    """The user's change to the detected crop box.

    Attributes:
        shift_x: move right by this fraction of the box's side (``-0.5 .. 0.5``).
        shift_y: move down by this fraction of the box's side (``-0.5 .. 0.5``).
        scale: the side multiplied by this (``0.5 .. 2``; larger shows more around the face).
    """

    shift_x: float = 0.0
    shift_y: float = 0.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not (-0.5 <= self.shift_x <= 0.5 and -0.5 <= self.shift_y <= 0.5):
            raise ValueError(f"box shifts must be between -0.5 and 0.5, got {self.shift_x}, {self.shift_y}")
        if not 0.5 <= self.scale <= 2.0:
            raise ValueError(f"the box scale must be between 0.5 and 2, got {self.scale}")

    def apply(self, box: Box) -> Box:
        """``box`` moved and scaled (it may reach outside the image: the crop pads there, as paste-back allows)."""
        side_x, side_y = box.x1 - box.x0, box.y1 - box.y0
        cx = (box.x0 + box.x1) / 2 + self.shift_x * side_x
        cy = (box.y0 + box.y1) / 2 + self.shift_y * side_y
        return Box.from_center(cx, cy, side_x * self.scale, side_y * self.scale)


@dataclass(frozen=True, eq=False)
class Photo:
    """The source photo as the model sees it.

    Attributes:
        name: what to call it (the file name).
        image: the whole photo, ``H x W x 3`` uint8 RGB.
        detected: the crop box found around the face (``None``: the photo is taken whole).
        box: the box used: ``detected`` after the user's :class:`BoxAdjustment`.
        crop: the model's input, ``size x size x 3`` uint8.
    """

    name: str
    image: np.ndarray
    detected: Box | None
    box: Box | None
    crop: np.ndarray


@dataclass(frozen=True, eq=False)
class Clip:
    """The driving clip, cut and tracked for previews.

    Attributes:
        name: what to call it (the file name).
        path: the video file (a render reads it again, with its sound).
        fps: frames per second.
        length: frames in the clip.
        frame_indices: the clip frames the preview holds: all of them, or evenly spaced ones for a long clip.
        crops: those frames as the model sees them, ``N x size x size x 3`` uint8.
        keypoints: their driving keypoints (``N x K x 2``; face-mesh rows are NaN before the first face).
        boxes: the crop boxes in the clip's pixels (one stable box, one per frame, or ``None``: whole frames).
    """

    name: str
    path: Path
    fps: float
    length: int
    frame_indices: tuple[int, ...]
    crops: np.ndarray
    keypoints: Keypoints
    boxes: list[Box] | None


@dataclass(frozen=True, eq=False)
class Preview:
    """One animated frame and what made it.

    Attributes:
        position: the slider position (an index into :attr:`Clip.frame_indices`).
        frame: the clip's frame number.
        source: the photo's crop, ``size x size x 3``.
        driving: the driving frame's crop, ``size x size x 3``.
        result: the animated crop, or with paste-back the photo (at most ``max_preview_side``) with it pasted in.
        seconds: time taken by the model and paste-back (not by the caches rebuilt first).
    """

    position: int
    frame: int
    source: np.ndarray
    driving: np.ndarray
    result: np.ndarray
    seconds: float


def shrunk(image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """``image`` shrunk (area-averaged) to at most ``side`` pixels on its longer side, and the factor used (1: as
    it was)."""
    height, width = image.shape[:2]
    factor = min(1.0, side / max(height, width))
    if factor == 1.0:
        return image, 1.0
    return resize_image(image, (round(width * factor), round(height * factor))), factor


def cut_photo(image: np.ndarray, name: str, cropper: FaceCropper, adjustment: BoxAdjustment) -> Photo:
    """The photo's face found by ``cropper`` (the box a render finds), moved by ``adjustment``, and cut.

    Raises:
        NoFaceError / FaceTooSmallError: no usable face (face models with crop).
    """
    detected = cropper.source_box(image, f"the photo {name}")
    box = adjustment.apply(detected) if detected is not None else None
    return Photo(name, image, detected, box, cropper.cut(image, box))


def cut_clip(
    path: Path,
    name: str,
    animator: Animator,
    cropper: FaceCropper,
    *,
    smooth_track: bool,
    memory_budget_mb: int,
    preview_memory_mb: int,
    on_progress: ProgressCallback | None = None,
) -> Clip:
    """Decode ``path``, find its crop boxes as a render does, keep the crops of at most ``preview_memory_mb`` MiB of
    evenly spaced frames (all of a short clip) and track their keypoints with ``animator`` in clip order
    (``on_progress(done, total)`` over both passes).

    Raises:
        InputError: unreadable or empty; NoFaceError: no face in it (face models with crop).
    """
    drive = DrivingClip(path, memory_budget_mb)
    boxes = cropper.clip_boxes(drive.first_pass(), smooth_track=smooth_track, what=f"the clip {name}")
    length = drive.length if drive.length is not None else sum(1 for _ in drive.frames())
    if length == 0:
        raise InputError(f"the clip {name} has no frames; pick another clip.")
    most = max(2, preview_memory_mb * 2**20 // (animator.size * animator.size * 3))
    indices = tuple(int(i) for i in np.unique(np.linspace(0, length - 1, min(length, most)).round()))
    wanted = set(indices)
    crops: list[np.ndarray] = []
    for index, frame in enumerate(drive.frames()):
        if index in wanted:
            crops.append(cropper.cut(frame, box_at(boxes, index)))
            if on_progress is not None:
                on_progress(len(crops), 2 * len(indices))
    if not crops:
        raise InputError(f"the clip {name} could not be read again; is it still being written?")
    indices = indices[: len(crops)]
    stack = np.stack(crops)
    animator.restart_tracking()  # tracked from the clip's first frame, in order, as a render tracks it
    parts = []
    for start in range(0, len(stack), 16):
        parts.append(animator.driving_keypoints(stack[start : start + 16]))
        if on_progress is not None:
            on_progress(len(indices) + min(start + 16, len(stack)), 2 * len(indices))
    jacobians = [p.jacobian for p in parts if p.jacobian is not None]
    keypoints = Keypoints(torch.cat([p.value for p in parts]), torch.cat(jacobians) if jacobians else None)
    return Clip(name, path, float(drive.fps), length, indices, stack, keypoints, boxes)


def safe_name(name: str) -> tuple[str, str]:
    """A file stem and suffix safe to write (no folders, no odd characters) from an uploaded file's name."""
    base = Path(name.replace("\\", "/")).name
    stem, suffix = Path(base).stem, Path(base).suffix.lower()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "upload"
    suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ""
    return stem[:80], suffix
