"""``animate_file``: a source photo and a driving clip in, an animated video out.

The driving clip is decoded once: its frames are kept in memory while the face is tracked through them (when they
fit in :attr:`AnimateOptions.memory_budget_mb`; a longer clip is decoded a second time instead, so memory stays
bounded), one stable crop box (or a smoothed track) and, if asked, the best reference frame are chosen, then the
frames are cropped (:class:`~enliven.inference.cropper.FaceCropper`), animated one by one, optionally pasted back
into the full-resolution source, and written. Without face cropping there is a single streaming pass.

A caller that animates many files loads the model once and passes it (``model=``); progress goes to a callback and
a ``cancel`` event stops the work. The output appears only when complete (see :func:`enliven.io.open_writer`); the
driving clip's frame rate and audio are kept.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from enliven.backends import get_backend
from enliven.errors import InputError, NoFaceError
from enliven.inference.animator import Animator
from enliven.inference.choice import ModelChoice, resolve_auto
from enliven.inference.cropper import Crop, FaceCropper
from enliven.inference.driving import DrivingClip, box_at, checked_image, read_source
from enliven.inference.driving_cache import DrivingCache
from enliven.inference.face_worker import FaceWorker, worker_applies
from enliven.inference.options import AnimateOptions, wants_best_frame
from enliven.inference.pipeline import (
    CancelFlag,
    ProgressCallback,
    animate_frames,
    batched_points,
    edited_keypoints,
    frame_keypoints,
)
from enliven.io import check_output_path
from enliven.models.base import MotionTransferModel
from enliven.preprocess import Box, FaceLandmarker, best_matching_frame, compensate_resampling, crop_and_resize
from enliven.preprocess.best_frame import best_model_pose_frame
from enliven.types import Keypoints, LandmarkKind
from enliven.weights import LoadedModel


@dataclass(frozen=True)
class AnimateResult:
    """What :func:`animate_file` did."""

    output: Path
    frames: int
    fps: float
    seconds: float
    source_box: Box | None
    best_frame: int | None
    untrained_model: bool
    model_choice: ModelChoice | None = None


def load_for_options(options: AnimateOptions) -> tuple[LoadedModel, str]:
    """The model ``options`` name, through its backend, and the device an animator runs it on (call once, reuse)."""
    backend = get_backend(options.backend)
    backend.check(mode=options.mode, size=options.size, device=options.device)  # before a possibly long export
    loaded = backend.load(options.model, options.config, threads=options.threads)
    backend.check_loaded(loaded, options.size)
    return loaded, backend.device(options.device)


def animate_file(
    source: str | Path | np.ndarray,
    driving: str | Path | Sequence[np.ndarray],
    output: str | Path,
    options: AnimateOptions | None = None,
    *,
    model: LoadedModel | MotionTransferModel | None = None,
    on_progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
    face_worker: FaceWorker | None = None,
    source_box: Box | None = None,
    driving_cache: DrivingCache | None = None,
) -> AnimateResult:
    """Animate ``source`` with the motion of ``driving`` and write ``output`` (see the module docstring).

    Args:
        source: an image (or video: its first frame) path, or an ``H x W x 3`` uint8 RGB array.
        driving: a video, GIF or frame-folder path, or a sequence of ``H x W x 3`` uint8 RGB frames
            (:data:`~enliven.inference.driving.ARRAY_FPS` frames per second, no audio).
        output: ``.mp4``/``.webm``/``.gif`` file, or a folder ending with ``/`` for PNG frames.
        options: how to animate (default :class:`AnimateOptions`).
        model: a model loaded once by the caller (:func:`load_for_options`, :func:`enliven.weights.load_model`, or
            a bare model, taken as a face model); ``None`` loads ``options.model`` through ``options.backend``
            (``auto`` or ``None``: the model :func:`~enliven.inference.choice.choose_model` picks for the source,
            named in the result's ``model_choice``).
        on_progress: called after each written frame with ``(done, total)``.
        cancel: checked before each frame; once set, :class:`Cancelled` is raised and nothing is written.
        face_worker: a worker the caller started on the same ``source`` and ``driving`` (the CLI does, before it
            imports torch); ``animate_file`` closes it. ``None``: one is started here when it helps
            (:func:`~enliven.inference.face_worker.worker_applies`, ``options.face_worker``).
        source_box: where to cut the source, in its pixels (e.g. a box the user adjusted in the notebook);
            ``None``: found by the face detector. Not together with ``face_worker``.
        driving_cache: where a caller that animates many photos with the same clips (a batch worker) keeps each
            clip's keypoints: a clip found there is neither decoded nor tracked again.

    Raises:
        InputError: missing/unreadable inputs, or no face where cropping needs one.
        CheckpointError: a bad model file. OutputError: the output cannot be written (or is one of the inputs).
        Cancelled: ``cancel`` was set.
    """
    started = time.perf_counter()
    options = options or AnimateOptions()
    paths = [p for p in (source, driving) if isinstance(p, (str, Path))]
    worker = face_worker
    if source_box is not None and worker is not None:
        raise ValueError("source_box and face_worker exclude each other: the worker finds the source's face")
    try:
        output = check_output_path(output, inputs=paths)
        # the default reference (None) is the first frame for the face models the worker serves
        applies = worker_applies(source, driving, crop=options.crop, find_best_frame=bool(options.find_best_frame))
        if worker is None and options.face_worker and applies and source_box is None:
            worker = FaceWorker.start(  # finds the faces while this process loads the model
                source,
                driving,
                smooth_track=options.smooth_track,
                memory_budget_mb=options.memory_budget_mb,
                any_face=options.force,
            )
        clip = DrivingClip(driving, options.memory_budget_mb)
        source_image = read_source(Path(source)) if isinstance(source, (str, Path)) else checked_image(source)
        choice = None
        if model is None:
            options, choice = resolve_auto(options, source_image, face_worker=worker)
        loaded, device = _resolve_model(model, options)
        content = loaded.metadata.get("content", "face")
        with (
            Animator(
                loaded.model, device=device, mode=options.mode, adapt_scale=options.adapt_scale, size=options.size
            ) as animator,  # releases MediaPipe graphs of face-mesh models
            FaceCropper(
                animator.size,
                content=content,  # type: ignore[arg-type]
                crop=options.crop,
                fps=clip.fps,
                any_face=options.force,
            ) as cropper,
        ):
            if worker is not None and not cropper.finds_faces:
                worker.close()
                worker = None
            what = f"the source {source}" if isinstance(source, (str, Path)) else "the source"
            best = wants_best_frame(options.find_best_frame, animator.landmark_kind)  # None (the default) decided
            options = replace(options, find_best_frame=best)
            if worker is not None:
                plan = _plan_with_worker(worker, clip, source_image, animator, cropper, options)
            else:
                plan = _plan_here(clip, source_image, what, animator, cropper, options, source_box, driving_cache)
            keypoints = plan.keypoints
            if options.edit is not None and not options.edit.is_identity:
                check_editable(animator, loaded)
                keypoints = edited_keypoints(keypoints, options.edit, animator)
            written = animate_frames(
                keypoints,
                animator=animator,
                finish=(lambda animated: cropper.paste(source_image, animated, plan.source_crop.box))
                if options.paste_back
                else None,
                output=output,
                fps=clip.fps,
                audio=clip.audio,
                total=clip.length,
                on_progress=on_progress,
                cancel=cancel,
                encoder_threads=options.threads,
            )
    finally:
        if worker is not None:
            worker.close()
    return AnimateResult(
        output,
        written,
        float(clip.fps),
        time.perf_counter() - started,
        plan.source_crop.box,
        plan.best_frame,
        loaded.metadata.get("untrained") == "true",
        choice,
    )


def check_editable(animator: Animator, loaded: LoadedModel) -> None:
    """Raise unless the animator's model is moved by face-mesh landmarks (which edits and generated motion change).

    Raises:
        InputError: a model with its own keypoints.
    """
    if not animator.uses_face_mesh:
        raise InputError(
            f"edits and generated motion drive models moved by face-mesh landmarks; {loaded.source} has its own "
            "keypoints, so use --model enliven-lite (the default) or enliven-lite-2."
        )


@dataclass(frozen=True)
class _Plan:
    """The encoded source's crop, the driving keypoints to render, and the reference frame chosen (if any)."""

    source_crop: Crop
    keypoints: Iterator[Keypoints | np.ndarray]
    best_frame: int | None = None


#: Largest side of the photo's own crop that paste-back frames are composed at (a larger crop is shrunk to it).
MAX_DETAIL_SIDE = 2048


def detail_crop(image: np.ndarray, box: Box | None, animator: Animator, options: AnimateOptions) -> np.ndarray | None:
    """For paste-back with a model that composes at the photo's resolution (enliven-lite): the source crop at the
    photo's own resolution (at most :data:`MAX_DETAIL_SIDE`), so the pasted face keeps the photo's sharpness: the
    photo's pixels are resampled once, by the motion, instead of to the model's 256 px, through it and back (which
    alone halves a face's fine texture). ``None`` when it would not help."""
    if not options.paste_back or box is None or not animator.composes_detail:
        return None
    side = min(MAX_DETAIL_SIDE, box.to_int().width)
    # Sharpened first, by what sub-pixel resampling takes from this photo: the motion resamples every pixel.
    return compensate_resampling(crop_and_resize(image, box, side))


def _plan_here(
    clip: DrivingClip,
    source_image: np.ndarray,
    what: str,
    animator: Animator,
    cropper: FaceCropper,
    options: AnimateOptions,
    source_box: Box | None = None,
    cache: DrivingCache | None = None,
) -> _Plan:
    """Find the faces (the source's unless ``source_box`` is given) and the driving keypoints in this process (or
    in ``cache``); the source is encoded."""
    if source_box is not None:
        source_crop = Crop(cropper.cut(source_image, source_box), source_box, cropper.finds_faces)
    else:
        source_crop = cropper.crop_source(source_image, what)
    animator.set_source(source_crop.image, detail=detail_crop(source_image, source_crop.box, animator, options))
    key = None
    if cache is not None and clip.path is not None and not options.find_best_frame:
        settings = (
            cropper.content,
            cropper.crop,
            options.smooth_track,
            options.force,
            animator.size,
            options.batch_size,
        )
        key = cache.key(clip.path, animator.model, settings)
        cached = None if key is None else cache.get(key, animator.model)
        if cached is not None:
            return _Plan(source_crop, cached)
    # Only a face search needs the whole clip before the first crop; otherwise the frames stream once.
    first = clip.first_pass() if cropper.finds_faces else clip.frames()
    boxes = cropper.clip_boxes(first, smooth_track=options.smooth_track, what=clip.what)
    plan = _plan_frames(clip, source_crop, boxes, animator, cropper, options)
    if key is None:
        return plan
    return _Plan(source_crop, cache.recording(key, animator.model, plan.keypoints), plan.best_frame)


def _plan_with_worker(
    worker: FaceWorker,
    clip: DrivingClip,
    source_image: np.ndarray,
    animator: Animator,
    cropper: FaceCropper,
    options: AnimateOptions,
) -> _Plan:
    """Take the faces from the worker and, for a face-mesh model, the driving landmarks too; the source is encoded."""
    faces = worker.plan()
    source_crop = Crop(cropper.cut(source_image, faces.source_box), faces.source_box, True)
    detail = detail_crop(source_image, source_crop.box, animator, options)
    if animator.uses_face_mesh and not options.find_best_frame:
        source_points, points = worker.landmarks(animator.size)
        animator.set_source(source_crop.image, source_points, detail=detail)
        return _Plan(source_crop, batched_points(points, options.batch_size))
    worker.close()  # a model with its own detector takes the boxes only
    animator.set_source(source_crop.image, detail=detail)
    return _plan_frames(clip, source_crop, faces.boxes, animator, cropper, options)


def _plan_frames(
    clip: DrivingClip,
    source_crop: Crop,
    boxes: list[Box] | None,
    animator: Animator,
    cropper: FaceCropper,
    options: AnimateOptions,
) -> _Plan:
    """Driving keypoints found in this process on the clip's frames cut at ``boxes``, after choosing the best
    reference frame if asked; the source is already encoded."""

    def clip_keypoints() -> Iterator[Keypoints]:  # the clip read (again), its frames cut and their keypoints found
        return frame_keypoints(
            clip.frames(), lambda index, frame: cropper.cut(frame, box_at(boxes, index)), animator, options.batch_size
        )

    if options.find_best_frame and animator.landmark_kind is LandmarkKind.POSE:
        return _plan_best_pose(source_crop, list(clip_keypoints()), animator)
    best = find_best_frame(clip.frames(), source_crop.image, boxes, clip.what) if options.find_best_frame else None
    if best is not None:
        animator.set_reference(cropper.cut(clip.frame_at(best), box_at(boxes, best)))
    return _Plan(source_crop, clip_keypoints(), best)


def _plan_best_pose(source_crop: Crop, keypoints: list[Keypoints], animator: Animator) -> _Plan:
    """A body model's plan with the best reference frame: of the clip's pose landmarks (``keypoints``, all found in
    the clip's one read), the frame posed most like the source becomes the reference (a tai-chi clip that opens with
    a kick would otherwise bend the photo's standing body by the kick's difference from every later pose)."""
    points = np.concatenate([batch.value.detach().cpu().numpy() for batch in keypoints]) if keypoints else []
    best = best_model_pose_frame(animator.source_keypoints, list(points))
    if len(points):
        animator.set_reference_keypoints(points[best])
    return _Plan(source_crop, iter(keypoints), best)


def _resolve_model(model: LoadedModel | MotionTransferModel | None, options: AnimateOptions) -> tuple[LoadedModel, str]:
    if model is None:
        return load_for_options(options)
    if isinstance(model, MotionTransferModel):
        model = LoadedModel(model, type(model).__name__, {"content": "face"})
    backend = get_backend(options.backend)
    backend.check_loaded(model, options.size)
    return model, backend.device(options.device)


def find_best_frame(
    frames: Iterable[np.ndarray], source_crop: np.ndarray, boxes: list[Box] | None = None, what: str = "the clip"
) -> int:
    """Index of the driving frame whose face landmarks best match the source's (FOMM's find-best-frame).

    Using that frame as the relative-motion reference is what the authors' "animate forward and backward from
    the best frame" computes: each output depends only on the source, the reference and its own frame.

    Args:
        frames: the driving clip's frames (read once).
        source_crop: the source as the model sees it, ``H x W x 3`` uint8.
        boxes: per-frame face boxes of the driving clip, to help the face mesh find small faces, or ``None``.
        what: the clip, for error messages.

    Raises:
        NoFaceError: no landmarks in the source, or in every driving frame.
    """
    # Landmarks are normalised for position and scale, so full frames and crops give the same match; the crop
    # box, when known, helps the mesh find small faces in large frames.
    with FaceLandmarker() as landmarker:
        source_landmarks = landmarker.landmarks(source_crop)
    if source_landmarks is None:
        raise NoFaceError("--find-best-frame needs face landmarks but none were found in the source.")
    with FaceLandmarker(video=True) as landmarker:
        driving_landmarks = [landmarker.landmarks(frame, box_at(boxes, i)) for i, frame in enumerate(frames)]
    if all(lm is None for lm in driving_landmarks):
        raise NoFaceError(f"--find-best-frame found no face landmarks in {what}.")
    return best_matching_frame(source_landmarks, driving_landmarks)
