"""The public inference surface without ../shared: Animator, FaceCropper and animate_file on the bundled media with
tiny models, and a dummy family and a dummy backend registered from this file alone."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from conftest import tiny_fomm_document
from enliven.backends import Backend, backend_names, get_backend, register_backend, unregister_backend
from enliven.config import config_from_dict
from enliven.errors import InputError, NoFaceError, OutputError
from enliven.families import Family, family_names, register_family, unregister_family
from enliven.inference import (
    AnimateOptions,
    Animator,
    Cancelled,
    FaceCropper,
    animate_file,
    load_for_options,
)
from enliven.io import read_frames, read_image
from enliven.io.ffmpeg import run_ffmpeg
from enliven.models.base import MotionTransferModel, SourceEncoding
from enliven.models.factory import build_model
from enliven.types import GeneratorOutput, Keypoints, MotionField
from enliven.weights import LoadedModel, load_model, save_release

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "assets" / "source-astronaut.jpg"
CLIP = ROOT / "assets" / "driving-grid-bbaf2n.mpg"


@pytest.fixture(scope="module")
def clip_frames() -> np.ndarray:
    return read_frames(CLIP, max_frames=12)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return read_image(PHOTO)


def _tiny_fomm() -> MotionTransferModel:
    torch.manual_seed(0)
    return build_model(config_from_dict(tiny_fomm_document()))


# -- a dummy family, registered from this file ------------------------------------------------------------------


@dataclass(frozen=True)
class ShiftConfig:
    """A family whose 'model' moves the whole source by the mean keypoint displacement."""

    family: ClassVar[str] = "shift-test"
    image_size: int = 32
    num_channels: int = 3
    num_kp: int = 2

    @classmethod
    def from_yaml_dict(cls, data: dict[str, Any]) -> ShiftConfig:
        params = data["model_params"]
        return cls(image_size=int(data["dataset_params"]["frame_shape"][0]), num_kp=int(params["num_kp"]))

    def to_yaml_dict(self) -> dict[str, Any]:
        return {
            "model_params": {"family": self.family, "num_kp": self.num_kp},
            "dataset_params": {"frame_shape": [self.image_size, self.image_size, 3]},
        }


class ShiftModel(MotionTransferModel):
    """Keypoints: the centre of mass of dark and bright pixels; output: the source rolled by their motion."""

    family = "shift-test"

    def __init__(self, config: ShiftConfig) -> None:
        super().__init__()
        self.config = config
        self.gain = nn.Parameter(torch.ones(()))

    def detect_keypoints(self, image: Tensor) -> Keypoints:
        grid = torch.linspace(-1, 1, image.shape[-1])
        weight = image.mean(1)  # B x H x W
        weights = torch.stack([weight, 1 - weight], 1) + 1e-6  # B x 2 x H x W
        weights = weights / weights.sum((-1, -2), keepdim=True)
        x = (weights * grid[None, None, None, :]).sum((-1, -2))
        y = (weights * grid[None, None, :, None]).sum((-1, -2))
        return Keypoints(torch.stack([x, y], -1))

    def encode_source(self, source: Tensor, keypoints: Keypoints | None = None) -> SourceEncoding:
        return SourceEncoding(source, keypoints if keypoints is not None else self.detect_keypoints(source))

    def generate(self, encoding: SourceEncoding, kp_driving: Keypoints) -> GeneratorOutput:
        shift = (kp_driving.value - encoding.keypoints.value).mean(1) * self.gain  # B x 2
        size = encoding.image.shape[-1]
        theta = torch.zeros(shift.shape[0], 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = 1
        theta[:, :, 2] = -shift
        grid = torch.nn.functional.affine_grid(theta, [shift.shape[0], 3, size, size], align_corners=True)
        image = encoding.image.expand(shift.shape[0], -1, -1, -1)
        frames = torch.nn.functional.grid_sample(image, grid, align_corners=True, padding_mode="border")
        motion = MotionField(deformation=grid)
        return GeneratorOutput(prediction=frames, motion=motion)


class MirrorBackend(Backend):
    """A backend that runs the PyTorch model and mirrors every output frame (so its use is visible)."""

    name = "mirror-test"
    devices = ("cpu",)

    def export(self, model, output, **options):
        raise NotImplementedError

    def cached(self, loaded: LoadedModel, *, threads=None, cache_dir=None) -> LoadedModel:
        return LoadedModel(_Mirrored(loaded.model), loaded.source, loaded.metadata)

    def verify(self, model, converted) -> float:
        return 0.0


class _Mirrored(MotionTransferModel):
    def __init__(self, inner: MotionTransferModel) -> None:
        super().__init__()
        self.inner = inner
        self.config = inner.config
        self.family = inner.family  # type: ignore[misc]

    def detect_keypoints(self, image: Tensor) -> Keypoints:
        return self.inner.detect_keypoints(image)

    def encode_source(self, source: Tensor, keypoints: Keypoints | None = None) -> SourceEncoding:
        return self.inner.encode_source(source, keypoints)

    def generate(self, encoding: SourceEncoding, kp_driving: Keypoints) -> GeneratorOutput:
        out = self.inner.generate(encoding, kp_driving)
        return GeneratorOutput(prediction=out.prediction.flip(-1), motion=out.motion)


@pytest.fixture
def shift_family():
    family = register_family(Family("shift-test", config=ShiftConfig, model=ShiftModel))
    yield family
    unregister_family(family.name)


@pytest.fixture
def mirror_backend():
    backend = register_backend(MirrorBackend())
    yield backend
    unregister_backend(backend.name)


def test_a_family_registered_from_a_test_file_saves_loads_and_animates(
    shift_family: Family, mirror_backend: Backend, tmp_path: Path, clip_frames: np.ndarray
) -> None:
    assert "shift-test" in family_names() and "mirror-test" in backend_names()
    model = build_model(ShiftConfig())
    assert isinstance(model, ShiftModel)
    release = save_release(model, tmp_path / "shift.safetensors", {"content": "other"})
    loaded = load_model(release)  # the config is read back through the registry
    assert isinstance(loaded.model, ShiftModel) and loaded.metadata["content"] == "other"

    frames = [np.ascontiguousarray(f[:96, :96]) for f in clip_frames[:6]]
    options = AnimateOptions(model=str(release), backend="torch", crop=False)
    plain = animate_file(frames[0], frames, tmp_path / "plain/", options)
    mirrored = animate_file(
        frames[0], frames, tmp_path / "mirror/", AnimateOptions(model=str(release), backend="mirror-test", crop=False)
    )
    assert plain.frames == mirrored.frames == 6
    first = read_image(tmp_path / "plain" / "000000.png")
    first_mirrored = read_image(tmp_path / "mirror" / "000000.png")
    assert first.shape == (32, 32, 3)
    np.testing.assert_array_equal(first_mirrored, first[:, ::-1])


def test_registering_twice_needs_replace(shift_family: Family) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_family(shift_family)
    register_family(shift_family, replace=True)
    with pytest.raises(InputError, match="unknown backend 'nope'"):
        get_backend("nope")


# -- Animator ---------------------------------------------------------------------------------------------------


def test_animate_keypoints_is_the_frame_path(clip_frames: np.ndarray) -> None:
    model = _tiny_fomm()
    crops = np.stack([f[:64, :64] for f in clip_frames[:4]])
    by_frames = Animator(model, device="cpu")
    by_frames.set_source(crops[0])
    expected = by_frames(crops)
    by_keypoints = Animator(model, device="cpu")
    by_keypoints.set_source(crops[0])
    keypoints = model.detect_keypoints(by_keypoints.to_tensor(crops))
    np.testing.assert_array_equal(by_keypoints.animate_keypoints(keypoints), expected)
    one = by_keypoints.animate_keypoints(keypoints.index(slice(1, 2)))
    np.testing.assert_array_equal(one[0], expected[1])
    with pytest.raises(ValueError, match="driven by 4 keypoints"):
        by_keypoints.animate_keypoints(np.zeros((3, 2), np.float32))


# -- FaceCropper ------------------------------------------------------------------------------------------------


def test_face_cropper_streams_steady_boxes_and_holds_the_last_one(photo: np.ndarray, clip_frames: np.ndarray) -> None:
    with FaceCropper(128, fps=25) as cropper:
        source = cropper.crop_source(photo)
        assert source.image.shape == (128, 128, 3) and source.face_found and source.box is not None
        crops = [cropper.crop_frame(frame) for frame in clip_frames]
        assert all(c.face_found and c.image.shape == (128, 128, 3) for c in crops)
        centres = np.array([c.box.center for c in crops])
        # The speaker barely moves: the smoothed box moves less than a pixel a frame.
        assert np.abs(np.diff(centres, axis=0)).max() < 1.0
        blank = np.zeros_like(clip_frames[0])
        lost = cropper.crop_frame(blank)
        assert not lost.face_found and lost.box == crops[-1].box
        pasted = cropper.paste(clip_frames[0], np.zeros((128, 128, 3), np.uint8), crops[0].box)
        assert pasted.shape == clip_frames[0].shape and pasted.mean() < clip_frames[0].mean()
        cropper.reset()
        with pytest.raises(NoFaceError, match="no face was found in the blank"):
            cropper.crop_source(np.zeros((64, 64, 3), np.uint8), "the blank")


def test_face_cropper_clip_boxes_match_the_streaming_box(clip_frames: np.ndarray) -> None:
    with FaceCropper(256) as cropper:
        (stable,) = cropper.clip_boxes(iter(clip_frames))
        streamed = [cropper.crop_frame(f).box for f in clip_frames][-1]
    # One box around the whole clip contains (nearly) the face-framed box of its last frame.
    assert stable.iou(streamed) > 0.8


def test_cropper_pads_other_content_and_passes_whole_frames() -> None:
    frame = np.full((40, 80, 3), 200, np.uint8)
    with FaceCropper(32, content="other") as cropper:
        crop = cropper.crop_frame(frame)
        assert crop.image.shape == (32, 32, 3) and crop.box is not None and crop.box.width == crop.box.height == 80
    with FaceCropper(32, crop=False) as cropper:
        assert cropper.crop_frame(frame).box is None


# -- animate_file -----------------------------------------------------------------------------------------------


def test_animate_file_reuses_a_loaded_model_reports_progress_and_cancels(tmp_path: Path) -> None:
    options = AnimateOptions(model="untrained-demo", paste_back=True)
    loaded, device = load_for_options(options)
    seen: list[tuple[int, int | None]] = []
    result = animate_file(
        PHOTO, CLIP, tmp_path / "out.mp4", options, model=loaded, on_progress=lambda *a: seen.append(a)
    )
    assert result.frames == 75 and seen[-1] == (75, 75) and len(seen) == 75
    assert (tmp_path / "out.mp4").is_file() and result.source_box is not None

    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        animate_file(PHOTO, CLIP, tmp_path / "cancelled.mp4", options, model=loaded, cancel=stop)
    assert not (tmp_path / "cancelled.mp4").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temporary files left


def test_animate_file_never_writes_over_an_input(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    run_ffmpeg("-i", str(CLIP), "-frames:v", "5", "-c:v", "libx264", str(clip))
    before = clip.read_bytes()
    with pytest.raises(OutputError, match="is the input"):
        animate_file(PHOTO, clip, clip, AnimateOptions(model="untrained-demo"))
    assert clip.read_bytes() == before


def test_animate_file_takes_arrays(photo: np.ndarray, clip_frames: np.ndarray, tmp_path: Path) -> None:
    result = animate_file(
        photo, list(clip_frames[:5]), tmp_path / "frames/", AnimateOptions(model="untrained-demo", size=64)
    )
    assert result.frames == 5 and len(list((tmp_path / "frames").iterdir())) == 5
    with pytest.raises(InputError, match="uint8 RGB array"):
        animate_file(photo.astype(np.float32), list(clip_frames[:2]), tmp_path / "x.mp4")


def test_sampled_tracking_finds_the_same_stable_box_in_fewer_frames() -> None:
    from enliven.preprocess import FaceDetector, track_faces, track_faces_sampled

    frames = read_frames(CLIP)
    calls = 0
    with FaceDetector() as detector:
        every = track_faces(iter(frames), detector).stable_box()
        detect = detector.detect

        def counted(image: np.ndarray):
            nonlocal calls
            calls += 1
            return detect(image)

        detector.detect = counted  # type: ignore[method-assign]
        sampled = track_faces_sampled(frames, detector).stable_box()
    assert calls < len(frames) * 0.6
    assert np.abs(every.as_array() - sampled.as_array()).max() < 0.02 * every.width


def test_convex_hull_area_matches_qhull() -> None:
    from scipy.spatial import ConvexHull

    from enliven.polygons import convex_hull_area

    rng = np.random.default_rng(0)
    for count in (3, 5, 68, 468):
        points = rng.normal(size=(count, 2))
        assert convex_hull_area(points) == pytest.approx(ConvexHull(points).volume, rel=1e-12)
    assert convex_hull_area(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])) == 0.0


def test_a_size_the_model_cannot_take_is_one_sentence() -> None:
    with pytest.raises(InputError, match="cannot run at 40x40"):
        Animator(_tiny_fomm(), device="cpu", size=40)
    assert Animator(_tiny_fomm(), device="cpu", size=128).size == 128


def test_a_failing_stage_stops_the_pipeline_and_leaves_no_output(tmp_path: Path, clip_frames: np.ndarray) -> None:
    from enliven.inference.pipeline import animate_frames, frame_keypoints

    animator = Animator(_tiny_fomm(), device="cpu")
    animator.set_source(clip_frames[0][:64, :64])

    def crop(index: int, frame: np.ndarray) -> np.ndarray:
        if index == 3:
            raise InputError("frame 3 is broken")
        return np.ascontiguousarray(frame[:64, :64])

    def finish(frame: np.ndarray) -> np.ndarray:
        return frame

    def keypoints(crop_frame, batch_size: int = 1):  # type: ignore[no-untyped-def]
        return frame_keypoints(iter(clip_frames), crop_frame, animator, batch_size)

    options = {"animator": animator, "fps": 25.0, "audio": None, "total": None, "cancel": None}
    with pytest.raises(InputError, match="frame 3 is broken"):
        animate_frames(keypoints(crop), finish=finish, output=tmp_path / "a.mp4", on_progress=None, **options)
    seen: list[int] = []

    def failing_finish(frame: np.ndarray) -> np.ndarray:
        raise OutputError("the disk is full")

    with pytest.raises(OutputError, match="the disk is full"):
        animate_frames(
            keypoints(lambda i, f: np.ascontiguousarray(f[:64, :64])),
            finish=failing_finish,
            output=tmp_path / "b.mp4",
            on_progress=lambda done, total: seen.append(done),
            **options,
        )
    assert list(tmp_path.iterdir()) == [] and seen == []
    written = animate_frames(
        keypoints(lambda i, f: np.ascontiguousarray(f[:64, :64]), batch_size=5),
        finish=None,
        output=tmp_path / "c.mp4",
        on_progress=None,
        **options,
    )
    assert written == len(clip_frames) and (tmp_path / "c.mp4").is_file()
