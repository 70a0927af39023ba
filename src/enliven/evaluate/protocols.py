"""The two protocols: what each method is given, and how its frames are scored.

Reconstruction (FOMM, MRAA, TPSMM papers): for each clip, source = its first frame, driving = every frame, and the
output is compared with the real frames. Animation: the source is the first frame of one identity's clip, the
driving frames come from another identity's clip; the output should keep the source's identity and follow the
driving motion. The real frames' keypoints, embeddings and motion signals are measured once per clip and shared by
all methods.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from enliven.data import ClipReader, ClipRef
from enliven.errors import EnlivenError
from enliven.evaluate import metrics
from enliven.evaluate.baselines import Method
from enliven.evaluate.identity import FaceIdentity, embedding_distances
from enliven.evaluate.landmarks import (
    DLIB_MOUTH,
    KeypointDetector,
    MotionSignals,
    detect_all,
    motion_signals,
    region_box,
)
from enliven.evaluate.results import (
    AnimationScores,
    ClipResult,
    Protocol,
    ReconstructionScores,
    SampleStrip,
    Scores,
    pair_title,
)
from enliven.pose import NUM_POSE_POINTS
from enliven.preprocess import best_matching_frame, resize_image
from enliven.preprocess.best_frame import best_matching_pose


class EvaluationError(EnlivenError):
    """A method failed on a clip, or the data cannot be evaluated with the chosen protocol."""


@dataclass(frozen=True)
class Task:
    """One unit of evaluation: a source clip (its first frame) animated by a driving clip."""

    source_clip: ClipRef
    driving_clip: ClipRef

    @property
    def title(self) -> str:
        return pair_title(self.source_clip.name, self.driving_clip.name)


@dataclass(frozen=True)
class ReconstructionFrames:
    """Per-frame measurements of one method on one clip (``N`` values each; NaN where not measurable)."""

    l1: np.ndarray
    mse: np.ndarray
    ssim: np.ndarray
    akd: np.ndarray
    missed: np.ndarray  # keypoints found in the real frame, missed in the output
    found: np.ndarray  # keypoints found in the real frame
    aed: np.ndarray
    mouth_l1: np.ndarray  # L1 in the real frame's mouth box
    sharpness: np.ndarray  # Laplacian energy of the output over the real frame's, in the real face's box


@dataclass(frozen=True)
class AnimationFrames:
    """Per-frame measurements of one method on one pair."""

    identity: np.ndarray
    output: MotionSignals | None
    driving: MotionSignals | None
    sharpness: np.ndarray  # the output face's Laplacian energy over the source face's


Frames = ReconstructionFrames | AnimationFrames


@dataclass(frozen=True)
class Reference:
    """What is measured once per task: the frames and the real frames' keypoints and embeddings."""

    source: np.ndarray
    driving: np.ndarray
    keypoints: np.ndarray | None  # N x K x 2 of the driving (= real) frames
    embeddings: np.ndarray | None  # N x 128 (reconstruction: real frames) or 1 x 128 (animation: the source)
    signals: MotionSignals | None  # driving motion (animation)
    source_energy: float = float("nan")  # the source face's Laplacian energy (animation)
    source_keypoints: np.ndarray | None = None  # K x 2 of the source (animation)


