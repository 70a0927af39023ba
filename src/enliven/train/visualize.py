"""What a training run shows: image grids of the objectives' :class:`Visuals` and a TensorBoard writer.

A grid has one row per sample and the columns ``source | driving | keypoints | deformed | occlusion | output``;
the keypoints column is the driving frame, dimmed, with the driving keypoints drawn as dots in one colour per
keypoint and the source keypoints as smaller dots of the same colour.
"""

from __future__ import annotations

import colorsys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from enliven._tensorflow import tensorflow_hidden
from enliven.errors import EnlivenError

if TYPE_CHECKING:
    from enliven.train.objectives import Visuals

COLUMNS = ("source", "driving", "keypoints", "deformed", "occlusion", "output")


def keypoint_colours(count: int) -> Tensor:
    """``count x 3`` RGB colours in ``[0, 1]``, spread around the hue circle."""
    return torch.tensor([colorsys.hsv_to_rgb(i / max(count, 1), 1.0, 1.0) for i in range(count)])


def draw_keypoints(images: Tensor, keypoints: Tensor, radius: float, colours: Tensor | None = None) -> Tensor:
    """Paint filled discs on images.

    Args:
        images: ``B x 3 x H x W`` in ``[0, 1]``.
        keypoints: ``B x K x 2``, ``(x, y)`` in ``[-1, 1]`` (pixel centres at -1 and +1).
        radius: disc radius in pixels.
        colours: ``K x 3`` colours; by default :func:`keypoint_colours`.

    Returns:
        A new ``B x 3 x H x W`` tensor; a later keypoint paints over an earlier one.
    """
    batch, _, height, width = images.shape
    count = keypoints.shape[1]
    colours = (keypoint_colours(count) if colours is None else colours).to(images)
    ys = torch.arange(height, device=images.device, dtype=images.dtype)
    xs = torch.arange(width, device=images.device, dtype=images.dtype)
    px = (keypoints[..., 0].to(images) + 1) * (width - 1) / 2  # B x K
    py = (keypoints[..., 1].to(images) + 1) * (height - 1) / 2
    dist2 = (ys.view(1, 1, -1, 1) - py[..., None, None]) ** 2 + (xs.view(1, 1, 1, -1) - px[..., None, None]) ** 2
    out = images.clone()
    inside = dist2 <= radius**2  # B x K x H x W
    for k in range(count):
        mask = inside[:, k : k + 1]
        out = torch.where(mask, colours[k].view(1, 3, 1, 1).expand(batch, 3, height, width), out)
    return out


def _fit(image: Tensor | None, like: Tensor) -> Tensor:
    """``image`` as ``B x 3 x H x W`` at ``like``'s size (grey maps repeated, missing ones black)."""
    if image is None:
        return torch.zeros_like(like)
    image = image.detach().to(like)
    if image.shape[-2:] != like.shape[-2:]:
        image = F.interpolate(image, size=like.shape[-2:], mode="bilinear", align_corners=False)
    if image.shape[1] == 1:
        image = image.expand(-1, 3, -1, -1)
    return image.clamp(0, 1)


def visuals_grid(visuals: Visuals, max_rows: int = 4) -> Tensor:
    """One ``3 x (rows*H) x (6*W)`` image of the first ``max_rows`` samples (see the module docstring)."""
    rows = min(max_rows, visuals.source.shape[0])
    driving = visuals.driving[:rows].detach().float().clamp(0, 1)
    radius = max(1.5, driving.shape[-1] / 64)
    colours = keypoint_colours(visuals.kp_driving.shape[1])
    kp_image = draw_keypoints(driving * 0.5, visuals.kp_source[:rows].detach(), radius * 0.6, colours)
    kp_image = draw_keypoints(kp_image, visuals.kp_driving[:rows].detach(), radius, colours)
    columns = [
        _fit(visuals.source[:rows], driving),
        driving,
        kp_image,
        _fit(None if visuals.deformed is None else visuals.deformed[:rows], driving),
        _fit(None if visuals.occlusion is None else visuals.occlusion[:rows], driving),
        _fit(visuals.prediction[:rows], driving),
    ]
    grid = torch.cat(columns, dim=3)  # rows x 3 x H x 6W
    return torch.cat(list(grid), dim=1).cpu()


class TrainingLog:
    """TensorBoard scalars and images, written by rank 0 only (other ranks get a log that does nothing).

    Args:
        folder: the event-file folder (``RUN_DIR/tensorboard``), or ``None`` for a log that writes nothing.
    """

    def __init__(self, folder: Path | None) -> None:
        self.writer = None
        if folder is not None:
            try:
                with tensorflow_hidden("torch.utils.tensorboard"):  # its own stub, not seconds of TensorFlow
                    from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise EnlivenError("training logs need TensorBoard; install enliven's 'train' extra.") from None
            self.writer = SummaryWriter(log_dir=str(folder))

    def scalars(self, values: Mapping[str, float], step: int, prefix: str = "") -> None:
        if self.writer is None:
            return
        for name, value in values.items():
            self.writer.add_scalar(f"{prefix}{name}", value, step)

    def image(self, name: str, image: Tensor, step: int) -> None:
        """Log a ``3 x H x W`` image in ``[0, 1]``."""
        if self.writer is not None:
            self.writer.add_image(name, image.clamp(0, 1), step)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
