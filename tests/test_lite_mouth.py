"""enliven-lite 2: the mouth's interior, composing at the photo's resolution, its training parts, and the checks that
keep a face model off bodies and scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO_ROOT, TINY_SIDE, tiny_lite_2
from enliven.config.lite import LiteConfig
from enliven.data.pairs import PairDatasetConfig, choose_frames_by_mouth, mouth_opening
from enliven.errors import CheckpointError, ConfigError, FaceTooSmallError
from enliven.evaluate import metrics
from enliven.evaluate.landmarks import DLIB_MOUTH, region_box
from enliven.evaluate.protocols import MOUTH_ZOOM_SIDE, mouth_zoom
from enliven.face_mesh import INNER_LIPS, OUTER_LIPS
from enliven.inference.cropper import FaceCropper, check_usable_face
from enliven.models.factory import build_model
from enliven.models.lite.regions import polygon_mask
from enliven.preprocess import Box, FaceDetection, compensate_resampling
from enliven.train.checkpointing import warm_start
from enliven.train.families import mouth_region_error
from enliven.types import Keypoints

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_MOUTH = tiny_lite_2()


def face_with_mouth(gap: float) -> torch.Tensor:
    """``1 x 468 x 2`` landmarks: a cloud inside a face ellipse, the lips as two rings around ``(0, 0.4)``, the inner
    ring's upper and lower halves ``gap`` apart (0: a closed mouth)."""
    rng = np.random.default_rng(0)
    angle, radius = rng.uniform(0, 2 * np.pi, 468), rng.uniform(0.6, 1, 468)
    points = np.stack([0.45 * radius * np.cos(angle), 0.55 * radius * np.sin(angle)], axis=-1)
    for ring, half_width, half_height in ((OUTER_LIPS, 0.25, 0.08 + gap / 2), (INNER_LIPS, 0.18, gap / 2)):
        t = np.linspace(np.pi, -np.pi, len(ring), endpoint=False)  # upper half first, then the lower back
        points[list(ring)] = np.stack([half_width * np.cos(t), 0.4 - half_height * np.sin(t) + 1e-3 * t], -1)
    return torch.from_numpy(points.astype(np.float32))[None]


def test_polygon_mask_rasterises_by_the_even_odd_rule() -> None:
    square = torch.tensor([[[-0.4, -0.4], [0.4, -0.4], [0.4, 0.4], [-0.4, 0.4]]])
    mask = polygon_mask(square, 9, feather=0)
    assert mask.shape == (1, 1, 9, 9)
    expected = torch.zeros(9, 9)
    expected[3:6, 3:6] = 1  # the grid points at -0.25, 0 and 0.25
    assert torch.equal(mask[0, 0], expected)
    soft = polygon_mask(square, 9, feather=1)
    assert 0 < float(soft[0, 0, 2, 4]) < 1 and float(soft[0, 0, 4, 4]) == 1
    assert float(polygon_mask(torch.full((1, 4, 2), float("nan")), 9).sum()) == 0  # no face: nothing inside


