"""The training dataset: (source, driving) frame pairs drawn from one clip, augmented alike.

An epoch holds ``num_repeats`` passes over the clips, or over the identities when ``id_sampling`` is on: then each
identity appears exactly ``num_repeats`` times per epoch whatever its number of clips (a person filmed in 40 clips
weighs no more than one filmed once), and each item draws one clip of its identity, then two distinct frames.

Landmarks (``landmarks: true`` for the face mesh, ``landmarks: pose`` for bodies): each clip's sidecar
(:class:`enliven.types.LandmarkKind`, written by ``enliven data landmarks [--kind pose]``) is read once per worker and
cached; pairs are drawn among the frames where they were found (a face, a person), and
each item carries both frames' landmarks in ``[-1, 1]`` coordinates of the delivered frames, moved by the same
augmentation as the pixels (a mirror mirrors the coordinates and keeps the point order: the model pairs point ``k``
of the source with point ``k`` of the driving frame, which stays true).

Randomness: with a seed, item ``i`` of epoch ``e`` draws from ``numpy.random.default_rng((seed, e, i))``, so a
batch is the same whatever the number of workers; call :meth:`PairDataset.set_epoch` between epochs. Without a seed
every item draws fresh entropy (no duplicated streams across workers, unlike a global numpy seed).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, default_collate

from enliven.data.augment import Augmenter, AugmentParams, warp_matrix
from enliven.data.config import AugmentationConfig, find_augmentation_settings
from enliven.data.layout import ClipRef, find_clips, group_by_identity
from enliven.data.readers import ClipReader
from enliven.errors import ConfigError, InputError
from enliven.face_mesh import pixels_to_normalized
from enliven.types import LandmarkKind

log = logging.getLogger(__name__)

# Consecutive unreadable clips after which an item gives up (the dataset is broken, not one clip).
_MAX_SKIPS = 20
# Landmark sidecars kept per worker (a 300-frame clip's is 1.1 MB); enough for every clip of a small dataset.
_MAX_CACHED_LANDMARKS = 128


def landmarks_path(clip: ClipRef, kind: LandmarkKind = LandmarkKind.FACE_MESH) -> Path:
    """Where a landmark sidecar of ``clip`` lives: ``<split folder>/<clip name>.face_mesh.npy`` (or ``.pose.npy``)."""
    return clip.path.with_name(clip.name + kind.suffix)


def choose_frames(candidates: np.ndarray, rng: np.random.Generator, max_gap: int | None) -> tuple[int, int]:
    """Two distinct frame indices from ``candidates`` (sorted, at least 2), the earlier first (source before driving,
    as FOMM samples; a time flip then reverses the motion), at most ``max_gap`` apart when another candidate is that
    close to the first one drawn."""
    if max_gap is None:
        first, second = sorted(int(i) for i in rng.choice(candidates, size=2, replace=False))
        return first, second
    anchor = int(candidates[rng.integers(len(candidates))])
    near = candidates[(np.abs(candidates - anchor) <= max_gap) & (candidates != anchor)]
    other = int(rng.choice(near if len(near) else candidates[candidates != anchor]))
    return min(anchor, other), max(anchor, other)


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """``T`` inner-lip gaps (face-mesh points 13 and 14) over the eye-corner distance (33 and 263) of ``T x 468 x 2``
    landmarks: 0 for a closed mouth, about 0.3-0.6 wide open; NaN where there is no face."""
    gap = np.linalg.norm(landmarks[:, 13] - landmarks[:, 14], axis=-1)
    eyes = np.linalg.norm(landmarks[:, 33] - landmarks[:, 263], axis=-1)
    return gap / np.maximum(eyes, 1e-6)


def choose_frames_by_mouth(
    candidates: np.ndarray, opening: np.ndarray, rng: np.random.Generator, max_gap: int | None
) -> tuple[int, int]:
    """Like :func:`choose_frames`, but the second frame is drawn with probability growing with how much its mouth
    opening (:func:`mouth_opening`, indexed by frame) differs from the first's: a talking face's pairs mostly show
    the same mouth, and a model learns to open and close one only from pairs where it changes."""
    anchor = int(candidates[rng.integers(len(candidates))])
    near = candidates[(candidates != anchor) & (np.abs(candidates - anchor) <= (max_gap or len(opening)))]
    near = near if len(near) else candidates[candidates != anchor]
    weights = np.abs(opening[near] - opening[anchor]) + 0.02  # a floor keeps every frame possible
    other = int(rng.choice(near, p=weights / weights.sum()))
    return min(anchor, other), max(anchor, other)


@dataclass(frozen=True)
class PairDatasetConfig:
    """Settings of :class:`enliven.data.pairs.PairDataset`.

    Attributes:
        root: the FOMM-layout dataset folder.
        split: which split to read (``train``, ``val``, ``test``).
        frame_size: ``(height, width)`` of the frames delivered; stored frames of another size are resized.
        id_sampling: draw identities uniformly (one item per identity per repeat), then a clip of that identity.
        num_repeats: passes over the identities (or clips) per epoch.
        augmentation: the augmentation applied (``AugmentationConfig()`` only converts to the value range).
        seed: base seed; items are then reproducible whatever the worker count. ``None`` draws fresh entropy.
        skip_corrupt: replace an unreadable clip by another (logged once per clip) instead of raising.
        landmarks: deliver each frame's landmarks of this kind (``face_mesh``, or ``pose`` for bodies; YAML
            ``true`` means ``face_mesh``; needs the sidecars of ``enliven data landmarks [--kind pose]``) and draw only
            frames where they were found; a clip with fewer than two such frames is treated as unreadable.
        max_frame_gap: at most this many frames between a pair's two frames (``None``: any two frames of the clip,
            as FOMM samples). Evaluation animates each frame from the clip's first one; a gap near that protocol's
            clip length trains on the motion it measures.
        mouth_pairs: with this probability a pair's second frame is drawn by how much its mouth differs from the
            first's (:func:`choose_frames_by_mouth`; needs ``landmarks``), else uniformly.
        plates: deliver the source frame's background plate too (the frame with its person painted out, by
            MediaPipe's selfie segmentation in each worker: :func:`enliven.preprocess.person.background_plate`),
            for body models that compose over it.
    """

    root: Path
    split: str = "train"
    frame_size: tuple[int, int] = (256, 256)
    id_sampling: bool = False
    num_repeats: int = 1
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    seed: int | None = None
    skip_corrupt: bool = True
    landmarks: LandmarkKind | None = None
    max_frame_gap: int | None = None
    mouth_pairs: float = 0.0
    plates: bool = False

    def __post_init__(self) -> None:
        height, width = self.frame_size
        if not (isinstance(height, int) and isinstance(width, int) and 8 <= height <= 4096 and 8 <= width <= 4096):
            raise ConfigError(f"frame_size must be two integers in [8, 4096], got {self.frame_size!r}.")
        if not isinstance(self.num_repeats, int) or self.num_repeats < 1:
            raise ConfigError(f"num_repeats must be a positive integer, got {self.num_repeats!r}.")
        if not isinstance(self.split, str) or not self.split:
            raise ConfigError(f"split must be a split folder name such as 'train', got {self.split!r}.")
        for name in ("id_sampling", "skip_corrupt", "plates"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}.")
        object.__setattr__(self, "landmarks", _landmark_kind(self.landmarks))
        gap = self.max_frame_gap
        if gap is not None and (isinstance(gap, bool) or not isinstance(gap, int) or gap < 1):
            raise ConfigError(f"max_frame_gap must be a positive integer or null, got {gap!r}.")
        if (
            isinstance(self.mouth_pairs, bool)
            or not isinstance(self.mouth_pairs, int | float)
            or not (0 <= self.mouth_pairs <= 1)
        ):
            raise ConfigError(f"mouth_pairs must be a probability in [0, 1], got {self.mouth_pairs!r}.")
        if self.mouth_pairs and self.landmarks is not LandmarkKind.FACE_MESH:
            raise ConfigError("mouth_pairs needs the face-mesh landmarks: set 'landmarks: true' too.")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ConfigError(f"seed must be an integer or null, got {self.seed!r}.")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PairDatasetConfig:
        """Parse our keys or FOMM's ``dataset_params`` (``root_dir``, ``frame_shape``, ``augmentation_params``)."""
        data = dict(data)
        roots = [data.pop(k) for k in ("root", "root_dir") if k in data]
        shapes = [data.pop(k) for k in ("frame_size", "frame_shape") if k in data]
        if len(roots) != 1 or len(shapes) > 1:
            raise ConfigError("The dataset settings need one 'root' (or FOMM's 'root_dir') and at most one frame_size.")
        root, shape = roots[0], shapes[0] if shapes else (256, 256)
        augmentation = find_augmentation_settings(
            {k: data.pop(k) for k in ("augmentation", "augmentation_params") if k in data}
        )
        data.pop("pairs_list", None)  # FOMM's animation pairs: not used for training
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"Unknown dataset setting '{unknown[0]}'; use {', '.join(sorted(known))}.")
        if not isinstance(shape, list | tuple) or len(shape) < 2:
            raise ConfigError(f"frame_size must be [height, width], got {shape!r}.")
        return cls(
            root=Path(root),
            frame_size=(shape[0], shape[1]),
            augmentation=AugmentationConfig.from_dict(augmentation or None),
            **data,
        )


