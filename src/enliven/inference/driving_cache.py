"""``DrivingCache``: a driving clip's keypoints, found once and reused by the next job that animates another photo
with the same clip and model.

A studio's batch is many photos times a few clips: every job with the same clip would decode it, find its face in
every frame and run the face mesh (or the model's keypoint detector) on each crop again, only to get the same
keypoints, since they depend on the clip, the model and the cropping settings, never on the photo. A worker keeps
them here, so a repeated clip costs only its rendering.

The keypoints are stored only when a job read the whole clip (a cancelled or failed job stores nothing), the entry
is keyed by the clip file's path, size and modification time (a clip rewritten in place is found again), and the
cache holds at most ``max_frames`` frames, dropping the least recently used clip first (a face-mesh frame is about
4 KB, so the default 20,000 frames stay under 100 MB).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from enliven.types import Keypoints

#: A batch of driving keypoints as the pipeline renders them.
KeypointBatch = Keypoints | np.ndarray


@dataclass(frozen=True)
class _Entry:
    model: object  # held so that its id() in the key cannot be reused by another model while the entry lives
    batches: tuple[KeypointBatch, ...]
    frames: int


def _frames(batch: KeypointBatch) -> int:
    return int(batch.value.shape[0] if isinstance(batch, Keypoints) else len(batch))


class DrivingCache:
    """Driving keypoints by (clip file, model, settings); thread-safe (the pipeline stores from its reading thread).

    Args:
        max_frames: the most frames kept over all clips (least recently used clips go first); at least 1.
    """

    def __init__(self, max_frames: int = 20_000) -> None:
        if max_frames < 1:
            raise ValueError(f"max_frames must be 1 or more, got {max_frames}")
        self.max_frames = max_frames
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(clip: Path, model: object, settings: Hashable) -> Hashable | None:
        """The key of ``clip`` (a file) read for ``model`` with ``settings`` (everything else that changes the
        keypoints: crop, tracking, size, batch size); ``None`` when the file cannot be read (nothing is cached)."""
        try:
            stat = clip.stat()
        except OSError:
            return None
        return (str(clip.resolve()), stat.st_size, stat.st_mtime_ns, id(model), settings)

    @property
    def frames(self) -> int:
        """Frames held now."""
        with self._lock:
            return sum(entry.frames for entry in self._entries.values())

    def get(self, key: Hashable, model: object) -> Iterator[KeypointBatch] | None:
        """The stored batches of ``key`` (made for ``model``), or ``None``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.model is not model:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return iter(entry.batches)

    def recording(self, key: Hashable, model: object, batches: Iterator[KeypointBatch]) -> Iterator[KeypointBatch]:
        """``batches`` passed through; once they are read to the end, they are stored under ``key``. Closing the
        iterator early closes ``batches`` and stores nothing."""
        kept: list[KeypointBatch] = []
        try:
            for batch in batches:
                kept.append(batch)
                yield batch
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()
        self._store(key, _Entry(model, tuple(kept), sum(map(_frames, kept))))

    def _store(self, key: Hashable, entry: _Entry) -> None:
        if entry.frames > self.max_frames:
            return
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while sum(e.frames for e in self._entries.values()) > self.max_frames:
                self._entries.popitem(last=False)
