"""Preparing one input: read it, clean it, find its shots, write their crops, describe who is in it.

This runs in worker processes; every problem with the input becomes a skip reason in the returned
:class:`ClipResult`, never an exception, so one bad file cannot stop a run. Output clips are written to the
staging folder under a temporary name and renamed when complete.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np

from enliven.errors import ConfigError, EnlivenError
from enliven.io import open_writer
from enliven.io.atomic import remove_path
from enliven.prepare.clean import StreamStats, grey_thumbnail, is_frozen
from enliven.prepare.frames import ClipFrames, open_clip
from enliven.prepare.identity import FaceEmbedder
from enliven.prepare.metadata import ClipResult, ShotRecord
from enliven.prepare.shots import (
    AnyCrop,
    Kind,
    Shot,
    plan_fixed_shots,
    plan_tracked_shots,
)
from enliven.prepare.sources import ClipSource
from enliven.preprocess import FaceDetector, FaceTrack, crop_and_resize, track_faces
from enliven.preprocess._deps import MissingDependencyError, import_cv2
from enliven.preprocess.person import PersonDetector, track_people

logger = logging.getLogger(__name__)

OutputFormat = Literal["png", "mp4"]
# Faces smaller than this (pixels) give unreliable identity descriptors and are not embedded.
MIN_EMBED_FACE = 40
# A clip whose face is embeddable in fewer than this share of the frames looked at has no identity descriptor.
MIN_EMBED_SHARE = 0.5


@dataclass(frozen=True)
class PrepareSettings:
    """How clips are prepared; a dataset folder is always made with one set of settings.

    Attributes:
        kind: ``"faces"`` (tracked face crop), ``"bodies"`` (tracked person crop) or ``"any"`` (fixed crop).
        size: output side in pixels.
        fps: resample videos to this rate; ``None`` keeps each video's own.
        max_frames: read at most this many frames of each input.
        min_frames: shorter inputs and shots are dropped.
        output_format: ``"png"`` (``<clip>/000000.png``...) or ``"mp4"`` (``<clip>.mp4``).
        any_crop: for ``kind="any"``: ``"center"`` square or ``"full"`` frame padded to a square.
        detect_every: run the face or pose detector on every n-th frame (boxes in between are interpolated).
        min_crop: drop shots whose crop box is smaller than this fraction of ``size`` (blurry upscales).
        max_gap_seconds: a subject lost for longer than this ends the shot.
        embed_frames: frames per input used for identity descriptors.
    """

    kind: Kind = "faces"
    size: int = 256
    fps: float | None = None
    max_frames: int | None = None
    min_frames: int = 16
    output_format: OutputFormat = "png"
    any_crop: AnyCrop = "center"
    detect_every: int = 2
    min_crop: float = 0.375
    max_gap_seconds: float = 0.5
    embed_frames: int = 10

    def __post_init__(self) -> None:
        checks = (
            (self.kind in ("faces", "bodies", "any"), f"--kind must be faces, bodies or any, not {self.kind!r}"),
            (16 <= self.size <= 4096, f"--size must be between 16 and 4096, not {self.size}"),
            (self.fps is None or 0 < self.fps <= 240, f"--fps must be between 0 and 240, not {self.fps}"),
            (self.max_frames is None or self.max_frames >= 2, f"--max-frames must be 2 or more, not {self.max_frames}"),
            (self.min_frames >= 2, f"--min-frames must be 2 or more, not {self.min_frames}"),
            (self.output_format in ("png", "mp4"), f"--format must be png or mp4, not {self.output_format!r}"),
            (self.any_crop in ("center", "full"), f"--any-crop must be center or full, not {self.any_crop!r}"),
            (self.detect_every >= 1, f"--detect-every must be 1 or more, not {self.detect_every}"),
        )
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"{message}; fix the option and run again.")

    def as_dict(self) -> dict:
        """The settings that shape the output (stored with the dataset to refuse mixing settings)."""
        return asdict(self)


@cache
def _face_detector() -> FaceDetector:
    return FaceDetector()


@cache
def _person_detector() -> PersonDetector:
    return PersonDetector()


@cache
def _embedder() -> FaceEmbedder:
    return FaceEmbedder()


def process_clip(clip: ClipSource, settings: PrepareSettings, work: Path) -> ClipResult:
    """Prepare one input into ``work/staging`` (output clips) and ``work/hashes`` (frame hashes).

    Returns:
        The result; ``reason`` says why nothing was written.
    """
    try:
        return _process(clip, settings, work)
    except MissingDependencyError:  # no input can be prepared: stop the run with the installation hint
        raise
    except EnlivenError as err:  # unreadable or undecodable: the input is skipped
        return ClipResult(clip.key, clip, reason=f"unreadable: {err}")
    except (ValueError, OSError, RuntimeError, MemoryError) as err:  # damaged data that slipped past the readers
        logger.debug("failed on %s", clip.path, exc_info=True)
        return ClipResult(clip.key, clip, reason=f"failed: {type(err).__name__}: {err}")


def _process(clip: ClipSource, settings: PrepareSettings, work: Path) -> ClipResult:
    frames = open_clip(clip, settings.fps, settings.max_frames)
    if frames.is_still:
        return ClipResult(clip.key, clip, reason="a single image, not a clip")
    if frames.num_frames is not None and frames.num_frames < settings.min_frames:
        return ClipResult(
            clip.key, clip, reason=f"too short: {frames.num_frames} frames (minimum {settings.min_frames})"
        )
    stats = StreamStats()
    stream = stats.observe(frames)
    track: FaceTrack | None = None
    try:
        if settings.kind == "faces":
            track = track_faces(stream, _face_detector(), stride=settings.detect_every)
        elif settings.kind == "bodies":
            track = track_people(stream, _person_detector(), stride=settings.detect_every)
        else:
            for _ in stream:
                pass
    except ValueError:  # the trackers refuse an empty clip; anything else is a real failure
        if len(stats):
            raise
    count = len(stats)
    if count == 0:
        return ClipResult(clip.key, clip, reason="unreadable: no frame could be decoded")
    if count < settings.min_frames:
        return ClipResult(clip.key, clip, reason=f"too short: {count} frames (minimum {settings.min_frames})")
    hashes_dir = work / "hashes"
    hashes_dir.mkdir(parents=True, exist_ok=True)
    np.save(hashes_dir / f"{clip.name}.npy", stats.hash_array())
    cuts = stats.cuts()
    if track is None:
        shots, reason = plan_fixed_shots(
            count, frames.width, frames.height, cuts, settings.any_crop, settings.min_frames
        )
    else:
        max_gap = max(settings.detect_every, round(settings.max_gap_seconds * frames.fps))
        min_side = settings.min_crop * settings.size
        shots, reason = plan_tracked_shots(
            track, cuts, settings.kind, settings.min_frames, min_side, max_gap, settings.detect_every
        )
    if not shots:
        return ClipResult(clip.key, clip, reason=reason)
    records, dropped, embeddings = _write_shots(clip, frames, shots, track, settings, work / "staging")
    if not records:
        return ClipResult(clip.key, clip, reason="; ".join(sorted(set(d.split(": ", 1)[-1] for d in dropped))))
    return ClipResult(
        clip.key, clip, tuple(records), None, tuple(dropped), tuple(tuple(float(v) for v in e) for e in embeddings)
    )


class _ShotWriter:
    """Writes one shot's crops to a temporary PNG folder or mp4 in the staging folder; renamed on success."""

    def __init__(self, staging: Path, name: str, fmt: OutputFormat, fps: float) -> None:
        self.filename = f"{name}.mp4" if fmt == "mp4" else name
        self.target = staging / self.filename
        self.temp = staging / f".{self.filename}.tmp{'.mp4' if fmt == 'mp4' else ''}"
        remove_path(self.temp)
        self._cv2 = import_cv2()
        self._writer = open_writer(self.temp, fps=fps) if fmt == "mp4" else None
        if self._writer is None:
            self.temp.mkdir(parents=True)
        self.count = 0
        self.thumbs: list[np.ndarray] = []

    def write(self, crop: np.ndarray) -> None:
        if self._writer is not None:
            self._writer.write(crop)
        else:
            path = str(self.temp / f"{self.count:06d}.png")
            # Level 1: twice as fast as OpenCV's default 3 for files ~5% larger; writing PNGs dominated the run.
            if not self._cv2.imwrite(path, crop[:, :, ::-1], [self._cv2.IMWRITE_PNG_COMPRESSION, 1]):
                raise OSError(f"cannot write {path}")
        self.thumbs.append(grey_thumbnail(crop))
        self.count += 1

    def finish(self, keep: bool) -> None:
        if self._writer is not None:
            self._writer.close() if keep else self._writer.abort()
        if keep:
            remove_path(self.target)
            os.replace(self.temp, self.target)
        else:
            remove_path(self.temp)


