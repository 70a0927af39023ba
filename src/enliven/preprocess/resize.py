"""Antialiased resizing and box crops with padding.

Images are ``H x W x C`` ``uint8`` numpy arrays (RGB for this package, though nothing here depends on the
channel order); boxes follow :mod:`enliven.preprocess.boxes`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from enliven.preprocess._deps import import_cv2
from enliven.preprocess.boxes import Box, IntBox

BorderMode = Literal["replicate", "constant", "reflect"]


def _check_image(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"expected an H x W x C image, got shape {image.shape}")


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize with antialiasing: area averaging when shrinking, bicubic when enlarging.

    ``cv2.INTER_AREA`` averages every source pixel under an output pixel, so shrinking (a 1080p face to 256)
    does not alias; bicubic interpolation is the sharper choice for enlarging (Lanczos rings more on the
    hard edges of animated crops).

    Args:
        image: ``H x W x C`` uint8 (or float32) image.
        size: ``(width, height)`` of the output, both ``>= 1``.

    Returns:
        ``height x width x C`` image of the input dtype.
    """
    _check_image(image)
    cv2 = import_cv2()
    out_w, out_h = size
    if out_w < 1 or out_h < 1:
        raise ValueError(f"output size must be positive, got {size}")
    in_h, in_w = image.shape[:2]
    if (out_w, out_h) == (in_w, in_h):
        return image.copy()
    # Area averaging only when no axis grows: INTER_AREA falls back to bilinear on an enlarged axis.
    interpolation = cv2.INTER_AREA if out_w <= in_w and out_h <= in_h else cv2.INTER_CUBIC
    out = cv2.resize(image, (out_w, out_h), interpolation=interpolation)
    return out.reshape(out_h, out_w, image.shape[2])


def extract_region(image: np.ndarray, box: IntBox, border: BorderMode = "replicate") -> np.ndarray:
    """Copy the pixels of a whole-pixel box, padding the parts outside the image.

    Args:
        image: ``H x W x C`` image.
        box: region to copy; it may extend past (or lie entirely outside) the image.
        border: ``"replicate"`` repeats the edge pixels, ``"constant"`` pads with black, ``"reflect"``
            mirrors the image about its edge pixels (OpenCV's ``BORDER_REFLECT_101``).

    Returns:
        ``box.height x box.width x C`` array of the image's dtype.
    """
    _check_image(image)
    if border not in ("replicate", "constant", "reflect"):
        raise ValueError(f"border must be 'replicate', 'constant' or 'reflect', got {border!r}")
    h, w = image.shape[:2]
    if box.x0 >= 0 and box.y0 >= 0 and box.x1 <= w and box.y1 <= h:
        return image[box.y0 : box.y1, box.x0 : box.x1].copy()
    if border == "constant":
        out = np.zeros((box.height, box.width, image.shape[2]), dtype=image.dtype)
        ix0, iy0, ix1, iy1 = max(box.x0, 0), max(box.y0, 0), min(box.x1, w), min(box.y1, h)
        if ix1 > ix0 and iy1 > iy0:
            out[iy0 - box.y0 : iy1 - box.y0, ix0 - box.x0 : ix1 - box.x0] = image[iy0:iy1, ix0:ix1]
        return out
    ys = _source_indices(box.y0, box.y1, h, border)
    xs = _source_indices(box.x0, box.x1, w, border)
    return image[ys][:, xs]


def _source_indices(start: int, stop: int, n: int, border: BorderMode) -> np.ndarray:
    """Indices into an axis of length ``n`` for positions ``start .. stop - 1``, folded back by the border rule."""
    idx = np.arange(start, stop)
    if border == "replicate" or n == 1:
        return np.clip(idx, 0, n - 1)
    period = 2 * (n - 1)
    idx = np.mod(idx, period)
    return np.where(idx < n, idx, period - idx)


