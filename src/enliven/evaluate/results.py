"""Typed results of an evaluation, and their JSON form.

Reconstruction (the FOMM protocol) scores a method against the real frames; animation (cross-identity pairs) scores
identity kept and motion followed. Every number is a plain float; NaN means "not measurable here" (no face found, no
landmark set for this content) and becomes ``null`` in JSON.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

import numpy as np

from enliven.evaluate.baselines import MethodKind
from enliven.evaluate.landmarks import LandmarkSet


class Protocol(StrEnum):
    """What is measured."""

    RECONSTRUCTION = "reconstruction"  # source = a clip's first frame, driving = the clip, compared with the clip
    ANIMATION = "animation"  # source from one identity, driving from another


@dataclass(frozen=True)
class EvaluationOptions:
    """How to evaluate (the CLI's flags).

    Attributes:
        max_clips: evaluate at most this many clips, evenly spread over the sorted split (``None``: all).
        clips: only the clips whose names match one of these shell patterns (e.g. ``MGif_*``); empty: all.
        max_frames: use at most the first this many frames of each clip (``None``: all).
        device: ``auto``, ``cpu`` or ``cuda`` (the model only; metrics run on the CPU).
        batch_size: driving frames per model call.
        landmarks: keypoints for AKD/MKR and motion signals; ``None`` picks dlib's 68 for faces, MediaPipe pose for
            bodies and none for other content.
        identity_every: identity embeddings (AED, identity distance) on every this-many-th frame; dlib's network
            costs ~80 ms a face on a CPU, so 1 (every frame, the published protocol) is slow on long clips.
        samples: clips drawn as sample strips in the report.
        sample_frames: frames per sample strip.
        baselines: also evaluate the static and mesh-warp baselines.
        find_best_frame: animation protocol: every method's relative motion starts from the driving frame posed most
            like the source by the evaluation's keypoints (``landmarks``), as ``enliven animate --find-best-frame``
            (and a body model by default) does, instead of the driving clip's first frame (FOMM's protocol).
    """

    max_clips: int | None = None
    clips: tuple[str, ...] = ()
    max_frames: int | None = None
    device: str = "auto"
    batch_size: int = 8
    landmarks: LandmarkSet | None = None
    identity_every: int = 4
    samples: int = 3
    sample_frames: int = 5
    baselines: bool = True
    find_best_frame: bool = False

    def __post_init__(self) -> None:
        for name in ("max_clips", "max_frames"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        for name in ("batch_size", "identity_every", "sample_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.samples < 0:
            raise ValueError(f"samples must be 0 or more, got {self.samples}")


@dataclass(frozen=True)
class ReconstructionScores:
    """Reconstruction quality.

    Attributes:
        l1: mean absolute error of ``[0, 1]`` RGB images (lower is better).
        psnr: peak signal-to-noise ratio in dB, from a clip's mean squared error (higher is better).
        ssim: structural similarity (higher is better, 1 = identical).
        akd: average keypoint distance in pixels at the evaluation size (lower is better).
        mkr: fraction of keypoints found in the real frame and missed in the output (lower is better).
        aed: average Euclidean distance of dlib identity embeddings, output vs real frame (lower is better).
        mouth_l1: L1 inside the real frame's mouth box (dlib's lip landmarks, grown by a fifth; lower is better).
        sharpness: Laplacian energy of the output over the real frame's, in the real face's box (1 = as sharp).
    """

    l1: float
    psnr: float
    ssim: float
    akd: float
    mkr: float
    aed: float
    mouth_l1: float = float("nan")
    sharpness: float = float("nan")


@dataclass(frozen=True)
class AnimationScores:
    """Cross-identity animation quality.

    Attributes:
        identity: dlib embedding distance from the output to the source (lower keeps the identity; < 0.6 is
            "the same person" for dlib).
        mouth, eyes, head_x, head_y, yaw: Pearson correlation of that motion signal between output and driving
            frames (higher follows the motion; 0 for an output that does not move).
        mouth_range: the output's range of mouth opening (inner-lip gap over the inter-ocular distance, 5th to 95th
            percentile of a clip) over the driver's; 1 opens as wide as the driver, 0 not at all.
        sharpness: Laplacian energy of the output's face over the source photo's face (each in its own dlib
            landmark box); 1 = as sharp as the photo.
        joints: Pearson correlation of the elbow, shoulder, hip and knee angles between output and driving frames,
            the mean over the joints (bodies, with MediaPipe pose keypoints; NaN otherwise).
    """

    identity: float
    mouth: float
    eyes: float
    head_x: float
    head_y: float
    yaw: float
    mouth_range: float = float("nan")
    sharpness: float = float("nan")
    joints: float = float("nan")


Scores = ReconstructionScores | AnimationScores

#: Report labels and direction ("lower" or "higher" is better) of every score.
SCORE_INFO: dict[str, tuple[str, str]] = {
    "l1": ("L1", "lower"),
    "psnr": ("PSNR (dB)", "higher"),
    "ssim": ("SSIM", "higher"),
    "akd": ("AKD (px)", "lower"),
    "mkr": ("MKR", "lower"),
    "aed": ("AED", "lower"),
    "identity": ("identity dist.", "lower"),
    "mouth": ("corr. mouth", "higher"),
    "eyes": ("corr. eyes", "higher"),
    "head_x": ("corr. head x", "higher"),
    "head_y": ("corr. head y", "higher"),
    "yaw": ("corr. yaw", "higher"),
    "mouth_l1": ("mouth L1", "lower"),
    "sharpness": ("sharpness", "higher"),
    "mouth_range": ("mouth range", "higher"),
    "joints": ("corr. joints", "higher"),
}


def score_names(scores: Scores | type) -> tuple[str, ...]:
    """The field names of a scores value or class, in order."""
    return tuple(f.name for f in fields(scores))  # type: ignore[arg-type]


@dataclass(frozen=True)
class ClipResult:
    """One method on one clip (reconstruction) or one source/driving pair (animation)."""

    source_clip: str
    driving_clip: str
    frames: int
    scores: Scores
    reference_frame: int = 0  # the driving frame relative motion started from (animation)


@dataclass(frozen=True)
class MethodResult:
    """One method over the whole split.

    Attributes:
        name: ``static``, ``mesh warp`` or the model's name.
        kind: what the method stands for (model, no model, no learning).
        frames: driving frames animated.
        seconds: time spent in the method itself (source encoding and animation; no reading, no metrics).
        summary: scores over all clips (frame-pooled means as the authors' scripts; PSNR and correlations are
            means of the clips' values).
        clips: per-clip scores.
    """

    name: str
    kind: MethodKind
    frames: int
    seconds: float
    summary: Scores
    clips: tuple[ClipResult, ...]

    @property
    def fps(self) -> float:
        """Frames animated per second by the method alone."""
        return self.frames / self.seconds if self.seconds > 0 else math.inf


@dataclass(frozen=True)
class SampleStrip:
    """A few frames of one clip for the report: the source, the driving frames and each method's output.

    Attributes:
        title: the clip (or ``source <- driving`` pair).
        frame_indices: indices of the drawn frames in the clip.
        source: ``H x W x 3`` uint8.
        driving: ``F x H x W x 3`` uint8.
        outputs: ``(method name, F x H x W x 3 uint8)`` in method order.
        mouths: the mouth of every drawn image, enlarged, in the same order (source, driving, each output), each
            ``F x h x h x 3`` uint8; empty when not drawn (the reconstruction protocol).
    """

    title: str
    frame_indices: tuple[int, ...]
    source: np.ndarray
    driving: np.ndarray
    outputs: tuple[tuple[str, np.ndarray], ...]
    mouths: tuple[np.ndarray, ...] = ()


def pair_title(source_clip: str, driving_clip: str) -> str:
    """A clip's name (reconstruction: it drives itself) or ``source <- driving`` (a cross-identity pair)."""
    return source_clip if source_clip == driving_clip else f"{source_clip} <- {driving_clip}"


@dataclass(frozen=True)
class SkippedTask:
    """A clip (or source/driving pair) left out of every method's scores, and why in one sentence (e.g. a body
    model given a source frame without a person)."""

    source_clip: str
    driving_clip: str
    reason: str

    @property
    def title(self) -> str:
        return pair_title(self.source_clip, self.driving_clip)


@dataclass(frozen=True)
class EvaluationResult:
    """Everything one evaluation measured.

    Attributes:
        protocol: reconstruction or animation.
        model: the ``--model`` given. untrained: the model has random weights.
        dataset, split: what was evaluated.
        content: the dataset's kind (``faces``, ``bodies`` or ``any``).
        landmarks: the keypoints behind AKD/MKR and the motion signals.
        image_size: side of the square frames compared (the model's size).
        device: where the model ran.
        options: the options used.
        methods: the model first, then the baselines.
        samples: sample strips for the report.
        seconds: wall time of the whole evaluation.
        skipped: the clips or pairs no method was scored on (a source without the face or person a model needs);
            every method is scored on the same others.
    """

    protocol: Protocol
    model: str
    untrained: bool
    dataset: str
    split: str
    content: str
    landmarks: LandmarkSet
    image_size: int
    device: str
    options: EvaluationOptions
    methods: tuple[MethodResult, ...]
    samples: tuple[SampleStrip, ...] = field(default=(), repr=False)
    seconds: float = 0.0
    skipped: tuple[SkippedTask, ...] = ()

    @property
    def num_clips(self) -> int:
        return len(self.methods[0].clips) if self.methods else 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN and infinity become ``None``; sample images are left out)."""
        data = {
            "protocol": self.protocol.value,
            "model": self.model,
            "untrained": self.untrained,
            "dataset": self.dataset,
            "split": self.split,
            "content": self.content,
            "landmarks": self.landmarks.value,
            "image_size": self.image_size,
            "device": self.device,
            "clips": self.num_clips,
            "seconds": self.seconds,
            "options": asdict(self.options),
            "methods": [
                {
                    "name": m.name,
                    "kind": m.kind.value,
                    "frames": m.frames,
                    "seconds": m.seconds,
                    "fps": m.fps,
                    "summary": asdict(m.summary),
                    "clips": [asdict(c) for c in m.clips],
                }
                for m in self.methods
            ],
            "skipped": [asdict(s) for s in self.skipped],
        }
        return _json_ready(data)


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
