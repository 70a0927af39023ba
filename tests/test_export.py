"""ONNX export: one graph per stage, run in onnxruntime, frames within 1e-3 of PyTorch; the exportable TPS solve;
``enliven export`` and ``enliven animate --backend onnx``."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY_SIDE, square_frame, tiny_family_configs

pytest.importorskip("onnxruntime")

from enliven.backends import get_backend  # noqa: E402
from enliven.cli import main  # noqa: E402
from enliven.config import config_from_dict  # noqa: E402
from enliven.config.lite import LITE_2  # noqa: E402
from enliven.errors import InputError  # noqa: E402
from enliven.export import (  # noqa: E402
    ExportCheckError,
    ExportError,
    Manifest,
    OnnxMotionModel,
    cached_onnx_model,
    export_onnx,
    flatten,
    model_hash,
    unflatten,
)
from enliven.face_mesh import NUM_FACE_MESH_POINTS  # noqa: E402
from enliven.inference.animator import Animator  # noqa: E402
from enliven.models.base import KeypointSource, MotionTransferModel  # noqa: E402
from enliven.models.factory import build_model  # noqa: E402
from enliven.models.tpsmm.tps import ThinPlateSpline, gauss_jordan_solve, radial_basis  # noqa: E402
from enliven.types import GeneratorOutput, Keypoints, MotionField, MotionMode  # noqa: E402
from enliven.weights.checkpoint import save_release  # noqa: E402
from enliven.weights.presets import PRESETS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-3
TINY_CONFIGS = tiny_family_configs()


def _tiny_model(family: str) -> MotionTransferModel:
    torch.manual_seed(0)
    return build_model(TINY_CONFIGS[family]())


def _face_points(batch: int, seed: int) -> torch.Tensor:
    """``batch x 468 x 2`` landmark-like points inside a centred ellipse, in ``[-1, 1]``."""
    generator = torch.Generator().manual_seed(seed)
    angle = torch.rand(batch, NUM_FACE_MESH_POINTS, generator=generator) * 2 * torch.pi
    radius = torch.rand(batch, NUM_FACE_MESH_POINTS, generator=generator)
    return torch.stack([0.35 * radius * angle.cos(), 0.45 * radius * angle.sin()], dim=-1)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread for PyTorch and onnxruntime: tiny graphs gain nothing from two busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=sorted(TINY_CONFIGS))
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A tiny random model of each family, exported (and checked) once for the module."""
    model = _tiny_model(request.param)
    folder = tmp_path_factory.mktemp("export") / request.param
    result = export_onnx(model, folder, metadata={"content": "face"})
    return model, result


# --- export and runtime -----------------------------------------------------------------------------------------


def test_export_folder_manifest_and_check(exported) -> None:
    model, result = exported
    assert result.max_difference is not None and result.max_difference <= TOLERANCE
    learned = model.keypoint_source is KeypointSource.LEARNED
    files = sorted(p.name for p in result.folder.iterdir())
    graph_files = ["encoder.onnx", "generator.onnx", *(["keypoints.onnx"] if learned else [])]
    assert files == ["config.yaml", *graph_files, "manifest.json"]
    manifest = Manifest.read(result.folder)
    assert manifest == result.manifest
    assert (manifest.family, manifest.image_size) == (model.family, TINY_SIDE)
    assert manifest.keypoint_source == ("learned" if learned else "face_mesh")
    assert manifest.supported_modes == ["relative", "absolute"] and manifest.metadata == {"content": "face"}
    graphs = manifest.graphs
    assert graphs["generator"].outputs[0] == "prediction" and graphs["encoder"].inputs[0] == "source"
    assert not learned or graphs["keypoints"].inputs == ["frames"]
    assert graphs["encoder"].outputs == graphs["generator"].inputs[: len(graphs["encoder"].outputs)]
    assert not list(result.folder.parent.glob(".*"))  # no temporary folder left behind


@pytest.mark.parametrize("mode", [MotionMode.RELATIVE, MotionMode.ABSOLUTE])
def test_frames_match_between_backends(exported, mode: MotionMode) -> None:
    """Through the animator (learned keypoints), or its steps with given landmarks (what it does for face-mesh
    models once it has tracked the face: random frames hold no face to track)."""
    model, result = exported
    onnx_model = OnnxMotionModel(result.folder, threads=1)
    if model.keypoint_source is KeypointSource.LEARNED:
        predictions = [_animate(backend, mode) for backend in (model, onnx_model)]
    else:
        predictions = [_animate_with_landmarks(backend, mode) for backend in (model, onnx_model)]
        with pytest.raises(ValueError, match="face-mesh"):
            onnx_model.detect_keypoints(torch.rand(1, 3, TINY_SIDE, TINY_SIDE))
    assert predictions[1].shape == (4, 3, TINY_SIDE, TINY_SIDE)
    assert (predictions[0] - predictions[1]).abs().max() <= TOLERANCE