def crop_and_resize(
    image: np.ndarray, box: Box, size: int | tuple[int, int], border: BorderMode = "replicate"
) -> np.ndarray:
    """Cut ``box`` out of ``image`` (padding what lies outside) and resize it with antialiasing.

    The box is rounded to whole pixels first (:meth:`Box.to_int`, at most half a source pixel of error),
    which keeps the resize a pure area average when shrinking. Replicated borders are the default: to an
    animation model a smeared edge looks like more background, while black bars look like a moving object.

    Args:
        image: ``H x W x C`` uint8 image.
        box: region to crop, in pixels; it may extend beyond the image.
        size: output side (square) or ``(width, height)``.
        border: padding mode, see :func:`extract_region`.

    Returns:
        ``size x size x C`` (or ``height x width x C``) uint8 image.
    """
    out_size = (size, size) if isinstance(size, int) else size
    return resize_image(extract_region(image, box.to_int(), border), out_size)


#: Sub-pixel offsets at which :func:`compensate_resampling` measures what a warp takes from an image.
_PROBE_OFFSETS = ((0.5, 0.5), (0.25, 0.75), (0.75, 0.25), (0.5, 0.0))
#: The strongest unsharp amount :func:`compensate_resampling` chooses.
MAX_COMPENSATION = 1.5


def _energy(image: np.ndarray) -> float:
    cv2 = import_cv2()
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(cv2.Laplacian(grey, cv2.CV_32F, ksize=1).var())


def resampling_loss(image: np.ndarray) -> tuple[float, float, float]:
    """How a bicubic warp at sub-pixel offsets changes ``image``'s Laplacian energy, as the quadratic
    ``E(a) = c0 + c1 a + c2 a^2`` of the unsharp amount ``a`` given first (:func:`compensate_resampling`), over the
    offsets of :data:`_PROBE_OFFSETS`; relative to the image's own energy (``E(0) < 1``: the warp softens it)."""
    cv2 = import_cv2()
    height, width = image.shape[:2]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    blurred = cv2.GaussianBlur(image, (0, 0), 1.0).astype(np.float32)
    base, detail = image.astype(np.float32), image.astype(np.float32) - blurred
    own = max(_energy(image), 1e-6)
    values = []
    for amount in (0.0, 0.5, 1.0):
        sharpened = np.clip(base + amount * detail, 0, 255).astype(np.uint8)
        shifted = [
            cv2.remap(sharpened, xs + dx, ys + dy, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
            for dx, dy in _PROBE_OFFSETS
        ]
        values.append(np.mean([_energy(s) for s in shifted]) / own)
    e0, e5, e1 = values
    return e0, 4 * e5 - 3 * e0 - e1, 2 * e1 - 4 * e5 + 2 * e0


def compensate_resampling(image: np.ndarray, amount: float | None = None, sigma: float = 1.0) -> np.ndarray:
    """``image + amount * (image - gaussian_blur(image, sigma))``, uint8: an unsharp mask given to an image that will
    be resampled at sub-pixel positions (a warp), so that the result is about as sharp as the image was.

    Args:
        image: ``H x W x 3`` uint8.
        amount: strength (0 returns the image unchanged); ``None`` measures it for this image
            (:func:`resampling_loss`): the amount after which sub-pixel bicubic resampling leaves the image's own
            Laplacian energy on average, at most :data:`MAX_COMPENSATION` (a fine-grained painting needs more than
            a smooth face).
        sigma: the blur's standard deviation in pixels.
    """
    _check_image(image)
    if amount is None:
        c0, c1, c2 = resampling_loss(image)
        candidates = np.linspace(0.0, MAX_COMPENSATION, 61)
        reached = candidates[c0 + c1 * candidates + c2 * candidates**2 >= 1.0]
        amount = float(reached[0]) if len(reached) else MAX_COMPENSATION
    if amount == 0:
        return image
    cv2 = import_cv2()
    blurred = cv2.GaussianBlur(image, (0, 0), sigma)
    return cv2.addWeighted(image, 1 + amount, blurred, -amount, 0)
