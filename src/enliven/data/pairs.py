"""The training dataset: (source, driving) frame pairs drawn from one clip, augmented alike.

An epoch holds ``num_repeats`` passes over the clips, or over the identities when ``id_sampling`` is on: then each
identity appears exactly ``num_repeats`` times per epoch whatever its number of clips (a person filmed in 40 clips
weighs no more than one filmed once), and each item draws one clip of its identity, then two distinct frames.

Randomness: with a seed, item ``i`` of epoch ``e`` draws from ``numpy.random.default_rng((seed, e, i))``, so a
batch is the same whatever the number of workers; call :meth:`PairDataset.set_epoch` between epochs. Without a seed
every item draws fresh entropy (no duplicated streams across workers, unlike a global numpy seed).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, default_collate

from enliven.data.augment import Augmenter
from enliven.data.config import PairDatasetConfig
from enliven.data.layout import ClipRef, find_clips, group_by_identity
from enliven.data.readers import ClipReader
from enliven.errors import InputError

log = logging.getLogger(__name__)

# Consecutive unreadable clips after which an item gives up (the dataset is broken, not one clip).
_MAX_SKIPS = 20


class FramePair(NamedTuple):
    """One training item.

    Attributes:
        source: ``3 x H x W`` float32 in the configured value range, RGB.
        driving: ``3 x H x W`` float32, same clip, augmented with the same parameters.
        clip: the clip name; identity: its identity.
        source_index, driving_index: frame numbers within the clip (after a time flip, as delivered).
    """

    source: Tensor
    driving: Tensor
    clip: str
    identity: str
    source_index: int
    driving_index: int


class PairBatch(NamedTuple):
    """A batch of :class:`FramePair`: ``B x 3 x H x W`` tensors and per-item names and frame numbers."""

    source: Tensor
    driving: Tensor
    clips: tuple[str, ...]
    identities: tuple[str, ...]
    source_indices: Tensor
    driving_indices: Tensor

    def to(self, device: torch.device | str, non_blocking: bool = False) -> PairBatch:
        return self._replace(
            source=self.source.to(device, non_blocking=non_blocking),
            driving=self.driving.to(device, non_blocking=non_blocking),
        )


def collate_pairs(items: Sequence[FramePair]) -> PairBatch:
    """Stack :class:`FramePair` items into a :class:`PairBatch` (the DataLoader's ``collate_fn``)."""
    return PairBatch(
        # default_collate stacks straight into shared memory inside a worker: one copy less per batch.
        source=default_collate([item.source for item in items]),
        driving=default_collate([item.driving for item in items]),
        clips=tuple(item.clip for item in items),
        identities=tuple(item.identity for item in items),
        source_indices=torch.tensor([item.source_index for item in items]),
        driving_indices=torch.tensor([item.driving_index for item in items]),
    )


def worker_init_fn(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: stop OpenCV from spawning threads inside each worker process."""
    del worker_id
    cv2.setNumThreads(0)


class PairDataset(Dataset[FramePair]):
    """Frame pairs of one split of a FOMM-layout dataset (see the module docstring).

    Args:
        config: where the data is and how to sample and augment it.
        clips: the clips to use; by default every clip of ``config.split`` under ``config.root``.

    Raises:
        InputError: the dataset folder or split is missing or empty.
    """

    def __init__(self, config: PairDatasetConfig, clips: Sequence[ClipRef] | None = None) -> None:
        self.config = config
        self.clips = list(clips) if clips is not None else find_clips(config.root, config.split, seed=config.seed or 0)
        if not self.clips:
            raise InputError(f"The dataset {config.root} has no clips to draw pairs from; check its layout.")
        self.by_identity = group_by_identity(self.clips)
        self.identities = list(self.by_identity)
        self.augmenter = Augmenter(config.augmentation, config.frame_size)
        self.reader = ClipReader()
        self.epoch = 0
        self._bad: set[str] = set()

    def __len__(self) -> int:
        units = len(self.identities) if self.config.id_sampling else len(self.clips)
        return units * self.config.num_repeats

    def set_epoch(self, epoch: int) -> None:
        """Select the random stream of an epoch (set it before the DataLoader starts iterating)."""
        self.epoch = int(epoch)

    def rng_for(self, index: int) -> np.random.Generator:
        """The generator item ``index`` draws from (seeded per seed, epoch and index when a seed is set)."""
        if self.config.seed is None:
            return np.random.default_rng()
        return np.random.default_rng((self.config.seed, self.epoch, index))

    def __getitem__(self, index: int) -> FramePair:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        rng = self.rng_for(index)
        clip = self._pick_clip(index, rng)
        for _ in range(_MAX_SKIPS):
            try:
                return self._make_pair(clip, rng)
            except InputError as err:
                if not self.config.skip_corrupt:
                    raise
                if clip.name not in self._bad:
                    log.warning("skipping an unreadable clip: %s", err)
                    self._bad.add(clip.name)
                clip = self.clips[int(rng.integers(len(self.clips)))]
        raise InputError(
            f"{_MAX_SKIPS} clips in a row of {self.config.root} could not be read; check the dataset "
            "(the log names them)."
        )

    def _pick_clip(self, index: int, rng: np.random.Generator) -> ClipRef:
        if self.config.id_sampling:
            candidates = self.by_identity[self.identities[index % len(self.identities)]]
            return candidates[int(rng.integers(len(candidates)))]
        return self.clips[index % len(self.clips)]

    def _make_pair(self, clip: ClipRef, rng: np.random.Generator) -> FramePair:
        count = self.reader.num_frames(clip)
        if count >= 2:
            # Source before driving, as FOMM samples; a time flip then reverses the motion.
            first, second = sorted(int(i) for i in rng.choice(count, size=2, replace=False))
        else:
            first = second = 0  # a one-frame clip can only teach the identity mapping
        params = self.augmenter.sample(rng)
        if params.time_flip:
            first, second = second, first
        frames = self.reader.read(clip, (first, second))
        source, driving = self.augmenter.apply(frames, params, rng)
        return FramePair(
            source=torch.from_numpy(source),
            driving=torch.from_numpy(driving),
            clip=clip.name,
            identity=clip.identity,
            source_index=first,
            driving_index=second,
        )
