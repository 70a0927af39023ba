"""Cheap per-frame summaries for cleaning: scene cuts, frozen shots and duplicate clips.

Every frame is reduced to a 32 x 32 grey thumbnail, an 8 x 8 x 8 colour histogram and a 256-bit difference
hash (dHash) as it streams past, so a clip of any length costs a few kilobytes per frame to judge.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from enliven.preprocess._deps import import_cv2

# A cut needs both a colour-distribution change (Bhattacharyya distance of histograms) and a big pixel change;
# either alone fires on fast head turns or on an inset picture changing in a news show. A larger pixel change
# makes do with a smaller colour change (cuts between shots of one set). Pairs of (histogram distance, mean
# grey change 0..255) read off the cuts and the non-cuts in the shared clips.
CUT_RULES = ((0.35, 18.0), (0.2, 30.0))
# A shot whose frames all stay within this mean absolute grey change (0..255) of its first frame is frozen.
# Re-encoded stills measure ~0.1 on 32 x 32 thumbnails; half a second of a quiet talking head already ~1.
FROZEN_MAX_CHANGE = 0.5
# Two frames whose 256-bit dHashes differ in at most this many bits show the same picture.
HASH_MAX_BITS = 12
# A clip is a duplicate when this share of its sampled frames appear in an earlier clip.
DUPLICATE_SHARE = 0.8


def grey_thumbnail(image: np.ndarray, side: int = 32) -> np.ndarray:
    """``side x side`` uint8 grey thumbnail of an ``H x W x 3`` uint8 RGB image (area-averaged)."""
    cv2 = import_cv2()
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (side, side), interpolation=cv2.INTER_AREA)


def colour_histogram(image: np.ndarray) -> np.ndarray:
    """Normalised 8 x 8 x 8 RGB histogram (512 float32 values summing to 1) of a 64 x 64 thumbnail."""
    cv2 = import_cv2()
    small = cv2.resize(image, (64, 64), interpolation=cv2.INTER_AREA)
    hist = cv2.calcHist([small], [0, 1, 2], None, [8, 8, 8], [0, 256, 0, 256, 0, 256]).ravel()
    return (hist / max(float(hist.sum()), 1.0)).astype(np.float32)


def dhash(image: np.ndarray) -> np.ndarray:
    """256-bit difference hash (sign of horizontal grey gradients on a 17 x 16 thumbnail), as 32 uint8."""
    cv2 = import_cv2()
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (17, 16), interpolation=cv2.INTER_AREA).astype(np.int16)
    return np.packbits((small[:, 1:] > small[:, :-1]).ravel())


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit distances between packed hashes ``a`` (``N x 32``) and ``b`` (``M x 32``): an ``N x M`` int array."""
    xor = np.bitwise_xor(a[:, None, :], b[None, :, :])
    return np.unpackbits(xor, axis=-1).sum(axis=-1)


@dataclass
class StreamStats:
    """Summaries of the frames of one clip, filled by :meth:`observe` while the frames stream past.

    Attributes:
        pixel_change: per frame, mean absolute grey change (0..255) from the previous frame (0 for the first).
        hist_distance: per frame, Bhattacharyya distance (0..1) of colour histograms to the previous frame.
        hashes: ``N x 32`` uint8 packed dHashes, one row per frame.
        thumbs: ``N x 32 x 32`` uint8 grey thumbnails.
    """

    pixel_change: list[float] = field(default_factory=list)
    hist_distance: list[float] = field(default_factory=list)
    hashes: list[np.ndarray] = field(default_factory=list)
    thumbs: list[np.ndarray] = field(default_factory=list)
    _prev_hist: np.ndarray | None = None

    def observe(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Pass ``frames`` through unchanged, recording their summaries."""
        cv2 = import_cv2()
        for frame in frames:
            thumb = grey_thumbnail(frame)
            hist = colour_histogram(frame)
            if self.thumbs:
                change = float(np.abs(thumb.astype(np.int16) - self.thumbs[-1]).mean())
                dist = float(cv2.compareHist(self._prev_hist, hist, cv2.HISTCMP_BHATTACHARYYA))
            else:
                change, dist = 0.0, 0.0
            self.pixel_change.append(change)
            self.hist_distance.append(dist)
            self.hashes.append(dhash(frame))
            self.thumbs.append(thumb)
            self._prev_hist = hist
            yield frame

    def __len__(self) -> int:
        return len(self.thumbs)

    def cuts(self) -> list[int]:
        """Indices of frames that start a new scene (never 0)."""
        return [
            i
            for i, (dist, change) in enumerate(zip(self.hist_distance, self.pixel_change, strict=True))
            if i > 0 and any(dist > min_dist and change > min_change for min_dist, min_change in CUT_RULES)
        ]

    def hash_array(self) -> np.ndarray:
        """``N x 32`` uint8 packed hashes."""
        return np.stack(self.hashes) if self.hashes else np.zeros((0, 32), np.uint8)


def max_change(thumbs: Sequence[np.ndarray]) -> float:
    """Largest mean absolute grey change (0..255) of any thumbnail from the first one."""
    if len(thumbs) < 2:
        return 0.0
    stack = np.stack(thumbs).astype(np.int16)
    return float(np.abs(stack[1:] - stack[0]).mean(axis=(1, 2)).max())


def is_frozen(thumbs: Sequence[np.ndarray], threshold: float = FROZEN_MAX_CHANGE) -> bool:
    """Whether the frames (as grey thumbnails) barely change: a still image, a title card, a paused video."""
    return max_change(thumbs) < threshold


def sample_hashes(hashes: np.ndarray, count: int = 8) -> np.ndarray:
    """``count`` (or fewer) hashes evenly spread over a clip, skipping its first and last 5%."""
    n = len(hashes)
    if n == 0:
        return hashes
    idx = np.unique(np.linspace(0.05 * (n - 1), 0.95 * (n - 1), num=min(count, n)).round().astype(int))
    return hashes[idx]


def find_duplicates(signatures: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> dict[str, str]:
    """Clips whose sampled frames (nearly) all appear in an earlier clip.

    Args:
        signatures: ``(name, sampled_hashes, all_hashes)`` per clip, in priority order (a clip is only ever
            reported as a duplicate of one earlier in the list, so put the clips to keep first).

    Returns:
        ``{duplicate name: name of the clip it repeats}``.
    """
    duplicates: dict[str, str] = {}
    kept: list[tuple[str, np.ndarray]] = []
    for name, sampled, every in signatures:
        for other, other_hashes in kept:
            if len(sampled) and len(other_hashes):
                matched = (hamming(sampled, other_hashes).min(axis=1) <= HASH_MAX_BITS).mean()
                if matched >= DUPLICATE_SHARE:
                    duplicates[name] = other
                    break
        else:
            kept.append((name, every))
    return duplicates
