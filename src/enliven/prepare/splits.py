"""Deterministic train/val/test splits by identity: one person's clips never straddle two splits.

Identities with a manifest hint of ``val`` or ``test`` go to that split (``val`` wins if both). The others are
taken in an order fixed by a hash of their name and the seed, and each goes to the split furthest below its
share of frames, so the frame ratios come close to the requested ones whatever the identities' sizes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from enliven.errors import ConfigError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitRatios:
    """Target shares of frames per split; non-negative, summing to 1."""

    train: float = 0.8
    val: float = 0.1
    test: float = 0.1

    def __post_init__(self) -> None:
        values = (self.train, self.val, self.test)
        if min(values) < 0 or abs(sum(values) - 1.0) > 1e-6 or self.train <= 0:
            raise ConfigError(
                f"Split ratios {values} are invalid; give three non-negative numbers for train,val,test that add "
                "up to 1 with train above 0, e.g. --split 0.8,0.1,0.1."
            )

    @classmethod
    def parse(cls, text: str) -> SplitRatios:
        """Parse ``"0.8,0.1,0.1"`` (train, val, test); values are normalised to sum to 1."""
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            values = []
        if len(values) != 3 or sum(values) <= 0:
            raise ConfigError(f"--split {text!r} is invalid; give three numbers train,val,test, e.g. 0.8,0.1,0.1.")
        total = sum(values)
        return cls(*(v / total for v in values))

    def share(self, split: str) -> float:
        return getattr(self, split)


@dataclass(frozen=True)
class IdentityLoad:
    """One identity to place: its frame count and the manifest split hints of its clips."""

    identity: str
    frames: int
    hints: frozenset[str] = frozenset()


def assign_splits(identities: Sequence[IdentityLoad], ratios: SplitRatios, seed: int = 0) -> dict[str, str]:
    """Place each identity in ``train``, ``val`` or ``test``.

    Returns:
        ``{identity: split}``; the same inputs always give the same result.
    """
    placed: dict[str, str] = {}
    frames = dict.fromkeys(SPLITS, 0)
    free: list[IdentityLoad] = []
    for load in identities:
        forced = next((s for s in ("val", "test") if s in load.hints), None)
        if forced is None:
            free.append(load)
        else:
            placed[load.identity] = forced
            frames[forced] += load.frames
    total = sum(load.frames for load in identities)

    def order(load: IdentityLoad) -> tuple[int, str]:
        return -load.frames, hashlib.sha1(f"{seed}:{load.identity}".encode()).hexdigest()

    for load in sorted(free, key=order):
        # The split furthest below its target share takes the next identity (train first on ties).
        deficits = {s: ratios.share(s) * total - frames[s] for s in SPLITS if ratios.share(s) > 0}
        split = max(deficits, key=lambda s: (deficits[s], -SPLITS.index(s)))
        placed[load.identity] = split
        frames[split] += load.frames
    return placed


def frames_by_identity(frames: Mapping[str, int], identity_of: Mapping[str, str]) -> dict[str, int]:
    """Sum clip frame counts (``{clip: frames}``) per identity (``{clip: identity}``)."""
    totals: dict[str, int] = {}
    for clip, count in frames.items():
        totals[identity_of[clip]] = totals.get(identity_of[clip], 0) + count
    return totals
