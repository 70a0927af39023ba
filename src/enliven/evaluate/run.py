"""``evaluate``: a model and a dataset split in, every method's scores (model and baselines) out."""

from __future__ import annotations

import fnmatch
import json
import logging
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from tqdm import tqdm

from enliven.data import ClipReader, ClipRef, find_clips
from enliven.data.layout import METADATA_FILE
from enliven.errors import InputError, NoFaceError
from enliven.evaluate.baselines import MeshWarpBaseline, Method, ModelMethod, PartWarpBaseline, StaticBaseline
from enliven.evaluate.identity import FaceIdentity
from enliven.evaluate.landmarks import LandmarkSet, make_detector
from enliven.evaluate.protocols import (
    EvaluationError,
    Frames,
    Scorer,
    Task,
    best_reference_frame,
    clip_result,
    make_tasks,
    read_frames,
    run_method,
    sample_strip,
    summarise,
)
from enliven.evaluate.results import (
    EvaluationOptions,
    EvaluationResult,
    MethodResult,
    Protocol,
    SampleStrip,
    SkippedTask,
)
from enliven.export.cache import load_export
from enliven.export.manifest import Manifest, is_export_folder
from enliven.inference.animator import resolve_device
from enliven.models.base import MotionTransferModel
from enliven.types import MotionMode
from enliven.weights.checkpoint import LoadedModel
from enliven.weights.loader import load_model

log = logging.getLogger(__name__)

_KINDS = ("faces", "bodies", "any")


def evaluate(
    model: str | Path | LoadedModel | MotionTransferModel,
    dataset: str | Path,
    split: str = "test",
    protocol: Protocol | str = Protocol.RECONSTRUCTION,
    options: EvaluationOptions | None = None,
    *,
    config: str | Path | None = None,
    compare: Sequence[str | Path | LoadedModel] = (),
    progress: bool = False,
) -> EvaluationResult:
    """Evaluate a model and the baselines on one split of a FOMM-layout dataset.

    Args:
        model: a preset name or checkpoint path (see :func:`enliven.weights.loader.load_model`), or a loaded model.
        dataset: the dataset folder (as written by ``enliven prepare``).
        split: ``test`` for the published protocol; ``val`` while tuning.
        protocol: ``reconstruction`` (the FOMM protocol, absolute keypoints as the authors' reconstruction) or
            ``animation`` (cross-identity pairs, relative motion).
        options: see :class:`EvaluationOptions`.
        config: the YAML config of an authors' checkpoint given as ``model`` (detected when omitted).
        compare: more models (names, checkpoints or loaded) scored on the same clips, after ``model`` and before
            the baselines, e.g. the previous release; they must run at ``model``'s size.
        progress: show a progress bar over clips.

    Raises:
        InputError: the dataset or split is missing or empty. CheckpointError: the model cannot be loaded.
        EvaluationError: a method failed, the protocol does not fit the data, or every clip was skipped. A clip whose
            source frame lacks what a method needs (a face, a person) is skipped for every method and listed in the
            result's ``skipped``.
    """
    started = time.perf_counter()
    options = options or EvaluationOptions()
    protocol = Protocol(protocol)
    if options.find_best_frame and protocol is not Protocol.ANIMATION:
        raise InputError(
            "--find-best-frame is for the animation protocol: reconstruction drives each clip's first frame with its "
            "own frames in absolute motion, which has no reference frame."
        )
    name, network, untrained, content = _resolve_model(model, config)
    clips = _choose_clips(_matching(find_clips(Path(dataset).expanduser(), split), options.clips), options.max_clips)
    kind = _dataset_kind(Path(dataset).expanduser(), content)
    landmarks = options.landmarks or _default_landmarks(kind)
    if options.find_best_frame and landmarks is LandmarkSet.NONE:
        raise InputError("--find-best-frame matches the evaluation's keypoints: give --landmarks (pose for bodies).")
    tasks = make_tasks(clips, protocol)
    mode = MotionMode.ABSOLUTE if protocol is Protocol.RECONSTRUCTION else MotionMode.RELATIVE
    with ExitStack() as stack:
        methods: list[Method] = [ModelMethod(network, name, mode, options.device, options.batch_size)]
        for other in compare:
            other_name, other_network, _, _ = _resolve_model(other, None)
            if other_name == name:
                other_name = f"{other_name} ({len(methods) + 1})"
            methods.append(ModelMethod(other_network, other_name, mode, options.device, options.batch_size))
        if options.baselines:
            # the warp without learning: the body parts' when bodies are measured by their pose, the face mesh's for
            # faces, none for anything else
            warp = PartWarpBaseline if landmarks is LandmarkSet.POSE else MeshWarpBaseline if kind == "faces" else None
            methods += [StaticBaseline(), *([warp(mode)] if warp is not None else [])]
        for method in methods:
            stack.callback(method.close)
        detector = make_detector(landmarks)
        if detector is not None:
            stack.callback(detector.close)
        identity = FaceIdentity() if kind == "faces" else None
        scorer = Scorer(protocol, detector, identity, options.identity_every)
        size = methods[0].image_size  # type: ignore[attr-defined]
        results, samples, skipped = _run(tasks, methods, scorer, size, options, progress)
    return EvaluationResult(
        protocol=protocol,
        model=name,
        untrained=untrained,
        dataset=str(dataset),
        split=split,
        content=kind,
        landmarks=landmarks,
        image_size=size,
        device=str(resolve_device(options.device)),
        options=options,
        methods=results,
        samples=samples,
        seconds=time.perf_counter() - started,
        skipped=skipped,
    )


