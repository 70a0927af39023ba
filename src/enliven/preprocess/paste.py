"""Paste an animated crop back into the full-resolution frame with soft edges."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from enliven.preprocess._deps import import_cv2
from enliven.preprocess.boxes import Box
from enliven.preprocess.resize import resize_image


@lru_cache(maxsize=32)
def _ramp(length: int, width: float, soft_start: bool, soft_end: bool) -> np.ndarray:
    """1-D feather profile over ``length`` pixels: 0 -> 1 over ``width`` pixels at each soft end (smoothstep)."""
    centres = np.arange(length, dtype=np.float32) + 0.5
    dist = np.full(length, np.inf, dtype=np.float32)
    if soft_start:
        dist = np.minimum(dist, centres)
    if soft_end:
        dist = np.minimum(dist, length - centres)
    t = np.clip(dist / width, 0.0, 1.0) if width > 0 else np.ones(length, dtype=np.float32)
    out = t * t * (3 - 2 * t)
    out.flags.writeable = False
    return out


def feather_mask(
    width: int, height: int, feather: float, soft_edges: tuple[bool, bool, bool, bool] = (True,) * 4
) -> np.ndarray:
    """Blend weights for a ``width x height`` patch, fading to 0 at its edges.

    Args:
        width: patch width in pixels.
        height: patch height in pixels.
        feather: fade width as a fraction of the patch's shorter side, in ``[0, 0.5]``.
        soft_edges: which of the ``(left, top, right, bottom)`` edges fade; a hard edge keeps weight 1.

    Returns:
        ``height x width`` float32 weights in ``[0, 1]`` (separable: product of two smoothstep ramps).
    """
    if not 0.0 <= feather <= 0.5:
        raise ValueError(f"feather must be in [0, 0.5], got {feather}")
    fade = feather * min(width, height)
    left, top, right, bottom = soft_edges
    return _ramp(height, fade, top, bottom)[:, None] * _ramp(width, fade, left, right)[None, :]


def paste_back(
    full_image: np.ndarray, animated_crop: np.ndarray, box: Box, feather: float = 0.1, mask: np.ndarray | None = None
) -> np.ndarray:
    """Blend an animated crop into a copy of the full image, where it was cut out.

    The crop is resized to the box (rounded to whole pixels like :func:`crop_and_resize`) and blended with
    a mask fading over ``feather`` times the box side at the box edges, so no seam shows. Edges of the box
    beyond the image border are not faded (the crop continues right to the image edge there). Pixels
    outside the box are left unchanged.

    Args:
        full_image: ``H x W x 3`` uint8 image (not modified).
        animated_crop: ``S x S x 3`` uint8 crop (any size; it is resized to the box).
        box: where the crop came from, in ``full_image`` pixels; it may extend past the image.
        feather: fade width as a fraction of the box side, in ``[0, 0.5]``; 0 gives a hard paste.
        mask: optional ``M x M`` float32 weights in ``[0, 1]`` over the crop (e.g. a soft face outline; resized to
            the box), multiplied with the edge fade: only the masked part is pasted.

    Returns:
        ``H x W x 3`` uint8 image.
    """
    if full_image.ndim != 3 or animated_crop.ndim != 3 or full_image.shape[2] != animated_crop.shape[2]:
        raise ValueError(f"images must be H x W x C with equal C, got {full_image.shape} and {animated_crop.shape}")
    if full_image.dtype != np.uint8 or animated_crop.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {full_image.dtype} and {animated_crop.dtype}")
    h, w = full_image.shape[:2]
    ibox = box.to_int()
    out = full_image.copy()
    x0, y0, x1, y1 = max(ibox.x0, 0), max(ibox.y0, 0), min(ibox.x1, w), min(ibox.y1, h)
    if x1 <= x0 or y1 <= y0:
        return out
    patch = resize_image(animated_crop, (ibox.width, ibox.height))
    patch = patch[y0 - ibox.y0 : y1 - ibox.y0, x0 - ibox.x0 : x1 - ibox.x0]
    soft = (ibox.x0 >= 0, ibox.y0 >= 0, ibox.x1 <= w, ibox.y1 <= h)
    weights = feather_mask(ibox.width, ibox.height, feather, soft)
    if mask is not None:
        weights = weights * import_cv2().resize(
            mask, (ibox.width, ibox.height), interpolation=import_cv2().INTER_LINEAR
        )
    mask = np.ascontiguousarray(weights[y0 - ibox.y0 : y1 - ibox.y0, x0 - ibox.x0 : x1 - ibox.x0], dtype=np.float32)
    region = np.ascontiguousarray(out[y0:y1, x0:x1])
    # OpenCV's weighted sum runs in one multithreaded pass, ~15x faster than the same blend in numpy floats.
    blended = import_cv2().blendLinear(np.ascontiguousarray(patch), region, mask, 1.0 - mask)
    out[y0:y1, x0:x1] = blended.reshape(region.shape)
    return out