def _landmark_kind(value: object) -> LandmarkKind | None:
    """A dataset's ``landmarks`` setting: ``true`` (the face mesh, as before kinds existed), ``false``/``null`` or a
    kind's name."""
    if value is None or value is False:
        return None
    if value is True:
        return LandmarkKind.FACE_MESH
    try:
        return LandmarkKind(value)
    except ValueError:
        names = ", ".join(kind.value for kind in LandmarkKind)
        raise ConfigError(f"landmarks must be true, false or one of {names}, got {value!r}.") from None


class FramePair(NamedTuple):
    """One training item.

    Attributes:
        source: ``3 x H x W`` float32 in the configured value range, RGB.
        driving: ``3 x H x W`` float32, same clip, augmented with the same parameters.
        clip: the clip name; identity: its identity.
        source_index, driving_index: frame numbers within the clip (after a time flip, as delivered).
        source_landmarks, driving_landmarks: ``N x 2`` float32 landmarks (468 face-mesh or 33 pose points)
            ``(x, y)`` of each frame in ``[-1, 1]``
            coordinates of the delivered frame (``-1``/``+1`` at the centres of its edge pixels), augmented like
            the pixels; ``None`` unless the dataset's ``landmarks`` setting is on.
        source_plate: ``4 x H x W``: the source with its person painted out (like ``source``), and the person's mask
            in ``[0, 1]``; ``None`` unless the dataset's ``plates`` setting is on.
    """

    source: Tensor
    driving: Tensor
    clip: str
    identity: str
    source_index: int
    driving_index: int
    source_landmarks: Tensor | None = None
    driving_landmarks: Tensor | None = None
    source_plate: Tensor | None = None