def _embed_indices(shots: list[Shot], track: FaceTrack | None, count: int) -> set[int]:
    """Up to ``count`` frames spread over the shots (frames with a detected face for tracked faces)."""
    candidates = np.concatenate([np.arange(s.start, s.stop) for s in shots])
    if track is not None:
        candidates = candidates[track.detected[candidates]]
    if len(candidates) == 0:
        return set()
    picks = np.linspace(0, len(candidates) - 1, num=min(count, len(candidates))).round().astype(int)
    return {int(candidates[i]) for i in picks}


def _face_for_identity(frame: np.ndarray, index: int, track: FaceTrack | None, kind: Kind):
    if kind == "faces" and track is not None:
        from enliven.preprocess import Box

        return Box.from_array(track.boxes[index])
    faces = _face_detector().detect(frame)
    return faces[0].box if faces else None


def _write_shots(
    clip: ClipSource,
    frames: ClipFrames,
    shots: list[Shot],
    track: FaceTrack | None,
    settings: PrepareSettings,
    staging: Path,
) -> tuple[list[ShotRecord], list[str], list[np.ndarray]]:
    """Second pass: crop, resize and write every shot; drop frozen ones; compute identity descriptors."""
    staging.mkdir(parents=True, exist_ok=True)
    embed_at = _embed_indices(shots, track, settings.embed_frames)
    records: list[ShotRecord] = []
    dropped: list[str] = []
    embeddings: list[np.ndarray] = []
    pending = sorted(shots, key=lambda s: s.start)
    writer: _ShotWriter | None = None
    shot_no = 0
    try:
        for index, frame in enumerate(frames):
            if writer is None and pending and index == pending[0].start:
                writer = _ShotWriter(staging, f"{clip.name}-{shot_no:02d}", settings.output_format, frames.fps)
                shot_no += 1
            if writer is not None:
                shot = pending[0]
                writer.write(crop_and_resize(frame, shot.box, settings.size))
                if index in embed_at:
                    face = _face_for_identity(frame, index, track, settings.kind)
                    if face is not None and min(face.width, face.height) >= MIN_EMBED_FACE:
                        embeddings.append(_embedder().embed(frame, face))
                if index == shot.stop - 1:
                    frozen = is_frozen(writer.thumbs)
                    writer.finish(keep=not frozen)
                    if frozen:
                        dropped.append(f"frames {shot.start}-{shot.stop - 1}: frozen (no motion)")
                    else:
                        box = (float(shot.box.x0), float(shot.box.y0), float(shot.box.x1), float(shot.box.y1))
                        name = writer.filename.removesuffix(".mp4")
                        records.append(
                            ShotRecord(
                                name, writer.filename, shot.start, shot.stop, writer.count, box, float(frames.fps)
                            )
                        )
                    writer = None
                    pending.pop(0)
            if not pending:
                break
    finally:
        if writer is not None:
            writer.finish(keep=False)
    for shot in pending:  # the second decode ended early (a damaged file)
        dropped.append(f"frames {shot.start}-{shot.stop - 1}: video ended early")
    if len(embeddings) < MIN_EMBED_SHARE * len(embed_at):
        # A face found in a few of the frames looked at is small, turned or blurred in most: on the shared body clips
        # one to three such descriptors of tai-chi players, Chaplin and two children were 0.44-0.57 apart and merged
        # five people. Without them the clip is identified by its hint or group.
        embeddings = []
    return records, dropped, embeddings


def quiet_worker() -> None:
    """Keep worker processes from flooding the terminal (MediaPipe/TFLite info lines, per-file warnings)."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("enliven").setLevel(logging.ERROR)
    try:
        import cv2

        cv2.setNumThreads(1)  # one process per core already
    except ImportError:
        pass
