"""Turning per-input results into the dataset: drop duplicates, cluster identities, split, place, describe.

This runs after every input has been processed, in the main process, and is cheap (no decoding): it moves
finished clip folders between ``OUT/.prepare/staging`` and ``OUT/{train,val,test}`` and rewrites
``metadata.json``. It can run any number of times; every run gives the same layout for the same results.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from enliven.io import atomic_output
from enliven.io.atomic import remove_path
from enliven.prepare.clean import find_duplicates, sample_hashes
from enliven.prepare.identity import IdentityInput, cluster_identities
from enliven.prepare.metadata import ClipResult, PrepareState, clip_metadata, write_metadata
from enliven.prepare.splits import SPLITS, IdentityLoad, SplitRatios, assign_splits
from enliven.types import LandmarkKind

if TYPE_CHECKING:  # imported lazily at run time: the landmark code pulls in torch, which workers do not need
    from enliven.prepare.landmarks import LandmarksSummary

STAGING = Path(".prepare") / "staging"
HASHES = Path(".prepare") / "hashes"


@dataclass(frozen=True)
class SplitCounts:
    """Size of one split."""

    clips: int = 0
    identities: int = 0
    frames: int = 0


@dataclass(frozen=True)
class PrepareSummary:
    """What a run of :func:`enliven.prepare.prepare_dataset` produced.

    Attributes:
        out: the dataset folder.
        splits: counts per split (``train``, ``val``, ``test``).
        skipped: ``(input, reason)`` for every input that gave no clip, sorted by input.
        dropped: ``(input, reason)`` for shots left out of inputs that gave clips.
        processed: inputs processed in this run.
        resumed: inputs found finished by an earlier run and not processed again.
        seconds: wall time of the run.
        reasons: number of skipped inputs per reason category.
        landmarks: what the face-mesh landmark pass did (``kind="faces"`` only; ``None`` when it did not run).
    """

    out: Path
    splits: dict[str, SplitCounts]
    skipped: tuple[tuple[str, str], ...] = ()
    dropped: tuple[tuple[str, str], ...] = ()
    processed: int = 0
    resumed: int = 0
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)
    landmarks: LandmarksSummary | None = None

    @property
    def total(self) -> SplitCounts:
        values = self.splits.values()
        return SplitCounts(
            sum(v.clips for v in values), sum(v.identities for v in values), sum(v.frames for v in values)
        )


def reason_category(reason: str) -> str:
    """The short category of a skip reason (the text before the first colon)."""
    return reason.split(":", 1)[0].strip()


def _drop_duplicates(state: PrepareState, out: Path) -> bool:
    """Mark inputs that repeat an earlier one (same frames) as skipped and delete their clips.

    Returns:
        Whether any input was found to be a duplicate.
    """
    kept = [r for r in state.results.values() if r.shots]
    # Keep the copy that validates (val hint), else the longer one: never train on a copy of a val clip.
    kept.sort(key=lambda r: (r.source.split_hint != "val", -r.num_frames, r.source.name))
    signatures = []
    for result in kept:
        path = out / HASHES / f"{result.source.name}.npy"
        hashes = np.load(path) if path.exists() else np.zeros((0, 32), np.uint8)
        signatures.append((result.key, sample_hashes(hashes), hashes))
    duplicates = find_duplicates(signatures)
    for key, original in duplicates.items():
        result = state.results[key]
        for shot in result.shots:
            for place in _locations(out, shot.filename):
                remove_path(place)
                for sidecar in _sidecars(place):
                    remove_path(sidecar)
        reason = f"duplicate: repeats {state.results[original].source.origin}"
        state.results[key] = ClipResult(key, result.source, reason=reason, embeddings=result.embeddings)
    return bool(duplicates)


def _identity_input(result: ClipResult) -> IdentityInput:
    embeddings = np.array(result.embeddings, dtype=np.float64).reshape(-1, 128)
    return IdentityInput(result.source.name, embeddings, result.source.identity_hint, result.source.group)


def _locations(out: Path, filename: str) -> list[Path]:
    return [p for p in (out / STAGING / filename, *(out / s / filename for s in SPLITS)) if p.exists()]


def _sidecars(clip: Path) -> list[Path]:
    """The clip's landmark files, one per kind (:class:`enliven.types.LandmarkKind`); they move and go with it."""
    return [clip.with_name(clip.name + kind.suffix) for kind in LandmarkKind]