def test_face_mesh_model_through_the_animator_on_a_real_face(tmp_path: Path) -> None:
    """enliven-lite's architecture (random weights): the animator tracks the face mesh, both backends animate."""
    pytest.importorskip("mediapipe")
    from enliven.io import VideoSource, read_image
    from enliven.preprocess import FaceDetector, crop_and_resize, face_crop_box

    model = build_model(LITE_2)
    export_onnx(model, tmp_path / "lite", check=False)
    onnx_model = OnnxMotionModel(tmp_path / "lite")
    images = [read_image(REPO / "assets" / "source-astronaut.jpg")]
    for index, frame in enumerate(VideoSource(REPO / "assets" / "driving-grid-bbaf2n.mpg")):
        if index == 3:
            break
        images.append(frame)
    with FaceDetector() as detector:
        boxes = [face_crop_box(detector.detect(image)[0], image.shape[1], image.shape[0]) for image in images]
    crops = [crop_and_resize(image, box, model.image_size) for image, box in zip(images, boxes, strict=True)]
    predictions = []
    for backend in (model, onnx_model):
        animator = Animator(backend, device="cpu", mode=MotionMode.RELATIVE)
        animator.set_source(crops[0])
        predictions.append(animator.animate(animator.to_tensor(np.stack(crops[1:]))).prediction)
    assert (predictions[0] - predictions[1]).abs().max() <= TOLERANCE


def _animate(model: MotionTransferModel, mode: MotionMode) -> torch.Tensor:
    """Three frames in one batch, then one alone."""
    frames = np.stack([square_frame(1, i) for i in range(3)])
    animator = Animator(model, device="cpu", mode=mode, adapt_scale=True)
    animator.set_source(square_frame(0, 0))
    batched = animator.animate(animator.to_tensor(frames)).prediction
    single = animator.animate(animator.to_tensor(frames[1])).prediction
    return torch.cat([batched, single])


@torch.no_grad()
def _animate_with_landmarks(model: MotionTransferModel, mode: MotionMode) -> torch.Tensor:
    source = torch.from_numpy(square_frame(0, 0)).permute(2, 0, 1)[None].float() / 255
    kp_source, kp_driving = Keypoints(_face_points(1, 0)), Keypoints(_face_points(3, 1))
    encoding = model.encode_source(source, kp_source)
    kp = model.transfer_motion(kp_source, kp_driving, kp_driving.index(0), mode, scale=0.9)
    return torch.cat([model.generate(encoding, kp).prediction, model.generate(encoding, kp.index(1)).prediction])


def test_onnx_model_interface(exported) -> None:
    model, result = exported
    onnx_model = OnnxMotionModel(result.folder, threads=1)
    assert list(onnx_model.parameters()) == [] and onnx_model.family == model.family
    assert onnx_model.config == model.config and onnx_model.image_size == TINY_SIDE
    source = torch.rand(1, 3, TINY_SIDE, TINY_SIDE)
    learned = model.keypoint_source is KeypointSource.LEARNED
    kp_source = None if learned else Keypoints(_face_points(1, 0))
    encoding = onnx_model.encode_source(source, kp_source)
    with torch.no_grad():
        assert type(encoding) is type(model.encode_source(source, kp_source))
    frames = torch.rand(2, 3, TINY_SIDE, TINY_SIDE)
    kp_driving = onnx_model.detect_keypoints(frames) if learned else Keypoints(_face_points(2, 1))
    out = onnx_model.generate(encoding, kp_driving)
    assert isinstance(out, GeneratorOutput) and isinstance(out.motion, MotionField)
    assert out.prediction.shape == (2, 3, TINY_SIDE, TINY_SIDE)
    with pytest.raises(ExportError, match="--backend torch"):
        onnx_model.transfer_motion(encoding.keypoints, encoding.keypoints, None, MotionMode.AVD)
    with pytest.raises(ValueError, match="images"):
        onnx_model.encode_source(torch.rand(1, 3, 32, 32))


def test_damaged_exports_are_refused(exported, tmp_path: Path) -> None:
    _, result = exported
    folder = tmp_path / "copy"
    shutil.copytree(result.folder, folder)
    (folder / "generator.onnx").write_bytes(b"not a graph")
    with pytest.raises(InputError, match="cannot load .*generator.onnx.*export the model again"):
        OnnxMotionModel(folder)
    (folder / "encoder.onnx").unlink()
    with pytest.raises(InputError, match="has no encoder.onnx"):
        OnnxMotionModel(folder)
    (folder / "manifest.json").write_text("{}")
    with pytest.raises(InputError, match="manifest"):
        OnnxMotionModel(folder)
    with pytest.raises(InputError, match="not an enliven ONNX export"):
        OnnxMotionModel(tmp_path)


