"""Training data: FOMM-layout clip readers, the frame-pair dataset and clip-consistent augmentation.

Serves training only: it imports neither the pipelines nor the CLI, nor the face tools (MediaPipe, dlib), so it
runs on a GPU machine that lacks them.
"""

from __future__ import annotations

from enliven.data.augment import Augmenter, AugmentParams
from enliven.data.config import AugmentationConfig, load_augmentation
from enliven.data.layout import ClipKind, ClipRef, find_clips, group_by_identity
from enliven.data.pairs import FramePair, PairBatch, PairDataset, PairDatasetConfig, collate_pairs, worker_init_fn
from enliven.data.readers import ClipReader

__all__ = [
    "AugmentParams",
    "AugmentationConfig",
    "Augmenter",
    "ClipKind",
    "ClipReader",
    "ClipRef",
    "FramePair",
    "PairBatch",
    "PairDataset",
    "PairDatasetConfig",
    "collate_pairs",
    "find_clips",
    "group_by_identity",
    "load_augmentation",
    "worker_init_fn",
]