def _place(out: Path, filename: str, split: str) -> None:
    """Move a finished clip (and its landmark sidecar) into ``OUT/<split>/`` from wherever an earlier run left it."""
    target = out / split / filename
    places = _locations(out, filename)
    if not places:
        raise FileNotFoundError(f"the prepared clip {filename} is missing from {out}")
    source = target if target in places else places[0]
    if source != target:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        for moved, placed in zip(_sidecars(source), _sidecars(target), strict=True):
            if moved.exists():
                os.replace(moved, placed)
            else:
                remove_path(placed)  # an orphan of an earlier clip of this name
    for other in places:
        if other not in (source, target):
            remove_path(other)
            for sidecar in _sidecars(other):
                remove_path(sidecar)


def _missing_clips(state: PrepareState, out: Path) -> list[str]:
    """Keys of finished inputs whose clips were deleted by hand: they are processed again."""
    return [k for k, r in state.results.items() if any(not _locations(out, s.filename) for s in r.shots)]


def forget_missing(state: PrepareState, out: Path) -> None:
    """Drop results whose clips are no longer on disk, so the next processing pass redoes them."""
    for key in _missing_clips(state, out):
        del state.results[key]


def assemble(
    state: PrepareState,
    out: Path,
    ratios: SplitRatios,
    seed: int,
    kind: str,
    size: int,
    extra_skipped: Iterable[tuple[str, str]] = (),
) -> PrepareSummary:
    """Dedupe, cluster, split and place every finished clip of ``state``; write ``metadata.json`` and the log.

    Returns:
        The summary (its timing fields are left at 0 for the caller to fill).
    """
    if _drop_duplicates(state, out):
        state.save(out)
    results = sorted((r for r in state.results.values() if r.shots), key=lambda r: r.source.name)
    identity_of = cluster_identities([_identity_input(r) for r in results])
    loads: dict[str, IdentityLoad] = {}
    for r in results:
        ident = identity_of[r.source.name]
        prev = loads.get(ident, IdentityLoad(ident, 0))
        hints = prev.hints | ({r.source.split_hint} if r.source.split_hint else set())
        loads[ident] = IdentityLoad(ident, prev.frames + r.num_frames, frozenset(hints))
    split_of = assign_splits(list(loads.values()), ratios, seed)
    clips: dict[str, dict] = {}
    per_split: dict[str, dict] = {s: {"clips": 0, "ids": set(), "frames": 0} for s in SPLITS}
    for r in results:
        ident = identity_of[r.source.name]
        split = split_of[ident]
        for shot in r.shots:
            _place(out, shot.filename, split)
            clips[shot.clip] = clip_metadata(r, shot, split, ident)
            per_split[split]["clips"] += 1
            per_split[split]["frames"] += shot.num_frames
            per_split[split]["ids"].add(ident)
    write_metadata(out, kind, size, clips)
    skipped = sorted([*extra_skipped, *((r.source.origin, r.reason) for r in state.results.values() if r.reason)])
    dropped = sorted((r.source.origin, d) for r in results for d in r.dropped)
    _write_log(out, skipped, dropped)
    reasons: dict[str, int] = {}
    for _, reason in skipped:
        reasons[reason_category(reason)] = reasons.get(reason_category(reason), 0) + 1
    splits = {s: SplitCounts(v["clips"], len(v["ids"]), v["frames"]) for s, v in per_split.items()}
    return PrepareSummary(out, splits, tuple(skipped), tuple(dropped), reasons=reasons)


def _write_log(out: Path, skipped: list[tuple[str, str]], dropped: list[tuple[str, str]]) -> None:
    """``OUT/prepare.log``: every skipped input and dropped shot with its reason, one per line."""
    lines = [f"skipped\t{origin}\t{reason}" for origin, reason in skipped]
    lines += [f"dropped\t{origin}\t{reason}" for origin, reason in dropped]
    with atomic_output(out / "prepare.log") as tmp:
        tmp.write_text("".join(line.replace("\n", " ") + "\n" for line in lines), encoding="utf-8")