def test_cache_exports_once_per_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _tiny_model("fomm")
    first = cached_onnx_model(model, cache_dir=tmp_path)
    monkeypatch.setattr("enliven.export.cache.export_onnx", _fail)
    assert cached_onnx_model(model, cache_dir=tmp_path).folder == first.folder
    key = model_hash(model)
    with torch.no_grad():
        model.generator.final.bias.add_(1e-3)
    assert model_hash(model) != key


def _fail(*args: object, **kwargs: object) -> None:
    raise AssertionError("exported again")


def test_export_leaves_the_model_as_it_was(tmp_path: Path) -> None:
    model = _tiny_model("fomm").train()
    export_onnx(model, tmp_path / "out", check=False)
    assert model.training and all(m.training for m in model.modules())


def test_bad_export_requests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _tiny_model("fomm")
    with pytest.raises(InputError, match="unknown backend 'tfjs'"):
        get_backend("tfjs")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not an enliven export"):
        export_onnx(model, tmp_path / "busy")
    assert (tmp_path / "busy" / "notes.txt").read_text() == "keep me"
    with pytest.raises(ExportError, match="opset"):
        export_onnx(model, tmp_path / "out", opset=13)
    monkeypatch.setattr("enliven.export.exporter.compare_with_torch", lambda *args: 0.5)
    with pytest.raises(ExportCheckError, match="5.00e-01"):
        export_onnx(model, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".*"))


# --- flattening --------------------------------------------------------------------------------------------------


def test_flatten_round_trip_keeps_types_and_shared_tensors() -> None:
    model = _tiny_model("fomm")
    with torch.no_grad():
        encoding = model.encode_source(torch.rand(1, 3, TINY_SIDE, TINY_SIDE))
    tensors, spec = flatten(encoding)
    assert len(tensors) == 7  # the source keypoints are stored twice but flattened once
    rebuilt = unflatten(tensors, json.loads(json.dumps(spec)))
    assert type(rebuilt) is type(encoding) and rebuilt.motion.keypoints.value is rebuilt.keypoints.value
    assert flatten(rebuilt)[1] == spec
    mixed = {"a": [1, 2.5, "x", None, True], "b": (Keypoints(torch.zeros(2, 3, 2)),)}
    tensors, spec = flatten(mixed)
    again = unflatten(tensors, spec)
    assert again["a"] == [1, 2.5, "x", None, True] and isinstance(again["b"][0], Keypoints)


def test_unflatten_rebuilds_only_enliven_dataclasses() -> None:
    spec = {"kind": "dataclass", "type": "pathlib:PurePath", "fields": {}}
    with pytest.raises(ValueError, match="only enliven"):
        unflatten([], spec)
    with pytest.raises(TypeError, match="object"):
        flatten(object())


# --- the exportable TPS solve ------------------------------------------------------------------------------------


def _tps_systems(control_points: torch.Tensor) -> torch.Tensor:
    """The regularised ``(n + 3) x (n + 3)`` systems ThinPlateSpline.fit solves."""
    batch, num, n, _ = control_points.shape
    distance = torch.linalg.vector_norm(control_points[:, :, :, None] - control_points[:, :, None], dim=-1) ** 2
    homogeneous = torch.cat([control_points, torch.ones(batch, num, n, 1)], dim=3)
    top = torch.cat([radial_basis(distance), homogeneous], dim=3)
    bottom = torch.cat([homogeneous.transpose(2, 3), torch.zeros(batch, num, 3, 3)], dim=3)
    return torch.cat([top, bottom], dim=2) + 0.01 * torch.eye(n + 3)


@pytest.mark.parametrize("kind", ["random", "ill-conditioned"])
def test_gauss_jordan_is_as_accurate_as_the_inverse(kind: str) -> None:
    points = torch.rand(32, 10, 5, 2) * 2 - 1
    if kind == "ill-conditioned":  # saturated at the border, as the sigmoid detector's keypoints often are
        points = torch.sigmoid(points * 8) * 2 - 1
    system = _tps_systems(points)
    rhs = torch.cat([torch.rand(32, 10, 5, 2) * 2 - 1, torch.zeros(32, 10, 3, 2)], dim=2)
    truth = torch.linalg.solve(system.double(), rhs.double())
    scale = truth.abs().amax(dim=(-2, -1))

    def relative_error(solution: torch.Tensor) -> float:
        return float(((solution.double() - truth).abs().amax(dim=(-2, -1)) / scale).max())

    inverse_error = relative_error(torch.linalg.inv(system) @ rhs)
    solve_error = relative_error(gauss_jordan_solve(system, rhs))
    if kind == "ill-conditioned":
        assert torch.linalg.cond(system.double()).max() > 1e3
    assert solve_error <= 1e-4 and solve_error <= 3 * inverse_error