def _run(
    tasks: list[Task], methods: list[Method], scorer: Scorer, size: int, options: EvaluationOptions, progress: bool
) -> tuple[tuple[MethodResult, ...], tuple[SampleStrip, ...], tuple[SkippedTask, ...]]:
    reader = ClipReader()
    per_method: list[list[Frames]] = [[] for _ in methods]
    clip_results: list[list] = [[] for _ in methods]
    seconds = [0.0] * len(methods)
    frames_done = 0
    samples: list[SampleStrip] = []
    skipped: list[SkippedTask] = []
    for task in tqdm(tasks, disable=not progress, unit="clip", desc="evaluating"):
        driving = read_frames(reader, task.driving_clip, options.max_frames, size)
        source = (
            driving[0] if task.source_clip == task.driving_clip else read_frames(reader, task.source_clip, 1, size)[0]
        )
        reference = scorer.reference(source, driving)
        start = 0
        if options.find_best_frame:  # animation only (checked above); 0 without keypoints
            start = best_reference_frame(reference.source_keypoints, reference.keypoints)
        try:
            runs = [run_method(method, task, source, driving, start) for method in methods]
        except NoFaceError as err:
            # one method cannot take this source (a body model and a frame without a person): the pair is left out
            # of every method's scores, so that all are compared on the same pairs
            log.info("Skipped %s: %s", task.title, err)
            skipped.append(SkippedTask(task.source_clip.name, task.driving_clip.name, str(err)))
            continue
        outputs = []
        for m, (method, (frames, spent)) in enumerate(zip(methods, runs, strict=True)):
            seconds[m] += spent
            measured = scorer.measure(reference, frames)
            per_method[m].append(measured)
            clip_results[m].append(clip_result(task, measured, len(frames), start))
            outputs.append((method.name, frames))
        frames_done += len(driving)
        if len(samples) < options.samples:
            samples.append(sample_strip(task, reference, outputs, options.sample_frames, scorer.keypoints))
    if not frames_done:
        raise EvaluationError(
            f"Every one of the {len(tasks)} clips was skipped ({skipped[0].reason}); evaluate a split that has "
            "what the model animates."
        )
    results = tuple(
        MethodResult(
            name=method.name,
            kind=method.kind,
            frames=frames_done,
            seconds=seconds[m],
            summary=summarise(per_method[m]),
            clips=tuple(clip_results[m]),
        )
        for m, method in enumerate(methods)
    )
    return results, tuple(samples), tuple(skipped)


def _resolve_model(
    model: str | Path | LoadedModel | MotionTransferModel, config: str | Path | None
) -> tuple[str, MotionTransferModel, bool, str]:
    """``(name, network, untrained, content)`` where content is ``face`` or ``other``."""
    if isinstance(model, MotionTransferModel):
        return type(model).__name__, model, False, "face"
    if isinstance(model, LoadedModel):
        loaded = model
    elif is_export_folder(model):
        loaded = load_export(model, export_format=Manifest.read(Path(model)).export_format)
    else:
        loaded = load_model(model, config)
    name = Path(str(model if not isinstance(model, LoadedModel) else loaded.source)).name
    manifest = getattr(loaded.model, "manifest", None)  # an exported model: say which runtime scored it
    if manifest is not None:
        name = f"{name} ({manifest.export_format} {manifest.quantization})".replace(" float32)", ")")
    return name, loaded.model, loaded.metadata.get("untrained") == "true", loaded.metadata.get("content", "face")


def _matching(clips: list[ClipRef], patterns: tuple[str, ...]) -> list[ClipRef]:
    """The clips whose names match one of ``patterns`` (all of them without patterns).

    Raises:
        InputError: no clip matches.
    """
    if not patterns:
        return clips
    chosen = [clip for clip in clips if any(fnmatch.fnmatch(clip.name, pattern) for pattern in patterns)]
    if not chosen:
        raise InputError(
            f"no clip of the split matches {' or '.join(patterns)}; the clips are named like {clips[0].name}."
        )
    return chosen


def _choose_clips(clips: list[ClipRef], max_clips: int | None) -> list[ClipRef]:
    """At most ``max_clips`` clips, evenly spread over the sorted list (so that a few clips span the split)."""
    if max_clips is None or max_clips >= len(clips):
        return clips
    picks = np.unique(np.linspace(0, len(clips) - 1, max_clips).round().astype(int))
    return [clips[i] for i in picks]


def _dataset_kind(root: Path, model_content: str) -> str:
    """``faces``, ``bodies`` or ``any``: from ``metadata.json``, else from what the model animates."""
    try:
        kind = json.loads((root / METADATA_FILE).read_text(encoding="utf-8")).get("kind")
    except (OSError, ValueError, AttributeError):
        kind = None
    if kind in _KINDS:
        return str(kind)
    return {"face": "faces", "body": "bodies"}.get(model_content, "any")


def _default_landmarks(kind: str) -> LandmarkSet:
    return {"faces": LandmarkSet.DLIB68, "bodies": LandmarkSet.POSE}.get(kind, LandmarkSet.NONE)
