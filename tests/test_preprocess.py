"""Tests of enliven.preprocess: boxes, crops, tracks, paste-back, best frame, and MediaPipe on real photos."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from enliven.errors import EnlivenError, NoFaceError
from enliven.preprocess import (
    Box,
    FaceDetector,
    FaceLandmarker,
    FaceTrack,
    IntBox,
    MissingDependencyError,
    OneEuroBoxFilter,
    best_matching_frame,
    center_square_box,
    crop_and_resize,
    extract_region,
    face_alignment_features,
    face_crop_box,
    feather_mask,
    paste_back,
    resize_image,
    split_track,
    square_pad_box,
    track_faces,
)

cv2 = pytest.importorskip("cv2")
iio = pytest.importorskip("imageio.v3")


def _read_rgb(path: Path) -> np.ndarray:
    image = iio.imread(path)
    return np.dstack([image] * 3) if image.ndim == 2 else np.ascontiguousarray(image[..., :3])


def _first_frames(path: Path, count: int) -> list[np.ndarray]:
    frames = []
    for frame in iio.imiter(path):
        frames.append(frame)
        if len(frames) == count:
            break
    return frames


@pytest.fixture(scope="module")
def detector():
    pytest.importorskip("mediapipe")
    with FaceDetector() as det:
        yield det


@pytest.fixture(scope="module")
def landmarker():
    pytest.importorskip("mediapipe")
    with FaceLandmarker() as lm:
        yield lm


# ----------------------------------------------------------------------------------------------- boxes


def test_box_geometry():
    box = Box(10, 20, 50, 40)
    assert (box.width, box.height, box.center) == (40, 20, (30, 30))
    assert box.square() == Box(10, 10, 50, 50)
    assert box.scaled(2) == Box(-10, 10, 70, 50)
    assert box.shifted(dx=5, dy=-5) == Box(15, 15, 55, 35)
    assert box.clipped_to(30, 100) == Box(10, 20, 30, 40)
    assert Box(-5, -5, 10, 10).shifted_inside(100, 100) == Box(0, 0, 15, 15)
    assert Box(0, 0, 200, 200).fitted_inside(100, 50) == Box(50, 0, 100, 50)
    with pytest.raises(ValueError):
        Box(0, 0, 0, 10)
    with pytest.raises(ValueError):
        box.clipped_to(5, 5)


def test_box_to_int_keeps_square_size():
    ibox = Box(10.5, 3.4, 110.7, 103.6).to_int()  # 100.2 x 100.2, edges rounding different ways
    assert ibox == IntBox(11, 3, 111, 103)
    assert ibox.width == ibox.height == 100


def test_square_boxes_for_non_face_content():
    assert square_pad_box(200, 100) == Box(0, -50, 200, 150)
    assert center_square_box(200, 100) == Box(50, 0, 150, 100)
    assert center_square_box(100, 300) == Box(0, 100, 100, 200)


# ----------------------------------------------------------------------------------------------- resize and crop


def test_crop_inside_image_is_exact():
    image = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    out = crop_and_resize(image, Box(10, 5, 42, 37), 32)
    np.testing.assert_array_equal(out, image[5:37, 10:42])


@pytest.mark.parametrize("border", ["replicate", "constant", "reflect"])
def test_padding_matches_opencv(border):
    image = np.random.default_rng(1).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    mode = {"replicate": cv2.BORDER_REPLICATE, "constant": cv2.BORDER_CONSTANT, "reflect": cv2.BORDER_REFLECT_101}
    expected = cv2.copyMakeBorder(image, 2, 3, 3, 4, mode[border], value=0)
    np.testing.assert_array_equal(extract_region(image, IntBox(-3, -2, 13, 10), border), expected)


def test_crop_entirely_outside_image():
    image = np.full((10, 10, 3), 7, dtype=np.uint8)
    assert (extract_region(image, IntBox(20, 20, 25, 23), "replicate") == 7).all()
    assert (extract_region(image, IntBox(20, 20, 25, 23), "constant") == 0).all()


def test_crop_sizes_and_padding():
    image = np.full((100, 200, 3), 200, dtype=np.uint8)
    padded = crop_and_resize(image, square_pad_box(200, 100), 64, border="constant")
    assert padded.shape == (64, 64, 3)
    assert (padded[:14] == 0).all() and (padded[-14:] == 0).all() and (padded[20:44] == 200).all()
    assert crop_and_resize(image, center_square_box(200, 100), 256).shape == (256, 256, 3)
    assert crop_and_resize(image, Box(0, 0, 50, 25), (40, 20)).shape == (20, 40, 3)


def test_resize_is_antialiased():
    # A one-pixel checkerboard shrunk 4x must become flat grey (area averaging), not aliased stripes.
    checker = ((np.indices((64, 64)).sum(axis=0) % 2) * 255).astype(np.uint8)
    small = resize_image(np.dstack([checker] * 3), (16, 16))
    assert np.abs(small.astype(int) - 128).max() <= 1
    big = resize_image(small, (40, 40))
    assert big.shape == (40, 40, 3)


# ----------------------------------------------------------------------------------------------- paste-back


def test_paste_back_keeps_resolution_and_outside_pixels():
    rng = np.random.default_rng(2)
    full = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    crop = np.full((32, 32, 3), 255, dtype=np.uint8)
    for box in (Box(40, 30, 104, 94), Box(-20, 80, 44, 144)):  # inside, and past the bottom-left corner
        out = paste_back(full, crop, box, feather=0.1)
        assert out.shape == full.shape and out.dtype == np.uint8
        ibox = box.to_int()
        outside = np.ones(full.shape[:2], dtype=bool)
        outside[max(ibox.y0, 0) : ibox.y1, max(ibox.x0, 0) : ibox.x1] = False
        np.testing.assert_array_equal(out[outside], full[outside])
        cy, cx = (max(ibox.y0, 0) + min(ibox.y1, 120)) // 2, (max(ibox.x0, 0) + min(ibox.x1, 160)) // 2
        assert (out[cy, cx] == 255).all()
    # Box past the image edge: no fade on that side, the crop reaches the image border.
    assert (paste_back(full, crop, Box(-20, 80, 44, 144))[119, 0] == 255).all()


def test_paste_back_feathers_and_hard_paste():
    full = np.zeros((100, 100, 3), dtype=np.uint8)
    crop = np.full((50, 50, 3), 200, dtype=np.uint8)
    soft = paste_back(full, crop, Box(25, 25, 75, 75), feather=0.2)
    edge, inner = soft[50, 25:35, 0].astype(int), soft[50, 40:60, 0]
    assert (np.diff(edge) >= 0).all() and edge[0] < 50 and (inner == 200).all()
    hard = paste_back(full, crop, Box(25, 25, 75, 75), feather=0.0)
    assert (hard[25:75, 25:75] == 200).all()
    mask = feather_mask(50, 30, 0.1)
    assert mask.shape == (30, 50) and mask.max() == pytest.approx(1.0) and mask.min() > 0


# ----------------------------------------------------------------------------------------------- tracks


def _synthetic_track() -> FaceTrack:
    boxes: list[Box | None] = [Box(100 + 2 * i, 50, 160 + 2 * i, 110) for i in range(20)]
    for i in (3, 4, 5, 12):
        boxes[i] = None
    return FaceTrack.from_boxes(boxes, (640, 480))


def test_track_interpolates_missing_frames():
    track = _synthetic_track()
    np.testing.assert_array_equal(track.missing_frames, [3, 4, 5, 12])
    assert (len(track), track.num_detected) == (20, 16)
    filled = track.filled_boxes()
    np.testing.assert_allclose(filled[:, 0], 100 + 2 * np.arange(20))  # linear motion is restored exactly
    edges = FaceTrack.from_boxes([None, Box(0, 0, 10, 10), None], (64, 64)).filled_boxes()
    np.testing.assert_allclose(edges, [[0, 0, 10, 10]] * 3)
    with pytest.raises(NoFaceError):
        FaceTrack.from_boxes([None, None], (64, 64)).filled_boxes()


def test_stable_box_covers_all_boxes():
    track = _synthetic_track()
    stable = track.stable_box(keep_inside=False)
    assert stable.width == pytest.approx(stable.height)
    found = track.boxes[track.detected]
    assert all(stable.contains(Box.from_array(b)) for b in found)
    assert all(stable.contains(face_crop_box(Box.from_array(b), 640, 480, keep_inside=False)) for b in found)
    assert track.stable_box().contains(track.stable_box(percentile=90))


def test_smoothed_boxes_remove_jitter():
    rng = np.random.default_rng(3)
    n = 60
    centre = np.stack([200 + np.linspace(0, 30, n), np.full(n, 150.0)], axis=1)
    noisy = centre + rng.normal(0, 3, (n, 2))
    side = 80 * np.exp(rng.normal(0, 0.03, n))
    track = FaceTrack.from_boxes([Box.from_center(*c, s, s) for c, s in zip(noisy, side, strict=True)], (640, 480))
    faces = track.smoothed_boxes(sigma=3.0, crop=False)
    assert len(faces) == n
    smooth_centre = np.array([b.center for b in faces])
    assert np.abs(np.diff(smooth_centre[:, 1])).mean() < 0.25 * np.abs(np.diff(noisy[:, 1])).mean()
    assert np.abs(smooth_centre - centre)[5:-5].mean() < np.abs(noisy - centre)[5:-5].mean()
    crops = track.smoothed_boxes(sigma=3.0)
    assert all(c.width == pytest.approx(c.height) and c.contains(f) for c, f in zip(crops, faces, strict=True))


def test_split_track_cuts_long_gaps():
    boxes: list[Box | None] = [Box(0, 0, 10, 10)] * 30
    for i in list(range(8, 11)) + list(range(18, 26)):
        boxes[i] = None
    track = FaceTrack.from_boxes(boxes, (64, 64))
    parts = split_track(track, max_gap=5)
    assert [(p.start, p.num_frames) for p in parts] == [(0, 18), (26, 4)]
    assert [p.start for p in split_track(track, max_gap=5, min_frames=10)] == [0]
    assert split_track(FaceTrack.from_boxes([None], (8, 8))) == []


def test_one_euro_filter_smooths_live_boxes():
    rng = np.random.default_rng(6)
    still = [Box.from_center(*(rng.normal(0, 2, 2) + 300), 100, 100) for _ in range(60)]
    flt = OneEuroBoxFilter(fps=30)
    out = np.array([flt.update(b).center for b in still])
    raw = np.array([b.center for b in still])
    assert np.abs(np.diff(out[10:], axis=0)).mean() < 0.3 * np.abs(np.diff(raw[10:], axis=0)).mean()
    flt.reset()
    moving = [Box.from_center(100 + 10 * i, 200, 100, 100) for i in range(60)]
    last = [flt.update(b) for b in moving][-1]
    assert abs(last.center[0] - moving[-1].center[0]) < 10 and last.width == pytest.approx(100)


# ----------------------------------------------------------------------------------------------- best frame


def test_best_matching_frame_picks_identical_frame():
    rng = np.random.default_rng(4)
    source = rng.uniform(0, 100, (68, 2))
    driving = [source + rng.normal(0, 5, source.shape) for _ in range(6)]
    driving[4] = source * 1.7 + 30.0  # same shape, other position and size: features are identical
    driving[1] = None
    assert best_matching_frame(source, driving) == 4
    np.testing.assert_allclose(face_alignment_features(driving[4]), face_alignment_features(source), atol=1e-12)
    assert best_matching_frame(source, [None, None]) == 0


# ----------------------------------------------------------------------------------------------- MediaPipe


def test_import_does_not_load_optional_dependencies():
    code = "import sys, enliven.preprocess; print(sorted({'cv2', 'mediapipe', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_mediapipe_starts_without_the_solutions_enliven_does_not_use():
    pytest.importorskip("mediapipe")
    code = (
        "import sys\n"
        "from enliven.preprocess._deps import import_mediapipe_solutions\n"
        "solutions = import_mediapipe_solutions()\n"
        "print(solutions.face_mesh.FaceMesh.__name__, 'matplotlib' in sys.modules)\n"
        "import mediapipe as mp\n"  # the package a plain import makes, when asked
        "print(mp.__version__ != '', mp.solutions.drawing_utils.__name__, callable(mp.Image))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["FaceMesh", "False", "True", "mediapipe.python.solutions.drawing_utils", "True"]


def test_missing_opencv_raises_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(MissingDependencyError, match="pip install opencv-python-headless"):
        resize_image(np.zeros((4, 4, 3), dtype=np.uint8), (2, 2))


def test_missing_mediapipe_raises_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe.python", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'enliven\[face\]'") as info:
        FaceDetector()
    assert isinstance(info.value, EnlivenError)


@pytest.mark.parametrize(
    "relative_path",
    ["faces/scikit-image/images/astronaut.png", "faces/deepface/images/img2.jpg", "faces/LivePortrait/images/s9.jpg"],
)
def test_detects_faces_in_real_photos(detector, data_dir, relative_path):
    image = _read_rgb(data_dir / relative_path)
    h, w = image.shape[:2]
    face = detector.detect_one(image)
    assert 0.05 * min(w, h) < face.box.width < 0.9 * max(w, h) and 0.5 < face.score <= 1
    assert face.keypoints.shape == (6, 2)
    # Eyes above the mouth, all keypoints roughly within the box.
    assert face.keypoints[:2, 1].max() < face.keypoints[3, 1]
    assert face.box.scaled(1.3).contains(Box(*face.keypoints.min(0), *face.keypoints.max(0)))
    crop = face_crop_box(face, w, h)
    assert crop.width == pytest.approx(crop.height) and crop.contains(face.box)
    assert crop_and_resize(image, crop, 64).shape == (64, 64, 3)


def test_detects_small_face_in_1080p_frame(detector, data_dir):
    photo = _read_rgb(data_dir / "faces/deepface/images/img2.jpg")  # face ~440 px wide
    small = resize_image(photo, (photo.shape[1] // 6, photo.shape[0] // 6))
    frame = np.full((1080, 1920, 3), 90, dtype=np.uint8)
    frame[600 : 600 + small.shape[0], 1300 : 1300 + small.shape[1]] = small
    faces = detector.detect(frame)
    assert faces and 1300 < faces[0].box.center[0] < 1300 + small.shape[1] and faces[0].box.width < 150


@pytest.mark.parametrize(
    "relative_path",
    [None, "animals_cartoons/scikit-image/images/chelsea.png", "animals_cartoons/MGif/images/fomm_teaser_source0.png"],
)
def test_no_face_in_non_face_images(detector, data_dir, relative_path):
    if relative_path is None:
        image = np.random.default_rng(5).integers(0, 256, (480, 640, 3), dtype=np.uint8)
        assert detector.detect(np.full((512, 512, 3), 128, dtype=np.uint8)) == []
    else:
        image = _read_rgb(data_dir / relative_path)
    assert detector.detect(image) == []
    with pytest.raises(NoFaceError):
        detector.detect_one(image)


def test_track_real_clip_and_landmarks(detector, landmarker, data_dir):
    frames = _first_frames(data_dir / "faces/LivePortrait/videos/s18.mp4", 4)  # 1280 x 720
    blank = np.zeros_like(frames[0])
    track = track_faces(iter([frames[0], frames[1], blank, frames[3]]), detector)
    assert track.image_size == (1280, 720) and track.missing_frames.tolist() == [2]
    box = track.stable_box()
    assert all(box.contains(Box.from_array(b)) for b in track.filled_boxes())
    crop = crop_and_resize(frames[0], box, 128)
    source = landmarker.landmarks(crop)
    assert source is not None and source.shape == (468, 2)
    assert landmarker.landmarks(blank[:256, :256]) is None
    full = landmarker.landmarks(frames[3], box)  # mapped back to full-frame pixels
    assert full is not None and box.contains(Box(*full.min(0), *full.max(0)))
    driving = [None, landmarker.landmarks(crop_and_resize(frames[3], box, 128)), source + 0.0]
    assert best_matching_frame(source, driving) == 2