def test_gauss_jordan_pivots_past_zero_diagonals() -> None:
    system = torch.tensor([[0.0, 2.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    rhs = torch.tensor([[2.0], [1.0], [3.0]])
    torch.testing.assert_close(gauss_jordan_solve(system, rhs), torch.ones(3, 1))


def test_tps_fit_solves_exportably_only_while_exporting(monkeypatch: pytest.MonkeyPatch) -> None:
    driving, source = torch.rand(3, 2, 5, 2) * 2 - 1, torch.rand(1, 2, 5, 2) * 2 - 1
    eager = ThinPlateSpline.fit(driving, source)
    system = _tps_systems(driving)
    rhs = torch.cat([source.expand(3, 2, 5, 2), torch.zeros(3, 2, 3, 2)], dim=2)
    params = torch.linalg.inv(system) @ rhs
    assert torch.equal(torch.cat([eager.weights, eager.affine], dim=2), params)  # eager path unchanged
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    exporting = ThinPlateSpline.fit(driving, source)
    torch.testing.assert_close(exporting.affine, eager.affine, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(exporting.weights, eager.weights, atol=1e-4, rtol=1e-4)


# --- command line ------------------------------------------------------------------------------------------------


def _last_error(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and lines[-1].startswith("enliven: error: "), lines
    return lines[-1]


def test_cli_export_then_animate_with_onnx(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENLIVEN_ONNX_CACHE", str(tmp_path / "cache"))
    release = save_release(_tiny_model("fomm"), tmp_path / "tiny.safetensors", {"content": "face"})
    out = tmp_path / "tiny-onnx"
    assert main(["export", str(release), "-o", str(out), "--format", "onnx"]) == 0
    assert "max abs frame difference" in capsys.readouterr().out
    source, driving = REPO / "assets" / "source-astronaut.jpg", REPO / "assets" / "driving-grid-bbaf2n.mpg"
    frames = {}
    for backend, model in [("torch", release), ("onnx", out), ("onnx-cached", release)]:
        target = tmp_path / backend
        args = ["animate", str(source), str(driving), "-o", f"{target}/", "--model", str(model), "--no-crop", "-q"]
        assert main([*args, "--backend", backend.split("-")[0]]) == 0
        frames[backend] = np.stack([np.asarray(Image.open(p)) for p in sorted(target.glob("*.png"))]) / 255.0
    assert frames["torch"].shape == (75, TINY_SIDE, TINY_SIDE, 3)
    for backend in ("onnx", "onnx-cached"):  # PNG rounding: at most one level apart
        assert np.abs(frames[backend] - frames["torch"]).max() <= 1 / 255 + TOLERANCE
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_cli_bad_inputs(tmp_path: Path, capsys) -> None:
    release = save_release(_tiny_model("fomm"), tmp_path / "tiny.safetensors")
    assert main(["export", str(release), "-o", str(tmp_path / "out"), "--format", "tfjs"]) == 2
    assert "unknown export format 'tfjs'" in _last_error(capsys)
    unwritable = Path("/proc/enliven-export") if os.geteuid() == 0 else Path("/enliven-export")
    assert main(["export", str(release), "-o", str(unwritable)]) == 2
    assert "choose" in _last_error(capsys)
    source, driving = REPO / "assets" / "source-astronaut.jpg", REPO / "assets" / "driving-grid-bbaf2n.mpg"
    args = ["animate", str(source), str(driving), "-o", str(tmp_path / "x.mp4"), "--model", str(release)]
    assert main([*args, "--backend", "onnx", "--avd"]) == 2
    assert "--backend torch" in _last_error(capsys)
    assert not (tmp_path / "out").exists() and not (tmp_path / "x.mp4").exists()


def test_cli_failed_check_exits_1(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    release = save_release(_tiny_model("fomm"), tmp_path / "tiny.safetensors")
    monkeypatch.setattr("enliven.export.exporter.compare_with_torch", lambda *args: 0.5)
    assert main(["export", str(release), "-o", str(tmp_path / "out")]) == 1
    assert "differ from the PyTorch model" in _last_error(capsys)
    assert not (tmp_path / "out").exists()


# --- published architectures ---------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["fomm-vox", "tpsmm-vox", "enliven-lite"])
def test_vox_presets_export_within_tolerance(preset: str, tmp_path: Path) -> None:
    spec = PRESETS[preset]
    torch.manual_seed(0)
    model = build_model(config_from_dict(spec.config, spec.family))
    result = export_onnx(model, tmp_path / preset)
    assert result.max_difference is not None and result.max_difference <= TOLERANCE