class Scorer:
    """Measures methods' outputs under one protocol with shared detectors.

    Args:
        protocol: reconstruction or animation.
        keypoints: the external keypoint detector, or ``None`` (no AKD/MKR/motion signals).
        identity: the face-identity network, or ``None`` (no AED/identity distance).
        identity_every: embed every this-many-th frame.
    """

    def __init__(
        self,
        protocol: Protocol,
        keypoints: KeypointDetector | None,
        identity: FaceIdentity | None,
        identity_every: int,
    ) -> None:
        self.protocol = protocol
        self.keypoints = keypoints
        self.identity = identity
        self.identity_every = identity_every

    def reference(self, source: np.ndarray, driving: np.ndarray) -> Reference:
        keypoints = detect_all(self.keypoints, driving)
        if self.protocol is Protocol.RECONSTRUCTION:
            embeddings = self._embed(driving)
            return Reference(source, driving, keypoints, embeddings, None)
        embeddings = None if self.identity is None else self.identity.embed(source)[None]
        energy, source_points = float("nan"), None
        if self.keypoints is not None:
            source_points = self.keypoints.detect(source)
            energy = _face_energy(source, source_points)
        signals = self._signals(keypoints, driving)
        return Reference(source, driving, keypoints, embeddings, signals, energy, source_points)

    def measure(self, reference: Reference, outputs: np.ndarray) -> Frames:
        """Per-frame measurements of ``outputs`` (``N x H x W x 3``) against the reference."""
        count = len(outputs)
        nan = np.full(count, np.nan)
        keypoints = detect_all(self.keypoints, outputs)
        embeddings = self._embed(outputs)
        distances = nan if embeddings is None else embedding_distances(embeddings, reference.embeddings)
        if self.protocol is Protocol.ANIMATION:
            sharpness = nan.copy()
            if keypoints is not None:
                sharpness = np.array([_face_energy(o, k) for o, k in zip(outputs, keypoints, strict=True)])
                sharpness /= reference.source_energy
            return AnimationFrames(distances, self._signals(keypoints, outputs), reference.signals, sharpness)
        akd, missed, found = nan.copy(), np.zeros(count, int), np.zeros(count, int)
        if keypoints is not None and reference.keypoints is not None:
            for i in range(count):
                akd[i] = metrics.keypoint_distance(reference.keypoints[i], keypoints[i])
                missed[i], found[i] = metrics.missing_keypoints(reference.keypoints[i], keypoints[i])
        truth = reference.driving
        mouth_l1, sharpness = nan.copy(), nan.copy()
        if reference.keypoints is not None and reference.keypoints.shape[1] == 68:
            size = (truth.shape[2], truth.shape[1])
            for i in range(count):
                mouth = region_box(reference.keypoints[i, DLIB_MOUTH], size, grow=0.2)
                if mouth is not None:
                    x0, y0, x1, y1 = mouth
                    mouth_l1[i] = metrics.l1_error(outputs[i, y0:y1, x0:x1], truth[i, y0:y1, x0:x1])[0]
                face = region_box(reference.keypoints[i], size)
                if face is not None:
                    sharpness[i] = metrics.laplacian_energy(outputs[i], face)[0] / max(
                        metrics.laplacian_energy(truth[i], face)[0], 1e-6
                    )
        return ReconstructionFrames(
            metrics.l1_error(outputs, truth), metrics.mse(outputs, truth), metrics.ssim(outputs, truth),
            akd, missed, found, distances, mouth_l1, sharpness,
        )  # fmt: skip

    def _embed(self, frames: np.ndarray) -> np.ndarray | None:
        return None if self.identity is None else self.identity.embed_all(frames, self.identity_every)

    @staticmethod
    def _signals(keypoints: np.ndarray | None, frames: np.ndarray) -> MotionSignals | None:
        if keypoints is None:
            return None
        return motion_signals(keypoints, (frames.shape[2], frames.shape[1]))


