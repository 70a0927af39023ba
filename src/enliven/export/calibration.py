"""Calibration inputs for quantised exports: the values the graphs see when real clips are animated.

:func:`calibration_samples` crops real frames much as :func:`enliven.animate_file` does (a face crop for face-mesh
models, the centre square otherwise) and transfers their motion to the clip's first frame in relative mode;
:meth:`CalibrationSample.graph_inputs` gives each sample's graph inputs in the graphs' flattened order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from enliven.errors import InputError
from enliven.export.flatten import flatten
from enliven.face_mesh import pixels_to_normalized
from enliven.io.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from enliven.models.base import KeypointSource, MotionTransferModel
from enliven.models.motion_transfer import movement_scale
from enliven.types import Keypoints, MotionMode


@dataclass(frozen=True)
class CalibrationSample:
    """One driving frame of a calibration clip, as the animator would render it.

    Attributes:
        source: ``1 x 3 x H x W`` in ``[0, 1]``, the clip's first frame.
        kp_source: its keypoints.
        kp_driving: the frame's keypoints transferred to the source (relative motion), batch 1.
        frame: ``1 x 3 x H x W`` the driving frame.
    """

    source: Tensor
    kp_source: Keypoints
    kp_driving: Keypoints
    frame: Tensor

    @torch.no_grad()
    def graph_inputs(self, model: MotionTransferModel) -> dict[str, tuple[Tensor, ...]]:
        """The flattened inputs of the ``encoder``, ``generator`` and ``keypoints`` graphs (computed by ``model``)."""
        encoding = model.encode_source(self.source, self.kp_source)
        host = model.host_source_inputs(self.kp_source).values()
        return {
            "encoder": (self.source, *flatten(self.kp_source)[0], *host),
            "generator": (*flatten(encoding)[0], *flatten(self.kp_driving)[0]),
            "keypoints": (self.frame,),
        }


def calibration_media(paths: Sequence[str | Path] | None) -> list[Path]:
    """Video or photo files from ``paths`` (files, folders searched recursively, e.g. a prepared dataset's
    ``train``); ``None``: the bundled example clip.

    Raises:
        InputError: nothing usable was found.
    """
    if not paths:
        from enliven.examples import EXAMPLE_DRIVING

        if not EXAMPLE_DRIVING.is_file():
            raise InputError(
                "int8 calibration needs frames and the bundled example clip is missing: run 'enliven export MODEL "
                "-o DIR --format tflite --quantize int8 --calibration CLIPS' and pass DIR as --model."
            )
        return [EXAMPLE_DRIVING]
    suffixes = VIDEO_SUFFIXES | IMAGE_SUFFIXES
    found: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            found += sorted(p for p in item.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
        elif item.is_file() and item.suffix.lower() in suffixes:
            found.append(item)
        else:
            raise InputError(f"--calibration {item}: not a video, photo or folder; pass clips or a dataset folder.")
    if not found:
        raise InputError(f"--calibration {', '.join(map(str, paths))}: no videos found; pass clips or a dataset.")
    return found


@torch.no_grad()
def calibration_samples(
    model: MotionTransferModel, media: Sequence[str | Path] | None, count: int
) -> Iterator[CalibrationSample]:
    """About ``count`` driving frames spread over the clips of ``media`` (see :func:`calibration_media`), each
    with the clip's first frame as the source.

    Face-mesh models see each clip cut at its first frame's face box (as :func:`enliven.animate_file` crops a
    steady clip) with MediaPipe's landmarks of every crop; learned-keypoint models the centre square.
    """
    from enliven.io import read_frames

    files = calibration_media(media)
    per_file = max(2, -(-count // len(files)))
    face = model.keypoint_source is not KeypointSource.LEARNED
    size = model.image_size
    with _FaceCrops(size) if face else contextlib.nullcontext() as faces:
        for path in files[:count]:
            frames = read_frames(path, max_frames=max(per_file * 4, 8))
            picked = frames[np.linspace(0, len(frames) - 1, per_file + 1).round().astype(int)]
            if face:
                crops, points = faces.crops_and_landmarks(picked)
                if points is None:
                    continue
                kp_all = Keypoints(torch.from_numpy(points))
            else:
                crops = _centre_squares(picked, size)
            tensors = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255
            if not face:
                kp_all = model.detect_keypoints(tensors)
            kp_source, kp_driving = kp_all.index(slice(0, 1)), kp_all.index(slice(1, None))
            reference = kp_driving.index(0)
            scale = movement_scale(kp_source, reference)
            moved = model.transfer_motion(kp_source, kp_driving, reference, MotionMode.RELATIVE, scale=scale)
            for index in range(moved.value.shape[0]):
                driving = moved.index(slice(index, index + 1))
                yield CalibrationSample(tensors[:1], kp_source, driving, tensors[index + 1 : index + 2])


class _FaceCrops:
    """Face crops of a clip and their landmarks (MediaPipe's detector and face mesh, made once)."""

    def __init__(self, size: int) -> None:
        from enliven.preprocess import FaceDetector, FaceLandmarker

        self.size = size
        self.detector = FaceDetector()
        self.landmarker = FaceLandmarker()

    def __enter__(self) -> _FaceCrops:
        return self

    def __exit__(self, *exc: object) -> None:
        self.detector.close()
        self.landmarker.close()

    def crops_and_landmarks(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``N x size x size x 3`` crops at the first frame's face box and ``N x 468 x 2`` landmarks in ``[-1, 1]``
        (``None`` when a crop has no face)."""
        from enliven.preprocess import crop_and_resize, face_crop_box

        faces = self.detector.detect(frames[0])
        if not faces:
            return frames, None
        box = face_crop_box(faces[0], frames.shape[2], frames.shape[1])
        crops = np.stack([crop_and_resize(frame, box, self.size) for frame in frames])
        rows = [self.landmarker.landmarks(crop) for crop in crops]
        if any(row is None for row in rows):
            return crops, None
        return crops, pixels_to_normalized(np.stack(rows), self.size, self.size).astype(np.float32)


def _centre_squares(frames: np.ndarray, size: int) -> np.ndarray:
    """``N x size x size x 3`` centre squares of the frames."""
    import cv2

    h, w = frames.shape[1:3]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    squares = frames[:, top : top + side, left : left + side]
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in squares])
