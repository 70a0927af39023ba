"""The measurements of ``enliven bench``: inputs, model loading, GFLOP and the per-stage timing loop."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import reduce
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from enliven.config import config_from_dict
from enliven.errors import ConfigError, InputError, NoFaceError
from enliven.families import get_family
from enliven.inference.animator import Animator, landmark_kind
from enliven.inference.cropper import is_usable_face
from enliven.inference.landmarks import LandmarkTracker
from enliven.io import read_frames, read_image
from enliven.models.base import MotionTransferModel
from enliven.models.factory import build_model
from enliven.models.motion_transfer import movement_scale
from enliven.pipelines.bench.results import StageTimes
from enliven.preprocess import Box, FaceDetector, crop_and_resize, face_crop_box, track_faces
from enliven.preprocess.person import PersonDetector, body_box, track_people
from enliven.types import Keypoints, MotionMode
from enliven.weights.loader import load_model
from enliven.weights.presets import PRESETS


@dataclass(frozen=True)
class BenchInputs:
    """``size x size x 3`` uint8 source crop and ``N x size x size x 3`` driving crops."""

    source: np.ndarray
    frames: np.ndarray


def load_bench_model(spec: str) -> tuple[MotionTransferModel, bool]:
    """A model by preset name or file (:func:`~enliven.weights.loader.load_model`), and whether its weights are random.

    A preset whose weights are not installed is built from its config with random weights (seed 0, so every process
    builds the same model): speed does not depend on the weights.
    """
    preset = PRESETS.get(spec)
    weights = preset.weights_path() if preset is not None else None
    if preset is not None and weights is not None and not weights.is_file():
        with torch.random.fork_rng():
            torch.manual_seed(0)
            return build_model(config_from_dict(preset.config, preset.family)), True
    loaded = load_model(spec)
    return loaded.model, loaded.metadata.get("untrained") == "true"


def prepare_inputs(source: Path, driving: Path, size: int, count: int) -> BenchInputs:
    """The source and ``count`` driving frames, each cropped to one square box and resized to ``size``: around the
    face, or around the person where the source shows no face big enough to animate (a body photo and clip, for
    ``enliven-body``).

    Raises:
        InputError: a missing or unreadable input, or no face (nor person) in the source or the clip.
    """
    image = read_image(source)
    clip = read_frames(driving, max_frames=count)
    if len(clip) == 0:
        raise InputError(f"the driving clip {driving} has no frames; pass another with --driving.")
    height, width = image.shape[:2]
    with FaceDetector() as detector:
        faces = detector.detect(image)
        if faces and is_usable_face(faces[0], width, height):
            track = track_faces(iter(clip), detector)
            if track.num_detected == 0:
                raise NoFaceError(f"no face was found in the driving clip {driving}; pass another with --driving.")
            box, source_box = track.stable_box(), face_crop_box(faces[0], width, height)
        else:
            box, source_box = _person_boxes(image, clip, source, driving)
    crops = [crop_and_resize(frame, box, size) for frame in clip]
    source_crop = crop_and_resize(image, source_box, size)
    return BenchInputs(source_crop, np.stack([crops[i] for i in clip_order(len(crops), count)]))


def _person_boxes(image: np.ndarray, clip: np.ndarray, source: Path, driving: Path) -> tuple[Box, Box]:
    """The clip's and the source's square person boxes (as the body training clips were cut)."""
    with PersonDetector(video=False) as people:
        person = people.detect(image)
    if person is None:
        raise NoFaceError(f"neither a face nor a person was found in the source {source}; pass another with --source.")
    with PersonDetector(video=True) as people:
        track = track_people(iter(clip), people)
    if track.num_detected == 0:
        raise NoFaceError(f"no person was found in the driving clip {driving}; pass another with --driving.")
    return body_box(track), person.square().fitted_inside(image.shape[1], image.shape[0])


def clip_order(length: int, count: int) -> list[int]:
    """``count`` frame indices into a clip of ``length`` frames, forwards then backwards (tracking sees no cut)."""
    period = max(2 * length - 2, 1)
    return [i % period if i % period < length else period - i % period for i in range(count)]


@torch.inference_mode()
def count_gflop(model: MotionTransferModel, size: int) -> tuple[float, float]:
    """GFLOP of one frame (driving keypoints + generate) and of source encoding, at ``size x size``.

    Counted by :class:`torch.utils.flop_counter.FlopCounterMode` (convolutions and matrix products; sampling and
    element-wise work are not counted); MediaPipe's landmarks (face mesh, pose) stand in as random points.
    """
    image = torch.rand(1, 3, size, size)
    keypoints = None
    kind = landmark_kind(model)
    if kind is not None:
        keypoints = Keypoints(torch.rand(1, kind.num_points, 2) * 1.2 - 0.6)
    with FlopCounterMode(display=False) as source_counter:
        encoding = model.encode_source(image, keypoints, **_stand_in_plate(model, image))
    with FlopCounterMode(display=False) as frame_counter:
        driving = keypoints if keypoints is not None else model.detect_keypoints(image)
        model.generate(encoding, driving)
    return frame_counter.get_total_flops() / 1e9, source_counter.get_total_flops() / 1e9


@contextmanager
def _record_returns(owner: object, method: str, times: list[float]) -> Iterator[None]:
    """Append ``perf_counter()`` to ``times`` whenever ``owner.method`` returns (an instance attribute shadows the
    class's method for the block: FOMM's dense motion is a method other than ``forward``, so hooks cannot see it)."""
    original = getattr(owner, method)

    def timed(*args: object, **kwargs: object) -> object:
        out = original(*args, **kwargs)
        times.append(time.perf_counter())
        return out

    setattr(owner, method, timed)
    try:
        yield
    finally:
        delattr(owner, method)


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000.0


@torch.inference_mode()
def time_stages(animator: Animator, inputs: BenchInputs, warmup: int) -> tuple[StageTimes, float]:
    """Animate ``inputs.frames`` one by one (the first ``warmup`` untimed); returns stage medians and the source
    encoding's median milliseconds (see the module docstring)."""
    model = animator.model
    kind = landmark_kind(model)
    tracker = None if kind is None else LandmarkTracker(kind)
    try:
        source_samples = []
        for _ in range(4):
            start = time.perf_counter()
            animator.set_source(inputs.source)
            source_samples.append(time.perf_counter() - start)
        source = animator.to_tensor(inputs.source)
        encoding = model.encode_source(
            source,
            None if tracker is None else Keypoints(torch.from_numpy(tracker.source(inputs.source))),
            **_stand_in_plate(model, source),
        )
        dense_ends: list[float] = []
        reference: tuple[Keypoints, float] | None = None

        def frame_times(frame: np.ndarray) -> tuple[float, ...]:
            nonlocal reference
            t0 = time.perf_counter()
            tensor = animator.to_tensor(frame)
            mesh_input = None if tracker is None else animator.to_uint8(tensor)
            t1 = time.perf_counter()
            if tracker is None:
                kp_driving = model.detect_keypoints(tensor)
            else:
                kp_driving = Keypoints(torch.from_numpy(tracker.driving(mesh_input)))
                if bool(kp_driving.value.isnan().any()):  # nobody yet: the unmoved source, as the Animator does
                    kp_driving = encoding.keypoints
            if reference is None:
                reference = kp_driving, movement_scale(encoding.keypoints, kp_driving)
            kp = model.transfer_motion(
                encoding.keypoints, kp_driving, reference[0], MotionMode.RELATIVE, scale=reference[1]
            )
            t2 = time.perf_counter()
            dense_ends.clear()
            output = model.generate(encoding, kp)
            t3 = time.perf_counter()
            animator.to_uint8(output.prediction)
            t4 = time.perf_counter()
            dense = dense_ends[-1] - t2 if dense_ends else 0.0
            return t1 - t0, t2 - t1, dense, t3 - t2 - dense, t4 - t3, t4 - t0

        dense_motion = _dense_motion_method(model)
        with _record_returns(*dense_motion, dense_ends) if dense_motion else nullcontext():
            samples = [frame_times(frame) for frame in inputs.frames]
    finally:
        if tracker is not None:
            tracker.close()
    pre, keypoints, dense, generator, post, total = (_median_ms(list(s)) for s in zip(*samples[warmup:], strict=True))
    stages = StageTimes(pre, keypoints, dense if dense_motion else None, generator, post, total)
    return stages, _median_ms(source_samples[1:])


def _dense_motion_method(model: MotionTransferModel) -> tuple[object, str] | None:
    """The object and method name whose return ends the dense motion; ``None`` where it is not a separate step (an
    exported model runs it inside the generator graph) or the family is unknown."""
    try:
        entry = get_family(model.family).dense_motion
    except ConfigError:
        return None
    if entry is None:
        return None
    try:
        return reduce(getattr, entry[0].split("."), model), entry[1]
    except AttributeError:
        return None


def _stand_in_plate(model: MotionTransferModel, source: Tensor) -> dict[str, Tensor]:
    """A background plate for models that take one (the source itself: the cost per frame is the same; the
    animator's own source encoding, timed separately, paints the real one)."""
    if not getattr(model, "needs_plate", False):
        return {}
    return {"plate": torch.cat([source, torch.ones_like(source[:, :1])], 1)}  # the whole frame as the person
