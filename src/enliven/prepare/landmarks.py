"""Landmark sidecars: MediaPipe's face-mesh (468) or pose (33) landmarks of every stored frame, for training
without MediaPipe.

``add_landmarks(root)`` writes ``<split>/<clip name>.face_mesh.npy`` beside each clip of a FOMM-layout dataset
(``kind=LandmarkKind.POSE``: ``.pose.npy``), in the storage convention of :class:`enliven.types.LandmarkKind`
(``T x N x 2`` float32 pixel positions of the stored frames, a NaN row where no face or person was found). Each clip
gets a fresh MediaPipe graph in video mode, so tracking restarts per clip. Sidecars are written to a temporary file
and renamed; a sidecar that already holds one row per frame is kept, so an interrupted run resumes where it stopped.

Command line: ``enliven data landmarks ~/enliven-data/faces --workers 2`` (``--kind pose`` for bodies);
``enliven prepare --kind faces`` calls :func:`add_landmarks` for the clips it writes.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from enliven.data.layout import ClipKind, ClipRef, find_clips, split_names
from enliven.data.pairs import landmarks_path
from enliven.data.readers import ClipReader
from enliven.errors import ConfigError, EnlivenError, InputError
from enliven.io import atomic_output
from enliven.preprocess._deps import MissingDependencyError
from enliven.types import LandmarkKind

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipLandmarks:
    """What happened to one clip: ``frames`` stored frames, ``missing`` of them without a face.

    ``skipped`` when its sidecar was already complete; ``error`` (one sentence) when the clip could not be read.
    """

    name: str
    frames: int = 0
    missing: int = 0
    skipped: bool = False
    error: str | None = None


@dataclass(frozen=True)
class LandmarksSummary:
    """What a run of :func:`add_landmarks` did.

    Attributes:
        clips: clips found in the splits searched.
        computed: clips whose sidecar this run wrote.
        skipped: clips whose sidecar was already complete (not recomputed).
        frames: frames of the computed clips.
        missing: frames of the computed clips without a face (a person, for pose landmarks): NaN rows.
        failed: ``(clip path, reason)`` for clips that could not be read (no sidecar written).
        seconds: wall time.
    """

    clips: int = 0
    computed: int = 0
    skipped: int = 0
    frames: int = 0
    missing: int = 0
    failed: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0
    kind: LandmarkKind = LandmarkKind.FACE_MESH

    def line(self) -> str:
        """The one-line report printed by the command line."""
        what = "Face-mesh" if self.kind is LandmarkKind.FACE_MESH else "Pose"
        text = (
            f"{what} landmarks: {self.clips} clips ({self.computed} computed, {self.skipped} already done), "
            f"{self.frames} frames, {self.missing} without {self.kind.subject}, in {self.seconds:.0f} s."
        )
        if self.failed:
            text += f" {len(self.failed)} clips could not be read, e.g. {self.failed[0][0]}: {self.failed[0][1]}"
        return text


def dataset_clips(root: Path, splits: Sequence[str] | None = None) -> list[ClipRef]:
    """Every clip of the given splits of ``root`` (default: all its splits; empty ones are passed over).

    Raises:
        InputError: ``root`` is not a dataset or holds no clip, or a split asked for is missing or empty.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise InputError(f"The dataset folder {root} does not exist; give the folder 'enliven prepare' wrote.")
    if splits:
        return [clip for split in splits for clip in find_clips(root, split)]
    clips = []
    for split in split_names(root) or ["train", "test"]:
        try:
            clips += find_clips(root, split)
        except InputError:  # an empty split folder, or a side of the random split without clips
            continue
    if not clips:
        raise InputError(f"No clips found in {root}; expected the split folders that 'enliven prepare' writes.")
    return clips


def add_landmarks(
    root: str | Path,
    splits: Sequence[str] | None = None,
    workers: int = 1,
    progress: bool = True,
    clips: Sequence[ClipRef] | None = None,
    kind: LandmarkKind = LandmarkKind.FACE_MESH,
) -> LandmarksSummary:
    """Write the landmark sidecar of every clip of a dataset that lacks a complete one (see the module docstring).

    Args:
        root: the FOMM-layout dataset folder.
        splits: split folders to process (default: every split).
        workers: processes working in parallel (each owns its MediaPipe graph).
        progress: show a progress bar on stderr.
        clips: process these clips instead of scanning ``root`` (``enliven prepare`` passes the ones it wrote).
        kind: the face mesh (faces) or the pose (bodies).

    Returns:
        The summary; unreadable clips are listed in ``failed``, not raised.

    Raises:
        InputError: ``root`` is not a dataset, or a split is missing or empty.
        ConfigError: ``workers`` is below 1.
        MissingDependencyError: MediaPipe is not installed.
    """
    started = time.monotonic()
    if workers < 1:
        raise ConfigError(f"--workers must be 1 or more, not {workers}; fix the option and run again.")
    todo = list(clips) if clips is not None else dataset_clips(Path(root), splits)
    results = _run_all(todo, workers, progress, LandmarkKind(kind))
    done = [r for r in results if r.error is None and not r.skipped]
    return LandmarksSummary(
        clips=len(todo),
        computed=len(done),
        skipped=sum(r.skipped for r in results),
        frames=sum(r.frames for r in done),
        missing=sum(r.missing for r in done),
        failed=tuple(sorted((r.name, r.error) for r in results if r.error is not None)),
        seconds=time.monotonic() - started,
        kind=LandmarkKind(kind),
    )


