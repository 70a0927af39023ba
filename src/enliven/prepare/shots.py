"""Cutting a clip into shots, each with one stable square crop box (FOMM ``crop-video`` style).

A shot is a run of frames inside one scene (no cut) where the subject is tracked without a long gap. Its
crop box is fixed for the whole shot, so the model learns motion of the subject, not of the camera crop.
Boxes are pixels in the convention of :mod:`enliven.preprocess.boxes`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from enliven.preprocess import Box, FaceTrack, center_square_box, split_track, square_pad_box
from enliven.preprocess.person import body_box

Kind = Literal["faces", "bodies", "any"]
AnyCrop = Literal["center", "full"]

# A shot whose stable box is this much larger than the subject's typical per-frame box is cut in two: one
# box around a subject that walks across the frame would leave the subject small in every frame.
MAX_DRIFT = 1.6


@dataclass(frozen=True)
class Shot:
    """Frames ``start .. stop - 1`` of a clip, cropped with ``box`` (pixels of the source frames)."""

    start: int
    stop: int
    box: Box

    @property
    def num_frames(self) -> int:
        return self.stop - self.start


def scene_ranges(num_frames: int, cuts: Iterable[int]) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges between scene cuts (a cut index starts a new scene)."""
    bounds = [0, *sorted(c for c in set(cuts) if 0 < c < num_frames), num_frames]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def face_box(track: FaceTrack) -> Box:
    """The FOMM-style face crop of a track: hair and chin included, one box for every frame."""
    return track.stable_box(percentile=98.0)


def _typical_side(track: FaceTrack, kind: Kind) -> float:
    found = track.boxes[track.detected]
    side = np.median(np.max(found[:, 2:] - found[:, :2], axis=1))
    return float(side * (1.9 if kind == "faces" else 1.0))


def _split_drifting(piece: FaceTrack, kind: Kind, min_frames: int) -> list[FaceTrack]:
    """Halve a track until its stable box is at most :data:`MAX_DRIFT` times the subject's typical size."""
    box = face_box(piece) if kind == "faces" else body_box(piece)
    if box.width <= MAX_DRIFT * _typical_side(piece, kind) or piece.num_frames < 2 * min_frames:
        return [piece]
    half = piece.num_frames // 2
    halves = [piece.segment(0, half), piece.segment(half, piece.num_frames)]
    return [p for h in halves if h.detected.any() for p in _split_drifting(h, kind, min_frames)]


def plan_tracked_shots(
    track: FaceTrack,
    cuts: Sequence[int],
    kind: Kind,
    min_frames: int,
    min_side: float,
    max_gap: int,
    stride: int = 1,
) -> tuple[list[Shot], str | None]:
    """Shots of a tracked clip (faces or bodies): split at cuts, lost tracks and drifting subjects.

    Args:
        track: per-frame subject boxes of the whole clip.
        cuts: frame indices starting a new scene.
        kind: ``"faces"`` or ``"bodies"`` (sets the crop framing).
        min_frames: shorter shots are dropped.
        min_side: shots whose crop box is smaller than this many source pixels are dropped (too blurry).
        max_gap: longest run of frames without a detection kept inside a shot.
        stride: the detector ran on every ``stride``-th frame.

    Returns:
        The shots, and the reason none was kept (``None`` when some were).
    """
    subject = "face" if kind == "faces" else "person"
    if not track.detected.any():
        return [], f"no {subject} found"
    shots: list[Shot] = []
    small = 0
    for start, stop in scene_ranges(track.num_frames, cuts):
        scene: list[Shot] = []
        for piece in split_track(track.segment(start, stop), max_gap=max_gap, min_frames=min_frames):
            for part in _split_drifting(piece, kind, min_frames):
                box = face_box(part) if kind == "faces" else body_box(part)
                if box.width < min_side:
                    small += 1
                    continue
                scene.append(Shot(int(part.start), int(part.start + part.num_frames), box))
        # A track ends on its last detection; the frames after it that the detector skipped (stride) belong to it.
        ends = [s.start for s in scene[1:]] + [stop] if scene else []
        scene = [Shot(s.start, min(end, s.stop + stride - 1), s.box) for s, end in zip(scene, ends, strict=True)]
        shots.extend(s for s in scene if s.num_frames >= min_frames)
    if shots:
        return shots, None
    if small:
        return [], f"{subject} too small (crop under {min_side:.0f} px)"
    return [], f"too short: no shot of at least {min_frames} frames with a {subject}"


def plan_fixed_shots(
    num_frames: int, width: int, height: int, cuts: Sequence[int], crop: AnyCrop, min_frames: int
) -> tuple[list[Shot], str | None]:
    """Shots of an untracked clip (``--kind any``): scenes between cuts, centre square or whole (padded) frame."""
    box = center_square_box(width, height) if crop == "center" else square_pad_box(width, height)
    shots = [Shot(a, b, box) for a, b in scene_ranges(num_frames, cuts) if b - a >= min_frames]
    return shots, None if shots else f"too short: no shot of at least {min_frames} frames"