class PairBatch(NamedTuple):
    """A batch of :class:`FramePair`: ``B x 3 x H x W`` tensors, per-item names and frame numbers, and (when the
    dataset delivers them) ``B x N x 2`` landmarks in ``[-1, 1]`` frame coordinates and ``B x 3 x H x W`` source
    plates."""

    source: Tensor
    driving: Tensor
    clips: tuple[str, ...]
    identities: tuple[str, ...]
    source_indices: Tensor
    driving_indices: Tensor
    source_landmarks: Tensor | None = None
    driving_landmarks: Tensor | None = None
    source_plate: Tensor | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> PairBatch:
        def move(tensor: Tensor | None) -> Tensor | None:
            return None if tensor is None else tensor.to(device, non_blocking=non_blocking)

        return self._replace(
            source=move(self.source),
            driving=move(self.driving),
            source_landmarks=move(self.source_landmarks),
            driving_landmarks=move(self.driving_landmarks),
            source_plate=move(self.source_plate),
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
        source_landmarks=_stack_optional([item.source_landmarks for item in items]),
        driving_landmarks=_stack_optional([item.driving_landmarks for item in items]),
        source_plate=_stack_optional([item.source_plate for item in items]),
    )


def _stack_optional(tensors: list[Tensor | None]) -> Tensor | None:
    return None if tensors[0] is None else default_collate(tensors)