@torch.no_grad()
def test_an_opening_mouth_is_synthesised_not_stretched() -> None:
    model = build_model(TINY_MOUTH).eval()
    source = torch.full((1, 3, TINY_SIDE, TINY_SIDE), 0.8)
    closed, wide = face_with_mouth(0.0), face_with_mouth(0.25)
    encoding = model.encode_source(source, Keypoints(closed))
    assert encoding.mouth is not None and float(encoding.mouth.sum()) < 2  # a closed mouth shows no interior
    out = model.generate(encoding, Keypoints(wide))
    # The untrained model shades the uncovered interior (a mouth is dark inside), leaves the rest as warped.
    centre = out.prediction[0, :, int(0.7 * TINY_SIDE), TINY_SIDE // 2]
    assert float(centre.max()) < 0.5
    assert float((out.prediction[..., : TINY_SIDE // 2, :] - 0.8).abs().max()) < 1e-3
    # The same open mouth in the source: nothing is uncovered, the source's own interior (teeth) is kept.
    open_source = model.encode_source(source, Keypoints(wide))
    kept = model.generate(open_source, Keypoints(wide))
    assert float((kept.prediction - 0.8).abs().max()) < 0.05


@torch.no_grad()
def test_the_prediction_is_composed_at_the_detail_resolution() -> None:
    model = build_model(TINY_MOUTH).eval()
    points = Keypoints(face_with_mouth(0.0))
    source = torch.rand(1, 3, TINY_SIDE, TINY_SIDE)
    detail = torch.rand(1, 3, 3 * TINY_SIDE, 3 * TINY_SIDE)
    out = model.generate(model.encode_source(source, points, detail=detail), points)
    assert out.prediction.shape == (1, 3, 3 * TINY_SIDE, 3 * TINY_SIDE)
    # Unmoved and untrained: the detail itself, pixel for pixel (the warp is the identity).
    assert float((out.prediction - detail).abs().max()) < 0.02


def test_mouth_region_loss_looks_inside_the_lips_only() -> None:
    landmarks = face_with_mouth(0.1)
    target = torch.rand(1, 3, TINY_SIDE, TINY_SIDE)
    assert float(mouth_region_error(target, target, landmarks)) == 0
    lips = polygon_mask(landmarks[:, list(OUTER_LIPS)], TINY_SIDE, feather=2) > 0  # grown by a 32nd of the side
    outside = torch.where(lips, target, 1 - target)
    assert float(mouth_region_error(outside, target, landmarks)) == 0
    inside = torch.where(lips, 1 - target, target)
    assert float(mouth_region_error(inside, target, landmarks)) > 0.2
    nan = torch.full_like(landmarks, float("nan"))
    assert float(mouth_region_error(inside, target, nan)) == 0  # no landmarks: nothing to weigh


def test_warm_start_copies_what_fits(tmp_path: Path) -> None:
    from enliven.weights.checkpoint import save_release

    old = build_model(LiteConfig(image_size=TINY_SIDE, motion_size=16, channels=(8, 16), motion_expansion=8))
    path = tmp_path / "old.safetensors"
    save_release(old, path)
    new = build_model(TINY_MOUTH)
    copied = warm_start(new, str(path))
    assert "dense_motion.head.weight" in copied and "encoder.levels.0.0.weight" in copied
    assert not [name for name in copied if "mouth" in name or "refine_more" in name]  # new parts stay new
    assert torch.equal(new.dense_motion.head.weight, old.dense_motion.head.weight)
    other = build_model(LiteConfig(image_size=TINY_SIDE, motion_size=16, channels=(8, 16), motion_expansion=4))
    with pytest.raises(CheckpointError, match="shares no tensor"):
        warm_start(other.encoder, str(path))
    with pytest.raises(CheckpointError, match="could not be loaded"):
        warm_start(new, str(tmp_path / "missing.safetensors"))


def test_mouth_pairs_favour_frames_whose_mouth_differs() -> None:
    gaps = np.zeros(60)
    gaps[30:40] = 0.5  # ten frames of an open mouth
    landmarks = np.zeros((60, 468, 2))
    landmarks[:, 33], landmarks[:, 263] = (0, 0), (1, 0)
    landmarks[:, 14, 1] = gaps
    assert np.allclose(mouth_opening(landmarks), gaps)
    rng = np.random.default_rng(0)
    pairs = [choose_frames_by_mouth(np.arange(60), gaps, rng, 40) for _ in range(2000)]
    differs = np.mean([gaps[a] != gaps[b] for a, b in pairs])
    assert differs > 0.5  # drawn uniformly, about 0.3 of the pairs would differ
    assert all(a < b and b - a <= 40 for a, b in pairs)
    with pytest.raises(ConfigError, match="landmarks"):
        PairDatasetConfig(root=Path("."), mouth_pairs=0.5)
    with pytest.raises(ConfigError, match="probability"):
        PairDatasetConfig(root=Path("."), landmarks=True, mouth_pairs=2)


def _face(side: float) -> FaceDetection:
    return FaceDetection(Box(100, 100, 100 + side, 100 + side), 0.9, np.zeros((6, 2)))


def test_a_face_model_refuses_a_body_or_a_scene() -> None:
    check_usable_face(_face(120), 512, 512, "the photo")  # a portrait
    with pytest.raises(FaceTooSmallError, match="shorter side.*--force"):
        check_usable_face(_face(70), 1024, 1920, "the photo")  # a full-body photo
    with pytest.raises(FaceTooSmallError, match="only 40 pixels"):
        check_usable_face(_face(40), 200, 200, "the photo")  # a big share, but too few pixels


def test_the_cli_says_so_and_force_animates_anyway(tmp_path: Path) -> None:
    pytest.importorskip("mediapipe")
    from PIL import Image

    from enliven.cli import main
    from enliven.io import read_image

    photo = read_image(REPO_ROOT / "assets" / "source-astronaut.jpg")
    scene = np.full((2000, 2000, 3), 200, np.uint8)
    scene[1400:1912, 700:1212] = photo  # the portrait as a small part of a large picture
    Image.fromarray(scene).save(tmp_path / "scene.png")
    with FaceCropper(256) as cropper, pytest.raises(FaceTooSmallError):
        cropper.source_box(scene)
    frames = [read_image(REPO_ROOT / "assets" / "source-astronaut.jpg")] * 3
    clip = tmp_path / "clip"
    clip.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(clip / f"{i:03d}.png")
    out = tmp_path / "out.mp4"
    argv = ["animate", str(tmp_path / "scene.png"), str(clip), "-o", str(out), "-q", "--model", "enliven-lite"]
    assert main(argv) == 2 and not out.exists()
    assert main([*argv, "--force"]) == 0 and out.is_file()
    out.unlink()
    assert main(argv[:-2]) == 0 and out.is_file()  # model auto: the generic model, not a refusal


def test_sharpness_and_mouth_helpers() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    blurred = np.full_like(image, 128)
    assert metrics.laplacian_energy(blurred)[0] == 0 < metrics.laplacian_energy(image)[0]
    assert metrics.laplacian_energy(np.stack([image, blurred]), (8, 8, 32, 32)).shape == (2,)
    sharpened = compensate_resampling(image)
    assert sharpened.dtype == np.uint8 and metrics.laplacian_energy(sharpened)[0] > metrics.laplacian_energy(image)[0]
    assert compensate_resampling(image, 0) is image
    points = np.full((68, 2), np.nan)
    assert region_box(points, (64, 64)) is None
    points[DLIB_MOUTH] = [[20, 40], [40, 40], [30, 50]] + [[30, 45]] * 17
    assert region_box(points, (64, 64)) == (20, 40, 40, 50)
    assert region_box(points, (64, 64), grow=0.5, square=True) == (10, 25, 50, 64)  # 20 px square, grown, clipped
    zoom = mouth_zoom(image, points)
    assert zoom.shape == (MOUTH_ZOOM_SIDE, MOUTH_ZOOM_SIDE, 3)
    assert mouth_zoom(image, np.full((68, 2), np.nan)).shape == zoom.shape  # no face: the lower middle


def test_compensation_is_measured_for_each_photo() -> None:
    from enliven.preprocess.resize import MAX_COMPENSATION, resampling_loss

    rng = np.random.default_rng(1)
    smooth = np.repeat(np.repeat(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), 8, 0), 8, 1)
    fine = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    for image in (smooth, fine):
        c0, c1, c2 = resampling_loss(image)
        assert c0 < 1 and c1 > 0  # a sub-pixel warp softens; sharpening first gives it back
    # Noise loses more to resampling than blocky shapes, so it gets more sharpening (both below the cap).
    gain = [
        metrics.laplacian_energy(compensate_resampling(i))[0] / metrics.laplacian_energy(i)[0] for i in (smooth, fine)
    ]
    assert 1 < gain[0] < gain[1]
    assert MAX_COMPENSATION >= 1


def test_paste_back_composes_at_the_photos_resolution(tmp_path: Path) -> None:
    from enliven.inference import AnimateOptions
    from enliven.inference.animate import detail_crop
    from enliven.inference.animator import Animator

    model = build_model(TINY_MOUTH)
    photo = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    box = Box(50, 20, 250, 220)
    with Animator(model, device="cpu") as animator:
        assert detail_crop(photo, box, animator, AnimateOptions()) is None  # no paste-back: the model's size
        detail = detail_crop(photo, box, animator, AnimateOptions(paste_back=True))
        assert detail is not None and detail.shape == (200, 200, 3)
        points = face_with_mouth(0.0)[0].numpy()
        animator.set_source(np.ascontiguousarray(photo[20:220, 50:250]), points, detail=detail)
        assert animator.animate_keypoints(points).shape == (200, 200, 3)


def test_a_wider_mouth_moves_the_teeth_with_the_upper_lip_and_opens_below_them() -> None:
    from enliven.face_mesh import UPPER_INNER_LIP_MIDDLE
    from enliven.geometry import make_coordinate_grid
    from enliven.models.lite.regions import mouth_motion

    inner = list(INNER_LIPS)
    upper = torch.tensor([INNER_LIPS.index(i) for i in UPPER_INNER_LIP_MIDDLE])
    lips_source, lips_driving = face_with_mouth(0.1)[:, inner], face_with_mouth(0.3)[:, inner]
    side = 65  # grid points every 1/32
    source_mouth = polygon_mask(lips_source, side)
    identity = make_coordinate_grid((side, side))[None]
    flow, uncovered = mouth_motion(identity, source_mouth, lips_source, lips_driving, upper)
    row = lambda y: round((y + 1) / 2 * (side - 1))  # noqa: E731
    column = side // 2
    # Inside the mouth the flow is the upper lip's shift (up in the output: down in the source)...
    shift = (lips_source[0, upper] - lips_driving[0, upper]).mean(0)
    assert 0.07 < float(shift[1]) < 0.1
    torch.testing.assert_close(flow[0, row(0.4), column], identity[0, row(0.4), column] + shift)
    # ...outside it the flow is left as it was.
    torch.testing.assert_close(flow[0, row(-0.5), column], identity[0, row(-0.5), column])
    # The source's opening (y 0.35-0.45) moves up with the upper lip to 0.25-0.35: those teeth are shown, not
    # stretched; the driving mouth below them (to 0.55) is uncovered, where the interior is synthesised.
    assert float(uncovered[0, 0, row(0.3), column]) < 0.2  # soft edges: mostly shown
    assert float(uncovered[0, 0, row(0.47), column]) > 0.9