def clip_landmarks(clip: ClipRef, kind: LandmarkKind = LandmarkKind.FACE_MESH) -> ClipLandmarks:
    """Compute and write one clip's sidecar unless a complete one exists; errors become ``error``, not raised."""
    reader = ClipReader()
    target = landmarks_path(clip, kind)
    try:
        count = reader.num_frames(clip)
        if _complete(target, count, kind):
            return ClipLandmarks(str(clip.path), count, skipped=True)
        points = _track(reader, clip, kind)
        with atomic_output(target) as temp:
            np.save(temp, points)
    except MissingDependencyError:  # nothing can be done without MediaPipe: stop the run with its hint
        raise
    except EnlivenError as err:
        return ClipLandmarks(str(clip.path), error=str(err))
    except (OSError, ValueError, RuntimeError) as err:  # damaged data that slipped past the readers
        logger.debug("landmarks failed on %s", clip.path, exc_info=True)
        return ClipLandmarks(str(clip.path), error=f"{type(err).__name__}: {err}")
    return ClipLandmarks(str(clip.path), len(points), int(np.isnan(points[:, 0, 0]).sum()))


def _complete(path: Path, count: int, kind: LandmarkKind) -> bool:
    """Whether ``path`` is a sidecar of ``count`` frames (read lazily: only the header)."""
    if not path.is_file():
        return False
    try:
        stored = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return False
    return stored.shape == (count, kind.num_points, 2) and stored.dtype == np.float32


def _frames(reader: ClipReader, clip: ClipRef) -> Iterator[np.ndarray]:
    if clip.kind is ClipKind.FRAMES:  # one decoded frame at a time: long clips need not fit in memory
        for index in range(reader.num_frames(clip)):
            yield reader.read(clip, (index,))[0]
    else:
        yield from reader.read_all(clip)


def _track(reader: ClipReader, clip: ClipRef, kind: LandmarkKind) -> np.ndarray:
    """``T x N x 2`` float32 landmarks of every frame of ``clip``, NaN rows where nothing was found."""
    from enliven.preprocess import FaceLandmarker
    from enliven.preprocess.person import PersonDetector

    rows = []
    # fresh per clip: tracking must not carry over between clips
    with FaceLandmarker(video=True) if kind is LandmarkKind.FACE_MESH else PersonDetector(video=True) as landmarker:
        for frame in _frames(reader, clip):
            points = landmarker.landmarks(frame)
            rows.append(np.full((kind.num_points, 2), np.nan) if points is None else points[: kind.num_points])
    if not rows:
        raise InputError(f"The clip {clip.path} has no frames; delete it or re-run prepare.")
    return np.stack(rows).astype(np.float32)


def _silent_worker() -> None:
    """Worker set-up that drops the worker's stderr.

    MediaPipe prints a few lines per graph (one graph per clip here) that would bury the progress bar; errors still
    reach the caller through the results.
    """
    from enliven.prepare.worker import quiet_worker

    quiet_worker()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


def _run_all(clips: list[ClipRef], workers: int, progress: bool, kind: LandmarkKind) -> list[ClipLandmarks]:
    if not clips:
        return []
    from tqdm import tqdm

    results: list[ClipLandmarks] = []
    bar = tqdm(total=len(clips), desc="landmarks", unit="clip", disable=not progress, dynamic_ncols=True)
    frames = 0

    def done(result: ClipLandmarks) -> None:
        nonlocal frames
        results.append(result)
        frames += result.frames
        bar.set_postfix_str(f"{frames} frames", refresh=False)
        bar.update()

    try:
        if workers == 1 or len(clips) == 1:
            for clip in clips:
                done(clip_landmarks(clip, kind))
            return results
        # Spawned (not forked) workers: MediaPipe's threads do not survive a fork safely.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_silent_worker) as pool:
            futures = [pool.submit(clip_landmarks, clip, kind) for clip in clips]
            try:
                for future in as_completed(futures):
                    done(future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    finally:
        bar.close()
    return results
