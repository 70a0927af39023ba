"""Image and signal metrics of the evaluation: L1, MSE/PSNR, SSIM, keypoint distances, Pearson correlation.

Images are ``N x H x W x 3`` (or ``H x W x 3``) uint8 RGB arrays; they are compared as floats in ``[0, 1]``, as the
FOMM authors' reconstruction loss is (``|prediction - driving|`` on ``[0, 1]`` tensors). Keypoints are ``K x 2``
``(x, y)`` pixel positions with NaN rows where a keypoint was not detected.
"""

from __future__ import annotations

import math

import numpy as np

from enliven.preprocess._deps import import_cv2

#: PSNR reported for identical images (an infinite value would poison means and JSON).
PSNR_CAP_DB = 100.0
# SSIM constants of Wang et al. (2004) for images in [0, 1]: K1 = 0.01, K2 = 0.03, an 11 x 11 Gaussian of sigma 1.5.
_SSIM_C1 = 0.01**2
_SSIM_C2 = 0.03**2
_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5


def _as_float(images: np.ndarray) -> np.ndarray:
    if images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {images.dtype}")
    return images.astype(np.float32) / 255.0


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if a.shape != b.shape:
        raise ValueError(f"images to compare differ in shape: {a.shape} and {b.shape}")
    a, b = _as_float(a), _as_float(b)
    return (a[None], b[None]) if a.ndim == 3 else (a, b)


def l1_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute difference per image, in ``[0, 1]``: ``N`` values for ``N x H x W x 3`` inputs."""
    a, b = _pair(a, b)
    return np.abs(a - b).mean(axis=(1, 2, 3))


def mse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean squared difference per image (images in ``[0, 1]``): ``N`` values."""
    a, b = _pair(a, b)
    return np.square(a - b).mean(axis=(1, 2, 3))


def psnr_from_mse(value: float) -> float:
    """Peak signal-to-noise ratio in dB for a mean squared error of ``[0, 1]`` images, capped at :data:`PSNR_CAP_DB`."""
    if value <= 10.0 ** (-PSNR_CAP_DB / 10.0):
        return PSNR_CAP_DB
    return -10.0 * math.log10(value)


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Structural similarity per image (Wang et al. 2004: Gaussian window, mean over channels and the pixels whose
    window lies inside the image; scikit-image's ``gaussian_weights=True`` setting).

    Returns:
        ``N`` values in ``[-1, 1]``; 1 for identical images.
    """
    cv2 = import_cv2()
    a, b = _pair(a, b)

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (_SSIM_WINDOW, _SSIM_WINDOW), _SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)

    pad = _SSIM_WINDOW // 2  # border pixels whose window leaves the image are left out, as in scikit-image
    scores = np.empty(len(a))
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        mx, my = blur(x), blur(y)
        vx = blur(x * x) - mx * mx
        vy = blur(y * y) - my * my
        cxy = blur(x * y) - mx * my
        num = (2 * mx * my + _SSIM_C1) * (2 * cxy + _SSIM_C2)
        den = (mx * mx + my * my + _SSIM_C1) * (vx + vy + _SSIM_C2)
        scores[i] = float((num / den)[pad:-pad, pad:-pad].mean())
    return scores


def keypoint_distance(truth: np.ndarray, output: np.ndarray) -> float:
    """Mean Euclidean distance in pixels over the keypoints found in both (NaN when none is).

    Args:
        truth: ``K x 2`` keypoints of the real frame, NaN rows where not detected.
        output: ``K x 2`` keypoints of the generated frame, NaN rows where not detected.
    """
    both = ~np.isnan(truth).any(axis=1) & ~np.isnan(output).any(axis=1)
    if not both.any():
        return math.nan
    return float(np.linalg.norm(truth[both] - output[both], axis=1).mean())


def missing_keypoints(truth: np.ndarray, output: np.ndarray) -> tuple[int, int]:
    """``(missed, detected)``: keypoints found in the real frame but not in the output, and those found in the real
    frame (MKR is ``missed / detected`` pooled over frames)."""
    found = ~np.isnan(truth).any(axis=1)
    missed = found & np.isnan(output).any(axis=1)
    return int(missed.sum()), int(found.sum())


def pearson(x: np.ndarray, y: np.ndarray, min_samples: int = 3) -> float:
    """Pearson correlation of two signals over the samples where both are finite.

    A constant ``y`` (an output that does not move) against a varying ``x`` counts as 0: nothing of the motion was
    followed. NaN when fewer than ``min_samples`` samples remain or ``x`` itself does not vary.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < min_samples:
        return math.nan
    x, y = x[keep] - x[keep].mean(), y[keep] - y[keep].mean()
    sx, sy = math.sqrt(float(x @ x)), math.sqrt(float(y @ y))
    if sx <= 1e-12:
        return math.nan
    if sy <= 1e-12:
        return 0.0
    return float(x @ y / (sx * sy))


def finite_mean(values: np.ndarray) -> float:
    """Mean of the finite values, NaN when there are none (without numpy's empty-slice warning)."""
    array = np.asarray(values, dtype=np.float64)
    array = array[np.isfinite(array)]
    return float(array.mean()) if array.size else math.nan


def laplacian_energy(images: np.ndarray, region: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """High-frequency energy: the variance of the 3x3 Laplacian of the grey level (0-255 scale), per image.

    Args:
        images: ``N x H x W x 3`` (or ``H x W x 3``) uint8 RGB.
        region: ``(x0, y0, x1, y1)`` pixels to measure in (e.g. the face), or ``None`` for the whole image.

    Returns:
        ``N`` variances (higher: sharper). A blurred copy scores less than its original; a ratio of two images'
        energies in the same region says how much fine texture one kept of the other's.
    """
    import cv2

    batch = images[None] if images.ndim == 3 else images
    x0, y0, x1, y1 = region if region is not None else (0, 0, batch.shape[2], batch.shape[1])
    out = np.empty(len(batch))
    for i, image in enumerate(batch):
        grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float64)
        out[i] = cv2.Laplacian(grey, cv2.CV_64F, ksize=1)[y0:y1, x0:x1].var()
    return out