def augment_points(
    points: np.ndarray, params: AugmentParams, in_size: tuple[int, int], out_size: tuple[int, int]
) -> np.ndarray:
    """Move ``N x 2`` pixel positions of a stored frame as :class:`Augmenter` moves its pixels.

    Args:
        points: ``(x, y)`` in pixels of the stored frame (pixel ``i`` covers ``[i, i + 1)``).
        params: the augmentation parameters of the frame.
        in_size, out_size: ``(height, width)`` of the stored and of the delivered frame.

    Returns:
        ``N x 2`` float64 positions in pixels of the delivered frame, same convention.
    """
    # warp_matrix maps output to input pixels with integer pixel centres (cv2); ours sit at half-integers.
    matrix = np.vstack([warp_matrix(params, in_size, out_size), [0.0, 0.0, 1.0]])
    forward = np.linalg.inv(matrix)
    centred = np.asarray(points, dtype=np.float64) - 0.5
    return centred @ forward[:2, :2].T + forward[:2, 2] + 0.5


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
        self._landmarks: OrderedDict[Path, np.ndarray] = OrderedDict()
        self._segmenter: Any = None  # a PersonSegmenter, made in the worker that first needs it (plates)
        if config.landmarks:
            kind = config.landmarks
            missing = [clip for clip in self.clips if not landmarks_path(clip, kind).is_file()]
            if missing:
                raise InputError(
                    f"{len(missing)} of {len(self.clips)} clips of {config.root} lack their {kind.value} landmark file "
                    f"(such as {landmarks_path(missing[0], kind).name}); run '{_landmarks_command(config)}' first."
                )

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
                clip = self._replacement(clip, rng)
        raise InputError(
            f"{_MAX_SKIPS} clips in a row of {self.config.root} could not be read; check the dataset "
            "(the log names them)."
        )

    def _pick_clip(self, index: int, rng: np.random.Generator) -> ClipRef:
        if self.config.id_sampling:
            candidates = self.by_identity[self.identities[index % len(self.identities)]]
            return candidates[int(rng.integers(len(candidates)))]
        return self.clips[index % len(self.clips)]

    def _replacement(self, bad: ClipRef, rng: np.random.Generator) -> ClipRef:
        """Another clip for an unreadable one: of the same identity if possible, so id sampling stays uniform."""
        for pool in (self.by_identity[bad.identity], self.clips):
            usable = [clip for clip in pool if clip.name not in self._bad]
            if usable:
                return usable[int(rng.integers(len(usable)))]
        return self.clips[int(rng.integers(len(self.clips)))]

    def _make_pair(self, clip: ClipRef, rng: np.random.Generator) -> FramePair:
        count = self.reader.num_frames(clip)
        kind = self.config.landmarks
        landmarks = self._clip_landmarks(clip, count, kind) if kind is not None else None
        if landmarks is not None:
            with_face = np.flatnonzero(~np.isnan(landmarks).any(axis=(1, 2)))
            if len(with_face) < 2:
                raise InputError(f"The clip {clip.path} has fewer than 2 frames with {kind.subject}; it is left out.")
            if self.config.mouth_pairs and rng.random() < self.config.mouth_pairs:
                first, second = choose_frames_by_mouth(
                    with_face, mouth_opening(landmarks), rng, self.config.max_frame_gap
                )
            else:
                first, second = choose_frames(with_face, rng, self.config.max_frame_gap)
        elif count >= 2:
            first, second = choose_frames(np.arange(count), rng, self.config.max_frame_gap)
        else:
            first = second = 0  # a one-frame clip can only teach the identity mapping
        params = self.augmenter.sample(rng)
        if params.time_flip:
            first, second = second, first
        frames = self.reader.read(clip, (first, second))
        source, driving = self.augmenter.apply(frames, params, rng)
        points = (None, None)
        if landmarks is not None:
            points = tuple(
                torch.from_numpy(self._delivered_points(landmarks[index], frame.shape[:2], params))
                for index, frame in zip((first, second), frames, strict=True)
            )
        plate = torch.from_numpy(self._plate(source)) if self.config.plates else None
        return FramePair(
            source=torch.from_numpy(source),
            driving=torch.from_numpy(driving),
            clip=clip.name,
            identity=clip.identity,
            source_index=first,
            driving_index=second,
            source_landmarks=points[0],
            driving_landmarks=points[1],
            source_plate=plate,
        )

    def _plate(self, source: np.ndarray) -> np.ndarray:
        """The delivered ``3 x H x W`` source with its person painted out, in the same value range, and the person's
        mask in ``[0, 1]`` as a fourth channel (:func:`enliven.preprocess.person.person_plate`)."""
        from enliven.preprocess.person import PersonSegmenter, person_plate

        if self._segmenter is None:  # one per worker process, made there
            self._segmenter = PersonSegmenter()
        low, high = self.config.augmentation.value_range
        image = ((np.transpose(source, (1, 2, 0)) - low) / (high - low) * 255).clip(0, 255).round().astype(np.uint8)
        plate = np.ascontiguousarray(person_plate(image, self._segmenter.mask(image)).transpose(2, 0, 1)) / 255
        plate[:3] = plate[:3] * (high - low) + low
        return plate.astype(np.float32)

    def _delivered_points(self, points: np.ndarray, in_size: tuple[int, int], params: AugmentParams) -> np.ndarray:
        """One frame's stored landmarks -> ``N x 2`` float32 ``[-1, 1]`` coordinates of its delivered frame."""
        height, width = self.config.frame_size
        moved = augment_points(points, params, in_size, (height, width))
        return pixels_to_normalized(moved, width, height).astype(np.float32)

    def _clip_landmarks(self, clip: ClipRef, count: int, kind: LandmarkKind) -> np.ndarray:
        """The clip's ``T x N x 2`` sidecar, read once and kept in a small per-process LRU cache.

        Raises:
            InputError: the sidecar is missing, unreadable or does not hold one row per frame.
        """
        path = landmarks_path(clip, kind)
        cached = self._landmarks.pop(path, None)
        if cached is None:
            try:
                cached = np.load(path).astype(np.float32, copy=False)  # float16 in packed datasets
            except (OSError, ValueError) as err:
                raise InputError(
                    f"Cannot read the landmarks {path} ({err}); run '{_landmarks_command(self.config)}'."
                ) from err
            if len(self._landmarks) >= _MAX_CACHED_LANDMARKS:
                self._landmarks.popitem(last=False)
        self._landmarks[path] = cached
        if cached.shape != (count, kind.num_points, 2):
            raise InputError(
                f"The landmarks {path} have shape {cached.shape} for a clip of {count} frames; delete them and "
                f"run '{_landmarks_command(self.config)}'."
            )
        return cached


def _landmarks_command(config: PairDatasetConfig) -> str:
    """The command that writes a dataset's missing landmark sidecars."""
    kind = "" if config.landmarks in (None, LandmarkKind.FACE_MESH) else f" --kind {config.landmarks.value}"
    return f"enliven data landmarks {config.root}{kind}"
