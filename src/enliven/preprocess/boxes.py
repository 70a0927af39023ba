"""Axis-aligned boxes in pixel coordinates.

Convention: continuous pixel coordinates, ``x`` to the right and ``y`` down; pixel ``(i, j)`` (column ``i``,
row ``j``) covers ``[i, i + 1) x [j, j + 1)``, so the box ``(0, 0, W, H)`` is exactly a whole ``W x H`` image
and its centre is ``(W / 2, H / 2)``. Boxes may extend beyond the image (crops pad, paste-back clips).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class IntBox:
    """A box rounded to whole pixels: columns ``x0 .. x1 - 1`` and rows ``y0 .. y1 - 1``."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


@dataclass(frozen=True)
class Box:
    """A box ``[x0, x1) x [y0, y1)`` in pixels (floats; see the module docstring for the convention).

    Attributes:
        x0: left edge.
        y0: top edge.
        x1: right edge, ``> x0``.
        y1: bottom edge, ``> y0``.
    """

    x0: float
    y0: float
    x1: float
    y1: float

    def __post_init__(self) -> None:
        values = (self.x0, self.y0, self.x1, self.y1)
        if not all(np.isfinite(v) for v in values):
            raise ValueError(f"Box coordinates must be finite, got {values}")
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise ValueError(f"Box must have a positive width and height, got {values}")

    @classmethod
    def from_center(cls, cx: float, cy: float, width: float, height: float) -> Box:
        """The box of the given size centred on ``(cx, cy)``."""
        return cls(cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)

    @classmethod
    def from_array(cls, values: np.ndarray | tuple[float, float, float, float]) -> Box:
        """Build a box from ``(x0, y0, x1, y1)``."""
        x0, y0, x1, y1 = (float(v) for v in values)
        return cls(x0, y0, x1, y1)

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def center(self) -> tuple[float, float]:
        """``(cx, cy)``."""
        return ((self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2)

    @property
    def area(self) -> float:
        return self.width * self.height

    def as_array(self) -> np.ndarray:
        """``(x0, y0, x1, y1)`` as a float64 array of shape ``(4,)``."""
        return np.array([self.x0, self.y0, self.x1, self.y1], dtype=np.float64)

    def square(self) -> Box:
        """The square with the same centre whose side is the larger of width and height."""
        side = max(self.width, self.height)
        return Box.from_center(*self.center, side, side)

    def scaled(self, factor: float) -> Box:
        """The box scaled by ``factor`` about its centre (``factor > 1`` enlarges)."""
        if factor <= 0:
            raise ValueError(f"scale factor must be positive, got {factor}")
        return Box.from_center(*self.center, self.width * factor, self.height * factor)

    def shifted(self, dx: float = 0.0, dy: float = 0.0) -> Box:
        """The box moved by ``(dx, dy)`` pixels."""
        return Box(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy)

    def union(self, other: Box) -> Box:
        """The smallest box containing both boxes."""
        return Box(min(self.x0, other.x0), min(self.y0, other.y0), max(self.x1, other.x1), max(self.y1, other.y1))

    def iou(self, other: Box) -> float:
        """Intersection over union, in ``[0, 1]``."""
        iw = min(self.x1, other.x1) - max(self.x0, other.x0)
        ih = min(self.y1, other.y1) - max(self.y0, other.y0)
        inter = max(iw, 0.0) * max(ih, 0.0)
        return inter / (self.area + other.area - inter)

    def contains(self, other: Box, tol: float = 1e-6) -> bool:
        """Whether ``other`` lies inside this box (up to ``tol`` pixels)."""
        return (
            other.x0 >= self.x0 - tol
            and other.y0 >= self.y0 - tol
            and other.x1 <= self.x1 + tol
            and other.y1 <= self.y1 + tol
        )

    def clipped_to(self, width: int, height: int) -> Box:
        """The part of the box inside a ``width x height`` image.

        Raises:
            ValueError: if the box does not overlap the image.
        """
        x0, y0 = max(self.x0, 0.0), max(self.y0, 0.0)
        x1, y1 = min(self.x1, float(width)), min(self.y1, float(height))
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"{self} does not overlap a {width}x{height} image")
        return Box(x0, y0, x1, y1)

    def shifted_inside(self, width: int, height: int) -> Box:
        """The box moved (not resized) as little as possible to lie inside the image where it fits.

        Along an axis where the box is larger than the image it is centred on the image instead.
        """

        def shift(lo: float, hi: float, size: int) -> float:
            if hi - lo >= size:
                return size / 2 - (lo + hi) / 2
            return max(0.0, -lo) - max(0.0, hi - size)

        return self.shifted(shift(self.x0, self.x1, width), shift(self.y0, self.y1, height))

    def fitted_inside(self, width: int, height: int) -> Box:
        """The box shrunk about its centre (keeping its aspect ratio) until it fits the image, then moved
        inside it (:meth:`shifted_inside`): the largest version of the box that needs no padding."""
        factor = min(1.0, width / self.width, height / self.height)
        box = self if factor == 1.0 else self.scaled(factor)
        return box.shifted_inside(width, height)

    def to_int(self) -> IntBox:
        """Round to whole pixels, keeping the size: ``x0`` and the width are rounded separately.

        Rounding the size rather than each edge keeps a square box square (``width == height`` in the result).
        """
        x0, y0 = _round_half_up(self.x0), _round_half_up(self.y0)
        w, h = max(1, _round_half_up(self.width)), max(1, _round_half_up(self.height))
        return IntBox(x0, y0, x0 + w, y0 + h)


def _round_half_up(value: float) -> int:
    return int(np.floor(value + 0.5))


def square_pad_box(width: int, height: int) -> Box:
    """The smallest square containing a whole ``width x height`` image, centred on it (pads the short side)."""
    side = max(width, height)
    return Box.from_center(width / 2, height / 2, side, side)


def center_square_box(width: int, height: int) -> Box:
    """The largest square inside a ``width x height`` image, centred on it (crops the long side)."""
    side = min(width, height)
    return Box.from_center(width / 2, height / 2, side, side)


def boxes_to_array(boxes: list[Box]) -> np.ndarray:
    """Stack boxes into an ``N x 4`` float64 array of ``(x0, y0, x1, y1)``."""
    if not boxes:
        return np.zeros((0, 4), dtype=np.float64)
    return np.stack([b.as_array() for b in boxes])
