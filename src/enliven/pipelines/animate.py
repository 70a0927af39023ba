"""``animate_file``: a source photo and a driving clip in, an animated video out.

Two streaming passes over the driving clip, so memory does not grow with its length:

1. (only when cropping faces or finding the best frame) face boxes and landmarks per frame, kept as small
   arrays, from which one stable crop box (or a smoothed track) and the best reference frame are chosen;
2. crop, animate in batches, optionally paste back into the full-resolution source, and write.

The output appears only when complete (see :func:`enliven.io.open_writer`); the driving clip's frame rate and
audio are kept.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from enliven.errors import InputError, NoFaceError
from enliven.io import VideoSource, check_output_path, open_writer, probe, read_image
from enliven.models.checkpoint import LoadedModel
from enliven.models.loader import load_model
from enliven.pipelines.animator import Animator
from enliven.preprocess import (
    Box,
    FaceDetector,
    FaceLandmarker,
    best_matching_frame,
    crop_and_resize,
    face_crop_box,
    paste_back,
    square_pad_box,
    track_faces,
)
from enliven.types import MotionMode

#: What ``AnimateOptions.backend`` takes.
BACKENDS = ("torch", "onnx")


@dataclass(frozen=True)
class AnimateOptions:
    """How to animate (the CLI's flags).

    Attributes:
        model: preset name or checkpoint path (``None``: the default model).
        config: YAML config of an authors' checkpoint (``None``: detected).
        mode: relative, absolute or avd.
        adapt_scale: adapt the movement scale to the source (relative mode).
        find_best_frame: use the driving frame whose face landmarks best match the source as the reference.
        crop: crop the face (face models) or pad to a square (other models); ``False`` takes inputs as they are.
        smooth_track: crop the driving clip along a smoothed face track instead of one stable box.
        paste_back: blend the animated crop back into the full-resolution source.
        size: side of the square the model runs at (``None``: the model's own).
        device: ``auto``, ``cpu`` or ``cuda``.
        batch_size: driving frames per model call.
        progress: show a progress bar.
        backend: ``torch`` (PyTorch) or ``onnx`` (onnxruntime on the CPU; the model is exported to ONNX on first
            use and cached, see :func:`enliven.export.load_onnx_model`; relative and absolute modes only).
    """

    model: str | None = None
    config: str | Path | None = None
    mode: MotionMode = MotionMode.RELATIVE
    adapt_scale: bool = True
    find_best_frame: bool = False
    crop: bool = True
    smooth_track: bool = False
    paste_back: bool = False
    size: int | None = None
    device: str = "auto"
    batch_size: int = 4
    progress: bool = True
    backend: str = "torch"


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


@dataclass(frozen=True)
class _DrivingPlan:
    boxes: list[Box] | None  # one per frame, or None to take frames as they are
    best_frame: int | None


def animate_file(source: str | Path, driving: str | Path, output: str | Path, options: AnimateOptions) -> AnimateResult:
    """Animate ``source`` with the motion of ``driving`` and write ``output`` (see module docstring).

    Raises:
        InputError: missing/unreadable inputs, or no face where cropping needs one.
        CheckpointError: a bad model file. OutputError: the output cannot be written.
    """
    started = time.perf_counter()
    output = check_output_path(output)
    source_path, driving_path = Path(source), Path(driving)
    video = VideoSource(driving_path)
    source_image = _read_source(source_path)
    loaded, device = _load(options)
    with Animator(
        loaded.model, device=device, mode=options.mode, adapt_scale=options.adapt_scale, size=options.size
    ) as animator:  # releases MediaPipe graphs of face-mesh models
        face_content = loaded.metadata.get("content", "face") == "face"

        source_box = _source_box(source_image, source_path, options, face_content)
        source_crop = _crop(source_image, source_box, animator.size)
        animator.set_source(source_crop)
        plan = _plan_driving(video, driving_path, source_crop, options, face_content)
        if plan.best_frame is not None:
            animator.set_reference(_crop_frame_at(video, plan, plan.best_frame, animator.size))

        frames = 0
        bar = tqdm(total=_known_length(video), disable=not options.progress, unit="frame", desc="animating")
        with bar, open_writer(output, fps=video.fps, audio_from=driving_path) as writer:
            for batch in _batches(_cropped_frames(video, plan, animator.size), options.batch_size):
                for animated in animator(np.stack(batch)):
                    if options.paste_back:
                        animated = paste_back(source_image, animated, source_box or _full_box(source_image))
                    writer.write(animated)
                    frames += 1
                bar.update(len(batch))
    return AnimateResult(
        output,
        frames,
        float(video.fps),
        time.perf_counter() - started,
        source_box,
        plan.best_frame,
        loaded.metadata.get("untrained") == "true",
    )


def _load(options: AnimateOptions) -> tuple[LoadedModel, str]:
    """The model for ``options.backend`` and the device the animator runs on."""
    if options.backend == "torch":
        return load_model(options.model, options.config), options.device
    if options.backend != "onnx":
        raise InputError(f"unknown backend {options.backend!r}; use {' or '.join(BACKENDS)}.")
    if options.device == "cuda":
        raise InputError("--backend onnx runs on the CPU; use --device cpu (or auto), or --backend torch for CUDA.")
    from enliven.export import EXPORTED_MODES, check_onnx_mode, load_onnx_model

    check_onnx_mode(EXPORTED_MODES, options.mode)  # before a possibly long first export
    loaded = load_onnx_model(options.model, options.config)
    if options.size is not None and options.size != loaded.model.image_size:
        raise InputError(
            f"--backend onnx runs at the exported size {loaded.model.image_size}, not --size {options.size}; "
            "leave out --size or use --backend torch."
        )
    return loaded, "cpu"


def _read_source(path: Path) -> np.ndarray:
    info = probe(path)
    if info.kind == "image":
        return read_image(path)
    first = next(iter(VideoSource(path)), None)  # a video as source: its first frame
    if first is None:
        raise InputError(f"the source {path} has no frames; pass an image or a non-empty video.")
    return first


def _full_box(image: np.ndarray) -> Box:
    h, w = image.shape[:2]
    return Box(0.0, 0.0, float(w), float(h))


def _source_box(image: np.ndarray, path: Path, options: AnimateOptions, face_content: bool) -> Box | None:
    if not options.crop:
        return None
    h, w = image.shape[:2]
    if not face_content:
        return square_pad_box(w, h)
    with FaceDetector() as detector:
        faces = detector.detect(image)
    if not faces:
        raise NoFaceError(f"no face was found in the source {path}; use --no-crop to animate the whole image.")
    return face_crop_box(faces[0], w, h)


def _crop(image: np.ndarray, box: Box | None, size: int) -> np.ndarray:
    if box is None:
        return image  # the animator resizes whole frames
    return crop_and_resize(image, box, size)


def _plan_driving(
    video: VideoSource, path: Path, source_crop: np.ndarray, options: AnimateOptions, face_content: bool
) -> _DrivingPlan:
    """First pass: face boxes for cropping and landmarks for the best reference frame, as needed."""
    if not options.crop:
        boxes = None
    elif face_content:
        with FaceDetector() as detector:
            track = track_faces(iter(video), detector)
        if track.num_detected == 0:
            raise NoFaceError(f"no face was found in the driving video {path}; use --no-crop to use whole frames.")
        boxes = track.smoothed_boxes() if options.smooth_track else [track.stable_box()] * len(track)
    else:
        w, h = video.size
        boxes = None if w == h else [square_pad_box(w, h)] * _count(video)
    best = find_best_frame(video, source_crop, boxes, path) if options.find_best_frame else None
    return _DrivingPlan(boxes, best)


def _count(video: VideoSource) -> int:
    known = _known_length(video)
    return known if known is not None else sum(1 for _ in video)


def find_best_frame(
    video: VideoSource, source_crop: np.ndarray, boxes: list[Box] | None = None, path: Path | None = None
) -> int:
    """Index of the driving frame whose face landmarks best match the source's (FOMM's find-best-frame).

    Using that frame as the relative-motion reference is what the authors' "animate forward and backward from
    the best frame" computes: each output depends only on the source, the reference and its own frame.

    Args:
        video: the driving clip (streamed once).
        source_crop: the source as the model sees it, ``H x W x 3`` uint8.
        boxes: per-frame face boxes of the driving clip, to help the face mesh find small faces, or ``None``.
        path: the clip's path, for error messages.

    Raises:
        NoFaceError: no landmarks in the source, or in every driving frame.
    """
    path = path or video.path
    # Landmarks are normalised for position and scale, so full frames and crops give the same match; the crop
    # box, when known, helps the mesh find small faces in large frames.
    with FaceLandmarker() as landmarker:
        source_landmarks = landmarker.landmarks(source_crop)
    if source_landmarks is None:
        raise NoFaceError("--find-best-frame needs face landmarks but none were found in the source.")
    with FaceLandmarker(video=True) as landmarker:
        driving_landmarks = [
            landmarker.landmarks(frame, None if boxes is None else boxes[min(i, len(boxes) - 1)])
            for i, frame in enumerate(video)
        ]
    if all(lm is None for lm in driving_landmarks):
        raise NoFaceError(f"--find-best-frame found no face landmarks in the driving video {path}.")
    return best_matching_frame(source_landmarks, driving_landmarks)


def _cropped_frames(video: VideoSource, plan: _DrivingPlan, size: int) -> Iterator[np.ndarray]:
    for index, frame in enumerate(video):
        if plan.boxes is None:
            yield frame
        else:
            box = plan.boxes[min(index, len(plan.boxes) - 1)]
            yield crop_and_resize(frame, box, size)


def _crop_frame_at(video: VideoSource, plan: _DrivingPlan, index: int, size: int) -> np.ndarray:
    for i, frame in enumerate(_cropped_frames(video, plan, size)):
        if i == index:
            return frame
    raise InputError(
        f"the driving video has fewer than {index + 1} frames on a second read; is it still being written?"
    )


def _batches(frames: Iterator[np.ndarray], batch_size: int) -> Iterator[list[np.ndarray]]:
    batch: list[np.ndarray] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _known_length(video: VideoSource) -> int | None:
    try:
        return len(video)
    except TypeError:
        return None