def summarise(items: Sequence[Frames]) -> Scores:
    """Scores of one clip (one item) or a whole split (all its clips' items).

    L1, SSIM, AKD, AED and the identity distance are means over all frames (as the authors' scripts pool them); MKR
    is pooled over keypoints; PSNR and the correlations are computed per clip and averaged over clips.
    """
    if all(isinstance(item, ReconstructionFrames) for item in items):
        recon: list[ReconstructionFrames] = list(items)  # type: ignore[arg-type]

        def pooled(name: str) -> np.ndarray:
            return np.concatenate([getattr(item, name) for item in recon])

        found = pooled("found").sum()
        return ReconstructionScores(
            l1=metrics.finite_mean(pooled("l1")),
            psnr=metrics.finite_mean(np.array([metrics.psnr_from_mse(float(i.mse.mean())) for i in recon])),
            ssim=metrics.finite_mean(pooled("ssim")),
            akd=metrics.finite_mean(pooled("akd")),
            mkr=float(pooled("missed").sum() / found) if found else float("nan"),
            aed=metrics.finite_mean(pooled("aed")),
            mouth_l1=metrics.finite_mean(pooled("mouth_l1")),
            sharpness=metrics.finite_mean(pooled("sharpness")),
        )
    anim: list[AnimationFrames] = list(items)  # type: ignore[arg-type]
    correlations = {}
    for name in MotionSignals.NAMES:
        values = [
            metrics.pearson(getattr(item.driving, name), getattr(item.output, name))
            for item in anim
            if item.driving is not None and item.output is not None
        ]
        correlations[name] = metrics.finite_mean(np.array(values, dtype=np.float64))
    identity = metrics.finite_mean(np.concatenate([item.identity for item in anim]))
    ranges = [
        _spread(item.output.mouth) / _spread(item.driving.mouth)
        for item in anim
        if item.driving is not None and item.output is not None
    ]
    joints = [
        metrics.pearson(item.driving.joints[:, joint], item.output.joints[:, joint])
        for item in anim
        if item.driving is not None and item.output is not None
        and item.driving.joints is not None and item.output.joints is not None
        for joint in range(item.driving.joints.shape[1])
    ]  # fmt: skip
    return AnimationScores(
        identity=identity,
        **correlations,
        mouth_range=metrics.finite_mean(np.array(ranges, dtype=np.float64)),
        sharpness=metrics.finite_mean(np.concatenate([item.sharpness for item in anim])),
        joints=metrics.finite_mean(np.array(joints, dtype=np.float64)),
    )


def _spread(values: np.ndarray) -> float:
    """5th to 95th percentile of the finite values (NaN with fewer than 3, or when they do not vary)."""
    finite = values[np.isfinite(values)]
    if len(finite) < 3:
        return float("nan")
    spread = float(np.percentile(finite, 95) - np.percentile(finite, 5))
    return spread if spread > 1e-6 else float("nan")


def _face_energy(image: np.ndarray, points: np.ndarray) -> float:
    """Laplacian energy of ``image`` in the box of its face landmarks (NaN without a face)."""
    box = region_box(points, (image.shape[1], image.shape[0]))
    return float("nan") if box is None else float(metrics.laplacian_energy(image, box)[0])


def read_frames(reader: ClipReader, clip: ClipRef, max_frames: int | None, size: int) -> np.ndarray:
    """The first ``max_frames`` frames of a clip as ``N x size x size x 3`` uint8."""
    count = reader.num_frames(clip)
    frames = reader.read(clip, range(min(count, max_frames or count)))
    frames = [f if f.shape[:2] == (size, size) else resize_image(f, (size, size)) for f in frames]
    return np.stack(frames)


def run_method(
    method: Method, task: Task, source: np.ndarray, driving: np.ndarray, reference_frame: int = 0
) -> tuple[np.ndarray, float]:
    """A method's outputs for one task and the seconds it spent; relative motion from ``driving[reference_frame]``.

    Raises:
        EvaluationError: the method failed (e.g. a model that does not fit the frames).
    """
    started = time.perf_counter()
    try:
        method.set_source(source)
        if reference_frame:
            method.set_reference(driving[reference_frame])
        outputs = method.animate(driving)
    except (RuntimeError, ValueError) as err:
        raise EvaluationError(
            f"{method.name} failed on {task.title} ({err}); check that the model suits this dataset."
        ) from err
    seconds = time.perf_counter() - started
    if outputs.shape != driving.shape or outputs.dtype != np.uint8:
        raise EvaluationError(
            f"{method.name} returned frames of shape {outputs.shape} for {driving.shape}; it must keep the size."
        )
    return outputs, seconds


def clip_result(task: Task, frames: Frames, count: int, reference_frame: int = 0) -> ClipResult:
    return ClipResult(task.source_clip.name, task.driving_clip.name, count, summarise([frames]), reference_frame)


