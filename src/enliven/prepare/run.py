"""``prepare_dataset``: from raw videos, frame folders and manifests to a FOMM-layout training set.

The project's face set is built from the shared data, outside the repository, with::

    enliven prepare ../shared/data/manifest.csv ~/enliven-data/faces --kind faces --size 256 --workers 2

and the body and animal/cartoon sets with::

    enliven prepare ../shared/data/manifest.csv ~/enliven-data/bodies --kind bodies --size 256 --workers 2
    enliven prepare ../shared/data/manifest.csv ~/enliven-data/animals --kind any --manifest-kind animals_cartoons \\
        --min-frames 8 --size 256 --workers 2

Rows of the manifest with split ``extra`` (single source photos and odd clips kept for qualitative checks and
animation tests) are left out unless ``use_extra`` is set; rows with split ``val`` (the GRID clips) go to the
validation split with every other clip of their identities.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import replace
from pathlib import Path

from enliven.errors import ConfigError, OutputError
from enliven.io.atomic import remove_path
from enliven.prepare.assemble import HASHES, STAGING, PrepareSummary, assemble, forget_missing
from enliven.prepare.metadata import ClipResult, PrepareState
from enliven.prepare.shots import AnyCrop, Kind
from enliven.prepare.sources import DEFAULT_MANIFEST_KINDS, ClipSource, discover_clips
from enliven.prepare.splits import SplitRatios
from enliven.prepare.worker import OutputFormat, PrepareSettings, process_clip, quiet_worker
from enliven.types import LandmarkKind

logger = logging.getLogger(__name__)

EXTRA_REASON = "manifest split 'extra': kept for qualitative checks (use --use-extra to include it)"


def prepare_dataset(
    inputs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    kind: Kind = "faces",
    size: int = 256,
    *,
    fps: float | None = None,
    max_frames: int | None = None,
    min_frames: int = 16,
    workers: int = 1,
    split: SplitRatios | str = "0.8,0.1,0.1",
    seed: int = 0,
    output_format: OutputFormat = "png",
    any_crop: AnyCrop = "center",
    manifest_kinds: Sequence[str] | None = None,
    use_extra: bool = False,
    detect_every: int = 2,
    landmarks: bool = True,
    progress: bool = True,
) -> PrepareSummary:
    """Prepare a training dataset (see the module docstring for the project's sets).

    Layout: ``out/{train,val,test}/<clip>/000000.png...`` (or ``<clip>.mp4``), ``out/metadata.json``
    (:mod:`enliven.prepare.metadata`), ``out/prepare.log`` (skipped inputs and dropped shots with reasons) and
    ``out/.prepare/`` (resume state). A second run with the same settings skips finished inputs; a run that
    stops halfway keeps every input it finished.

    Args:
        inputs: folders of videos or frame folders, video files, manifest CSVs.
        out: dataset folder (created).
        kind: ``"faces"`` (FOMM VoxCeleb-style face crop), ``"bodies"`` (person box from MediaPipe pose) or
            ``"any"`` (centre square or whole frame).
        size: output side in pixels.
        fps: resample videos to this rate (``None`` keeps theirs).
        max_frames: read at most this many frames of each input.
        min_frames: inputs and shots shorter than this are dropped.
        workers: processes working in parallel.
        split: train/val/test shares of frames, as :class:`SplitRatios` or ``"0.8,0.1,0.1"``.
        seed: breaks ties in the split order.
        output_format: ``"png"`` frame folders or ``"mp4"`` files.
        any_crop: ``"center"`` or ``"full"`` for ``kind="any"``.
        manifest_kinds: manifest ``kind`` values to read (default: ``faces`` for faces, ``bodies`` for bodies,
            every row for any).
        use_extra: also use manifest rows whose split is ``extra``.
        detect_every: run the face/pose detector on every n-th frame.
        landmarks: store MediaPipe's landmarks beside each clip: face-mesh for ``kind="faces"``, pose for
            ``kind="bodies"`` (:mod:`enliven.prepare.landmarks`; clips that already have them are not redone).
        progress: show a progress bar on stderr.

    Raises:
        InputError: an input path is missing or of an unsupported type.
        OutputError: ``out`` cannot be written, or holds a dataset made with other settings.
        ConfigError: an option is out of range.
    """
    started = time.monotonic()
    ratios = split if isinstance(split, SplitRatios) else SplitRatios.parse(split)
    if workers < 1:
        raise ConfigError(f"--workers must be 1 or more, not {workers}; fix the option and run again.")
    settings = PrepareSettings(
        kind=kind, size=size, fps=fps, max_frames=max_frames, min_frames=min_frames, output_format=output_format,
        any_crop=any_crop, detect_every=detect_every,
    )  # fmt: skip
    kinds = tuple(manifest_kinds) if manifest_kinds is not None else DEFAULT_MANIFEST_KINDS[kind]
    clips = discover_clips([Path(p) for p in inputs], kinds)
    out = Path(out).expanduser()
    try:
        (out / STAGING).mkdir(parents=True, exist_ok=True)
        (out / HASHES).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"Cannot create the dataset folder {out} ({err}); choose a writable location.") from err
    state = PrepareState.load(out, settings.as_dict())
    for leftover in (out / STAGING).glob(".*"):  # half-written clips of an interrupted run
        remove_path(leftover)
    forget_missing(state, out)
    extra = [c for c in clips if c.split_hint == "extra" and not use_extra]
    clips = _distinct_names([c for c in clips if c.split_hint != "extra" or use_extra], state)
    todo = [c for c in clips if c.key not in state.results or not state.results[c.key].finished]
    _run_all(todo, settings, out, workers, progress, on_result=lambda r: _record(state, out, r))
    summary = assemble(state, out, ratios, seed, kind, size, ((c.origin, EXTRA_REASON) for c in extra))
    if kind in ("faces", "bodies") and landmarks and summary.total.clips:
        from enliven.prepare.landmarks import add_landmarks

        found = LandmarkKind.FACE_MESH if kind == "faces" else LandmarkKind.POSE
        summary = replace(summary, landmarks=add_landmarks(out, workers=workers, progress=progress, kind=found))
    return replace(summary, processed=len(todo), resumed=len(clips) - len(todo), seconds=time.monotonic() - started)


def _record(state: PrepareState, out: Path, result: ClipResult) -> None:
    state.results[result.key] = result
    state.save(out)


def _distinct_names(clips: list[ClipSource], state: PrepareState) -> list[ClipSource]:
    """Rename inputs whose name an earlier run gave to a different input (their clips share the folder)."""
    taken = {r.source.name: k for k, r in state.results.items()}
    out = []
    for clip in clips:
        owner = taken.get(clip.name)
        if owner is not None and owner != clip.key:
            clip = replace(clip, name=f"{clip.name}_{hashlib.sha1(clip.key.encode()).hexdigest()[:6]}")
        out.append(clip)
    return out


def _run_all(
    todo: list[ClipSource],
    settings: PrepareSettings,
    out: Path,
    workers: int,
    progress: bool,
    on_result: Callable[[ClipResult], None],
) -> None:
    """Process every input (in ``workers`` processes), calling ``on_result`` in this process as each finishes."""
    if not todo:
        return
    from tqdm import tqdm

    work = out / ".prepare"
    bar = tqdm(total=len(todo), desc="prepare", unit="clip", disable=not progress, dynamic_ncols=True)
    try:
        if workers == 1:
            for clip in todo:
                bar.set_postfix_str(clip.name[:30], refresh=False)
                on_result(process_clip(clip, settings, work))
                bar.update()
            return
        # Spawned (not forked) workers: MediaPipe and ffmpeg reader threads do not survive a fork safely.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=quiet_worker) as pool:
            pending: set[Future] = set()
            queue: Iterable[ClipSource] = iter(todo)
            try:
                # Keep only a few tasks queued so an interrupt leaves little half-done work behind.
                for clip in _take(queue, 2 * workers):
                    pending.add(pool.submit(process_clip, clip, settings, work))
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        on_result(future.result())
                        bar.update()
                    for clip in _take(queue, len(done)):
                        pending.add(pool.submit(process_clip, clip, settings, work))
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
    finally:
        bar.close()


def _take(items: Iterable[ClipSource], count: int) -> list[ClipSource]:
    iterator = iter(items)
    taken = []
    for _ in range(count):
        try:
            taken.append(next(iterator))
        except StopIteration:
            break
    return taken
