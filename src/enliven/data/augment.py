"""Clip-consistent augmentation: one draw of random parameters, applied alike to every frame of a pair or clip.

A motion-transfer model learns the motion between two frames of one clip; if the two frames were flipped, rotated
or tinted differently, it would learn to undo the augmentation instead. So :meth:`Augmenter.sample` draws the
parameters once and :meth:`Augmenter.apply` uses them for each frame. Only the noise *realisation* differs per
frame (its strength does not), as sensor noise does in real video.

Per frame, on ``uint8`` RGB input of any size:

1. one ``cv2.warpAffine`` does the resize to the frame size, horizontal flip, rotation, zoom, shift and crop
   (frames much larger than the output are first shrunk with area interpolation, to avoid aliasing);
2. colour jitter as one 3 x 4 colour matrix (``cv2.transform``): brightness, contrast and saturation as in
   torchvision's ColorJitter, hue as a rotation of the chroma plane in YIQ space (luminance preserved);
   intermediate values are not clipped;
3. Gaussian blur;
4. conversion to channels-first ``float32`` in ``[0, 1]``, noise, clipping, and mapping to the value range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np

from enliven.data.config import AugmentationConfig, Border

_BORDER_MODES = {
    Border.REFLECT: cv2.BORDER_REFLECT_101,
    Border.REPLICATE: cv2.BORDER_REPLICATE,
    Border.CONSTANT: cv2.BORDER_CONSTANT,
}
# Shrink with INTER_AREA first when the input is this much larger than the output (bilinear warps alias beyond).
_PRESHRINK_RATIO = 1.5
_LUMA = np.array([0.299, 0.587, 0.114])
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


class ColourOp(StrEnum):
    BRIGHTNESS = "brightness"
    CONTRAST = "contrast"
    SATURATION = "saturation"
    HUE = "hue"


@dataclass(frozen=True)
class AugmentParams:
    """The random parameters of one pair or clip.

    Attributes:
        hflip: mirror left-right.
        time_flip: reverse the frame order (for a pair: swap source and driving).
        angle: rotation in degrees, counter-clockwise as seen on screen.
        zoom: scale factor about the centre (> 1 enlarges).
        shift: ``(x, y)`` shift as fractions of the output width and height (positive: right, down).
        crop_side: side of the crop window as a fraction of the frame (1: no crop).
        crop_centre: ``(x, y)`` centre of the crop window in ``[-1, 1]`` frame coordinates.
        colour: colour operations with their factors (hue: turns of the colour wheel), in application order.
        blur_sigma: Gaussian blur sigma in output pixels (0: none).
        gaussian_std, salt_pepper, speckle_std: noise strengths on ``[0, 1]`` values (0: none).
    """

    hflip: bool = False
    time_flip: bool = False
    angle: float = 0.0
    zoom: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    crop_side: float = 1.0
    crop_centre: tuple[float, float] = (0.0, 0.0)
    colour: tuple[tuple[ColourOp, float], ...] = ()
    blur_sigma: float = 0.0
    gaussian_std: float = 0.0
    salt_pepper: float = 0.0
    speckle_std: float = 0.0

    @property
    def needs_warp(self) -> bool:
        """Whether the geometry needs more than a resize and a mirror."""
        return self.angle != 0.0 or self.zoom != 1.0 or self.shift != (0.0, 0.0) or self.crop_side != 1.0


class Augmenter:
    """Applies an :class:`AugmentationConfig` to clips, producing ``frame_size`` frames in its value range.

    Args:
        config: what to randomise (``AugmentationConfig()``: only resize and value-range conversion).
        frame_size: ``(height, width)`` of the output frames.
    """

    def __init__(self, config: AugmentationConfig, frame_size: tuple[int, int]) -> None:
        self.config = config
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))

    def sample(self, rng: np.random.Generator) -> AugmentParams:
        """Draw one set of parameters (a fixed sequence of draws, so a seeded ``rng`` reproduces it)."""
        cfg = self.config
        values: dict[str, object] = {}
        if cfg.flip is not None:
            values["hflip"] = bool(rng.random() < cfg.flip.horizontal)
            values["time_flip"] = bool(rng.random() < cfg.flip.time)
        if cfg.rotation is not None and rng.random() < cfg.rotation.p:
            values["angle"] = float(rng.uniform(*cfg.rotation.degrees))
        if cfg.scale is not None and rng.random() < cfg.scale.p:
            values["zoom"] = float(rng.uniform(*cfg.scale.range))
        if cfg.translation is not None and rng.random() < cfg.translation.p:
            limit = cfg.translation.fraction
            values["shift"] = (float(rng.uniform(-limit, limit)), float(rng.uniform(-limit, limit)))
        if cfg.crop is not None and rng.random() < cfg.crop.p:
            side = float(rng.uniform(*cfg.crop.range))
            values["crop_side"] = side
            values["crop_centre"] = (float(rng.uniform(side - 1, 1 - side)), float(rng.uniform(side - 1, 1 - side)))
        if cfg.jitter is not None and rng.random() < cfg.jitter.p:
            values["colour"] = _sample_colour(cfg.jitter, rng)
        if cfg.blur is not None and rng.random() < cfg.blur.p:
            values["blur_sigma"] = float(rng.uniform(*cfg.blur.sigma))
        if cfg.noise is not None:
            for key, limit in (
                ("gaussian_std", cfg.noise.gaussian),
                ("salt_pepper", cfg.noise.salt_pepper),
                ("speckle_std", cfg.noise.speckle),
            ):
                if limit > 0 and rng.random() < cfg.noise.p:
                    values[key] = float(rng.uniform(0.0, limit))
        return AugmentParams(**values)  # type: ignore[arg-type]

    def apply(self, frames: Sequence[np.ndarray], params: AugmentParams, rng: np.random.Generator) -> list[np.ndarray]:
        """Augment each frame alike (frame order unchanged; ``params.time_flip`` is the caller's to apply).

        Args:
            frames: ``H x W x 3`` RGB uint8 arrays (sizes may differ from ``frame_size`` and between frames).
            params: from :meth:`sample`.
            rng: draws the per-frame noise realisations.

        Returns:
            ``3 x frame_size[0] x frame_size[1]`` float32 arrays (channels first, RGB) in ``config.value_range``.
        """
        return [self._apply_one(frame, params, rng) for frame in frames]

    def __call__(self, frames: Sequence[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
        """Sample parameters and augment a whole clip, reversing its order on a time flip."""
        params = self.sample(rng)
        out = self.apply(frames, params, rng)
        return out[::-1] if params.time_flip else out

    def _apply_one(self, frame: np.ndarray, params: AugmentParams, rng: np.random.Generator) -> np.ndarray:
        image = self._geometry(frame, params)
        if params.colour:
            matrix = colour_matrix(params.colour, cv2.mean(image)[:3])
            image = cv2.transform(image, matrix)
        if params.blur_sigma > 0:
            image = cv2.GaussianBlur(image, (0, 0), params.blur_sigma)
        # Channels first while still uint8: a third of the bytes to shuffle, and what tensors want.
        out = np.multiply(np.stack(cv2.split(image)), np.float32(1.0 / 255.0), dtype=np.float32)
        if params.gaussian_std or params.salt_pepper or params.speckle_std:
            _add_noise(out, params, rng)
        if self.config.value_range[0] < 0:
            out *= 2.0
            out -= 1.0
        return out

    def _geometry(self, frame: np.ndarray, params: AugmentParams) -> np.ndarray:
        out_h, out_w = self.frame_size
        in_h, in_w = frame.shape[:2]
        if in_h > _PRESHRINK_RATIO * out_h or in_w > _PRESHRINK_RATIO * out_w:
            frame = cv2.resize(frame, (out_w, out_h), interpolation=cv2.INTER_AREA)
            in_h, in_w = out_h, out_w
        if not params.needs_warp:  # cheap path: a mirror costs a tenth of a warp
            if (in_h, in_w) != (out_h, out_w):
                shrinking = in_h * in_w > out_h * out_w
                interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
                frame = cv2.resize(frame, (out_w, out_h), interpolation=interpolation)
            return cv2.flip(frame, 1) if params.hflip else frame
        matrix = warp_matrix(params, (in_h, in_w), (out_h, out_w))
        return cv2.warpAffine(
            frame,
            matrix,
            (out_w, out_h),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=_BORDER_MODES[self.config.border],
        )


def warp_matrix(params: AugmentParams, in_size: tuple[int, int], out_size: tuple[int, int]) -> np.ndarray:
    """The ``2 x 3`` map from output pixel ``(x, y)`` to input pixel (``cv2.WARP_INVERSE_MAP`` convention).

    Built as: output pixel -> centred output pixels -> undo shift -> undo zoom, rotation and flip -> into the crop
    window -> input pixels (the input stretched to the output size; pixel centres at half-integers, as cv2.resize).
    """
    out_h, out_w = out_size
    in_h, in_w = in_size
    centre_out = _translate(-(out_w - 1) / 2, -(out_h - 1) / 2)
    unshift = _translate(-params.shift[0] * out_w, -params.shift[1] * out_h)
    theta = math.radians(params.angle)
    # Image y points down, so a counter-clockwise turn on screen is a clockwise one in (x, y); undo it.
    cos, sin = math.cos(theta), math.sin(theta)
    unrotate = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
    unflip = np.diag([-1.0 if params.hflip else 1.0, 1.0, 1.0])
    unzoom = np.diag([1.0 / params.zoom, 1.0 / params.zoom, 1.0])
    crop = _translate(params.crop_centre[0] * out_w / 2, params.crop_centre[1] * out_h / 2) @ np.diag(
        [params.crop_side, params.crop_side, 1.0]
    )
    to_input = _translate((in_w - 1) / 2, (in_h - 1) / 2) @ np.diag([in_w / out_w, in_h / out_h, 1.0])
    full = to_input @ crop @ unflip @ unrotate @ unzoom @ unshift @ centre_out
    return full[:2].astype(np.float64)


def _translate(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def _sample_colour(jitter, rng: np.random.Generator) -> tuple[tuple[ColourOp, float], ...]:
    ops = []
    for op, strength in (
        (ColourOp.BRIGHTNESS, jitter.brightness),
        (ColourOp.CONTRAST, jitter.contrast),
        (ColourOp.SATURATION, jitter.saturation),
    ):
        if strength > 0:
            ops.append((op, float(rng.uniform(max(0.0, 1.0 - strength), 1.0 + strength))))
    if jitter.hue > 0:
        ops.append((ColourOp.HUE, float(rng.uniform(-jitter.hue, jitter.hue))))
    order = rng.permutation(len(ops))
    return tuple(ops[i] for i in order)


def colour_matrix(ops: Sequence[tuple[ColourOp, float]], mean_rgb: Sequence[float]) -> np.ndarray:
    """The ``3 x 4`` affine colour map (``[M | b]``, RGB in and out, 0..255 units) applying ``ops`` in order.

    ``mean_rgb`` is the frame's mean colour before jitter: contrast blends towards the mean grey of the image as it
    stands at that step, which is an affine function of it.
    """
    full = np.eye(4)
    mean = np.append(np.asarray(mean_rgb, dtype=np.float64), 1.0)
    for op, factor in ops:
        step = np.eye(4)
        if op is ColourOp.BRIGHTNESS:
            step[:3, :3] *= factor
        elif op is ColourOp.SATURATION:
            step[:3, :3] = factor * np.eye(3) + (1.0 - factor) * np.outer(np.ones(3), _LUMA)
        elif op is ColourOp.HUE:
            angle = 2.0 * math.pi * factor
            rotate = np.array(
                [[1.0, 0.0, 0.0], [0.0, math.cos(angle), -math.sin(angle)], [0.0, math.sin(angle), math.cos(angle)]]
            )
            step[:3, :3] = _YIQ_TO_RGB @ rotate @ _RGB_TO_YIQ
        else:  # contrast
            grey = float(_LUMA @ (full @ mean)[:3])
            step[:3, :3] *= factor
            step[:3, 3] = (1.0 - factor) * grey
        full = step @ full
    return full[:3].astype(np.float32)


def _add_noise(image: np.ndarray, params: AugmentParams, rng: np.random.Generator) -> None:
    """Add noise in place to a ``3 x H x W`` float32 ``[0, 1]`` image and clip it back to ``[0, 1]``."""
    if params.speckle_std:
        image *= _normal(image.shape, 1.0, params.speckle_std, rng)
    if params.gaussian_std:
        image += _normal(image.shape, 0.0, params.gaussian_std, rng)
    np.clip(image, 0.0, 1.0, out=image)
    if params.salt_pepper:
        hit = rng.random(image.shape[1:], dtype=np.float32)
        half = params.salt_pepper / 2
        image[:, hit < half] = 0.0
        image[:, (hit >= half) & (hit < params.salt_pepper)] = 1.0


def _normal(shape: tuple[int, ...], mean: float, std: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian float32 samples, seeded from ``rng``; OpenCV's generator is about twice as fast as numpy's."""
    out = np.empty(shape, dtype=np.float32)
    cv2.setRNGSeed(int(rng.integers(2**31)))
    cv2.randn(out.reshape(-1), mean, std)  # one channel, so mean and std apply to every sample
    return out