def best_reference_frame(source_points: np.ndarray | None, driving_points: np.ndarray | None) -> int:
    """The driving frame posed most like the source by the evaluation's keypoints: MediaPipe pose (33 points,
    :func:`~enliven.preprocess.best_frame.best_matching_pose`) or a face's (all points, FOMM's rule); 0 without
    keypoints. Points the evaluation did not find in the source (a body's legs outside a half-body frame) are left
    out of the match; a frame missing one of the others is skipped.

    Args:
        source_points: ``K x 2`` the source's keypoints (NaN where not found), or ``None``.
        driving_points: ``N x K x 2`` the driving frames', or ``None``.
    """
    if source_points is None or driving_points is None:
        return 0
    if source_points.shape[0] == NUM_POSE_POINTS:
        return best_matching_pose(source_points, list(driving_points))
    try:
        return best_matching_frame(source_points, list(driving_points))
    except ValueError:  # fewer than three points found in the source, or all on a line
        return 0


def sample_strip(
    task: Task,
    reference: Reference,
    outputs: Sequence[tuple[str, np.ndarray]],
    num_frames: int,
    detector: KeypointDetector | None = None,
) -> SampleStrip:
    """A few evenly spaced frames of a task's driving frames and outputs; for cross-identity pairs (animation) and
    dlib's 68 landmarks, also every image's mouth enlarged (:func:`mouth_zoom`), to see whether it opens."""
    indices = np.unique(np.linspace(0, len(reference.driving) - 1, num_frames).round().astype(int))
    mouths: tuple[np.ndarray, ...] = ()
    if reference.signals is not None and detector is not None and detector.num_keypoints == 68:
        source = mouth_zoom(reference.source, detector.detect(reference.source))
        groups = [reference.driving[indices], *(frames[indices] for _, frames in outputs)]
        zoomed = [np.stack([mouth_zoom(image, detector.detect(image)) for image in group]) for group in groups]
        mouths = (np.repeat(source[None], len(indices), 0), *zoomed)
    return SampleStrip(
        title=task.title,
        frame_indices=tuple(int(i) for i in indices),
        source=reference.source,
        driving=reference.driving[indices],
        outputs=tuple((name, frames[indices]) for name, frames in outputs),
        mouths=mouths,
    )


#: Side of an enlarged mouth in the sample strips.
MOUTH_ZOOM_SIDE = 128


def mouth_zoom(image: np.ndarray, points: np.ndarray, side: int = MOUTH_ZOOM_SIDE) -> np.ndarray:
    """The mouth of ``image`` (a square around dlib's lip landmarks, half again their width) enlarged to
    ``side x side``; without landmarks, the lower middle of the image, where a face crop's mouth is."""
    height, width = image.shape[:2]
    box = region_box(points[DLIB_MOUTH], (width, height), grow=0.25, square=True)
    if box is None:
        box = (int(0.3 * width), int(0.6 * height), int(0.7 * width), int(0.95 * height))
    x0, y0, x1, y1 = box
    return resize_image(np.ascontiguousarray(image[y0:y1, x0:x1]), (side, side))


def make_tasks(clips: Sequence[ClipRef], protocol: Protocol) -> list[Task]:
    """Reconstruction: each clip drives itself. Animation: each clip's first frame is driven by the next clip (in
    name order, cyclically) of another identity, so the pairing is deterministic.

    Raises:
        EvaluationError: animation asked for with clips of a single identity.
    """
    if protocol is Protocol.RECONSTRUCTION:
        return [Task(clip, clip) for clip in clips]
    if len({clip.identity for clip in clips}) < 2:
        raise EvaluationError(
            "The animation protocol needs clips of at least two identities; use more clips or the reconstruction "
            "protocol."
        )
    tasks = []
    for i, clip in enumerate(clips):
        following = [clips[(i + k) % len(clips)] for k in range(1, len(clips))]
        driving = next(c for c in following if c.identity != clip.identity)
        tasks.append(Task(clip, driving))
    return tasks
