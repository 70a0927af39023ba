"""What a live output shows: the avatar alone, picture-in-picture on the camera frame, or pasted over the face in
the camera frame; a status readout; and frame-index stamps for latency measurements.

Images are ``H x W x 3`` uint8 RGB. Functions return new images and never modify their inputs, except
:func:`draw_status` and :func:`stamp_index`, which draw into the frame they are given (documented there).
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from enliven.preprocess import Box, paste_back, resize_image


class Overlay(StrEnum):
    """How the avatar is laid over the live feed."""

    NONE = "none"  #: the avatar alone, letterboxed into the output frame
    PIP = "pip"  #: the camera frame with the avatar in a corner (picture-in-picture)
    FACE = "face"  #: the camera frame with the animated face pasted over the live face (feathered mask)

    def next(self) -> Overlay:
        members = list(Overlay)
        return members[(members.index(self) + 1) % len(members)]


class Corner(StrEnum):
    TOP_LEFT = "top-left"
    TOP_RIGHT = "top-right"
    BOTTOM_LEFT = "bottom-left"
    BOTTOM_RIGHT = "bottom-right"


def fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` scaled to fit ``size`` (width, height) without distortion, centred on black."""
    width, height = size
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    out = np.zeros((height, width, 3), np.uint8)
    x0, y0 = (width - new_w) // 2, (height - new_h) // 2
    out[y0 : y0 + new_h, x0 : x0 + new_w] = resize_image(image, (new_w, new_h))
    return out


def picture_in_picture(
    frame: np.ndarray, inset: np.ndarray, *, corner: Corner = Corner.BOTTOM_RIGHT, scale: float = 0.33
) -> np.ndarray:
    """A copy of ``frame`` with ``inset`` in ``corner``, its height ``scale`` times the frame's (aspect kept), a
    margin of 2 % of the frame's height from the edges, and a thin white border."""
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    height, width = frame.shape[:2]
    inset_h = max(8, round(height * scale))
    inset_w = min(width, max(8, round(inset.shape[1] * inset_h / inset.shape[0])))
    margin = round(height * 0.02)
    x0 = margin if corner in (Corner.TOP_LEFT, Corner.BOTTOM_LEFT) else width - inset_w - margin
    y0 = margin if corner in (Corner.TOP_LEFT, Corner.TOP_RIGHT) else height - inset_h - margin
    out = frame.copy()
    border = 2
    out[max(0, y0 - border) : y0 + inset_h + border, max(0, x0 - border) : x0 + inset_w + border] = 255
    out[y0 : y0 + inset_h, x0 : x0 + inset_w] = resize_image(inset, (inset_w, inset_h))
    return out


def paste_over_face(
    frame: np.ndarray, animated: np.ndarray, box: Box | None, feather: float = 0.15, mask: np.ndarray | None = None
) -> np.ndarray:
    """A copy of ``frame`` with the animated crop blended where the face's crop ``box`` was cut, through ``mask``
    (e.g. :func:`face_mask`; ``None``: the whole square) with feathered edges; ``None`` box: the frame unchanged."""
    if box is None:
        return frame.copy()
    return paste_back(frame, animated, box, feather, mask)


def face_mask(points: np.ndarray, size: int, grow: float = 0.06, soften: float = 0.04) -> np.ndarray:
    """Soft weights over a ``size x size`` crop covering the face: the convex hull of its landmarks (``K x 2`` in
    ``[-1, 1]``, e.g. the 468 face-mesh points), grown by ``grow`` and blurred over ``soften`` times the side, so
    the face, not the photo's background, is laid over a live face. Returns ``size x size`` float32 in ``[0, 1]``."""
    from enliven.preprocess._deps import import_cv2

    cv2 = import_cv2()
    pixels = ((np.asarray(points, np.float32).reshape(-1, 2) + 1) * (size / 2)).astype(np.int32)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(pixels), 255)
    radius = max(1, round(grow * size))
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
    sigma = max(0.5, soften * size)
    return cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), sigma)


def draw_status(frame: np.ndarray, lines: list[str], *, warning: str | None = None) -> np.ndarray:
    """Draw ``lines`` (e.g. fps and latency) at the top left and ``warning`` (e.g. "face lost") in red across the
    bottom, **into** ``frame``; returns it."""
    from enliven.preprocess._deps import import_cv2

    cv2 = import_cv2()
    height = frame.shape[0]
    font_scale = max(0.4, height / 900)
    thickness = 1 if height < 600 else 2
    step = round(22 * font_scale / 0.5)
    for row, text in enumerate(lines):
        origin = (8, 8 + step * (row + 1) - step // 4)
        cv2.putText(frame, text, origin, cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
        cv2.putText(frame, text, origin, cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), thickness, cv2.LINE_AA)
    if warning:
        origin = (8, height - 12)
        cv2.putText(frame, warning, origin, cv2.FONT_HERSHEY_SIMPLEX, font_scale * 1.3, (0, 0, 0), thickness + 3)
        cv2.putText(frame, warning, origin, cv2.FONT_HERSHEY_SIMPLEX, font_scale * 1.3, (255, 64, 64), thickness + 1)
    return frame


# -- frame-index stamps (latency benchmarks) -------------------------------------------------------------------
#: Bits of a stamped index. A stamp is a row of squares, each 1/STAMP_COLUMNS of the frame's width: a scaled frame
#: (a browser's camera, WebRTC's resolution adaptation) keeps a readable stamp, and big squares survive compression.
STAMP_BITS = 12
STAMP_COLUMNS = 32


def _stamp_cells(width: int) -> list[tuple[int, int]]:
    """Column ranges of the start square, the bits and the end square."""
    edges = [round(k * width / STAMP_COLUMNS) for k in range(STAMP_BITS + 3)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def stamp_index(frame: np.ndarray, index: int) -> np.ndarray:
    """Write ``index`` (mod 2**12) **into** ``frame`` as a row of black/white squares along its top-left edge (a
    white start square, the bits, most significant first, a black end square); returns it. :func:`read_stamp`
    reads it back after compression and scaling."""
    cells = _stamp_cells(frame.shape[1])
    side = cells[0][1]
    value = index % (1 << STAMP_BITS)
    for k, (x0, x1) in enumerate(cells):
        on = k == 0 or (0 < k <= STAMP_BITS and value >> (STAMP_BITS - k) & 1)
        frame[:side, x0:x1] = 255 if on else 0
    return frame


def read_stamp(frame: np.ndarray) -> int | None:
    """The index :func:`stamp_index` wrote into ``frame`` (its top-left edge), or ``None`` if there is none."""
    cells = _stamp_cells(frame.shape[1])
    side = cells[0][1]
    if side < 4 or frame.shape[0] < side:
        return None
    margin = side // 4
    levels = [float(frame[margin : side - margin, x0 + margin : x1 - margin].mean()) for x0, x1 in cells]
    if levels[0] < 170 or levels[-1] > 85:  # no white start square, or no black end square
        return None
    value = 0
    for level in levels[1:-1]:
        value = value << 1 | (level > 127)
    return value
