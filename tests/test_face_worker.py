"""The face worker (a second process without torch) gives what the same code gives in-process, reports errors with
the same sentence, and never outlives its caller. Runs on the bundled photo and clip (no ../shared needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from enliven.errors import NoFaceError
from enliven.inference import AnimateOptions, FaceCropper, FaceWorker, animate_file
from enliven.inference.driving import DrivingClip, box_at
from enliven.inference.landmarks import FaceMeshTracker
from enliven.io import read_image
from enliven.io.ffmpeg import run_ffmpeg

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "assets" / "source-astronaut.jpg"
CLIP = ROOT / "assets" / "driving-grid-bbaf2n.mpg"


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled clip's first 12 frames, with its audio."""
    path = tmp_path_factory.mktemp("clip") / "short.mp4"
    run_ffmpeg("-i", str(CLIP), "-frames:v", "12", "-c:v", "libx264", "-crf", "12", "-c:a", "aac", str(path))
    return path


def test_the_worker_imports_no_torch() -> None:
    code = (
        "import sys, enliven.inference.face_worker, enliven.inference.cropper, enliven.inference.driving, "
        "enliven.inference.landmarks; print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_worker_boxes_and_landmarks_equal_the_in_process_ones(short_clip: Path) -> None:
    with FaceWorker.start(PHOTO, short_clip) as worker:
        plan = worker.plan()
        source_points, stream = worker.landmarks(256)
        points = np.stack(list(stream))
    photo = read_image(PHOTO)
    clip = DrivingClip(short_clip, 1024)
    tracker = FaceMeshTracker()
    with FaceCropper(256) as cropper:
        assert plan.source_box == cropper.source_box(photo, "the photo")
        boxes = cropper.clip_boxes(clip.first_pass())
        assert plan.boxes == boxes
        np.testing.assert_array_equal(source_points, tracker.source(cropper.cut(photo, plan.source_box)))
        frames = [cropper.cut(frame, box_at(boxes, i)) for i, frame in enumerate(clip.frames())]
    expected = np.stack([tracker.driving(frame[None])[0] for frame in frames])
    tracker.close()
    assert points.shape == (12, 468, 2) and points.dtype == np.float32
    np.testing.assert_array_equal(points, expected)


def test_animate_file_with_the_worker_writes_the_same_frames(tmp_path: Path, short_clip: Path) -> None:
    options = AnimateOptions(paste_back=True)
    worker = FaceWorker.start(PHOTO, short_clip)
    with_worker = animate_file(PHOTO, short_clip, tmp_path / "worker/", options, face_worker=worker)
    here = animate_file(PHOTO, short_clip, tmp_path / "here/", options)
    assert with_worker.frames == here.frames == 12 and with_worker.source_box == here.source_box
    for a, b in zip(sorted((tmp_path / "worker").iterdir()), sorted((tmp_path / "here").iterdir()), strict=True):
        np.testing.assert_array_equal(read_image(a), read_image(b))


def test_a_face_missing_in_the_worker_is_the_same_sentence(tmp_path: Path, short_clip: Path) -> None:
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((128, 128, 3), 200, np.uint8)).save(blank)
    with pytest.raises(NoFaceError) as here:
        animate_file(blank, short_clip, tmp_path / "a.mp4", AnimateOptions(model="enliven-lite"))
    with pytest.raises(NoFaceError) as there:
        animate_file(blank, short_clip, tmp_path / "b.mp4", AnimateOptions(model="enliven-lite", face_worker=True))
    assert str(here.value) == str(there.value) and "no face was found in the source" in str(there.value)
    assert not list(tmp_path.glob("*.mp4"))


def test_a_worker_closed_early_ends_at_once(short_clip: Path) -> None:
    worker = FaceWorker.start(PHOTO, short_clip)
    _, stream = worker.landmarks(128)
    next(stream)
    worker.close()
    assert worker._process.poll() is not None
    worker.close()  # twice is harmless


def test_a_model_with_its_own_detector_takes_the_boxes_only(tmp_path: Path, short_clip: Path) -> None:
    import torch

    from conftest import tiny_fomm_document
    from enliven.config import config_from_dict
    from enliven.models.factory import build_model

    torch.manual_seed(0)
    model = build_model(config_from_dict(tiny_fomm_document()))
    worker = FaceWorker.start(PHOTO, short_clip)
    with_worker = animate_file(PHOTO, short_clip, tmp_path / "worker/", model=model, face_worker=worker)
    assert worker._process.poll() is not None  # closed once the boxes were taken
    here = animate_file(PHOTO, short_clip, tmp_path / "here/", model=model)
    assert with_worker.frames == here.frames == 12
    for a, b in zip(sorted((tmp_path / "worker").iterdir()), sorted((tmp_path / "here").iterdir()), strict=True):
        np.testing.assert_array_equal(read_image(a), read_image(b))


def test_the_worker_serves_files_with_cropping_and_no_best_frame_search() -> None:
    from enliven.inference.face_worker import worker_applies

    assert worker_applies("a.jpg", Path("b.mp4"), crop=True, find_best_frame=False)
    assert not worker_applies(np.zeros((8, 8, 3), np.uint8), "b.mp4", crop=True, find_best_frame=False)
    assert not worker_applies("a.jpg", "b.mp4", crop=False, find_best_frame=False)
    assert not worker_applies("a.jpg", "b.mp4", crop=True, find_best_frame=True)


def test_the_worker_answers_the_face_question_first(tmp_path: Path, short_clip: Path) -> None:
    """``--model auto`` asks the worker whether the photo has a usable face before the clip's faces are found."""
    with FaceWorker.start(PHOTO, short_clip) as worker:
        assert worker.source_has_face() and 0.15 < worker.source_face_share < 0.5
        assert worker.plan().source_box is not None
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((128, 128, 3), 200, np.uint8)).save(blank)
    with FaceWorker.start(blank, short_clip) as worker:
        assert not worker.source_has_face() and worker.source_face_share is None
        with pytest.raises(NoFaceError, match="no face was found in the source"):
            worker.plan()


def test_each_driving_frame_gets_the_face_mesh_found_on_its_own(short_clip: Path) -> None:
    """Driving frames are not tracked from the frames before them (MediaPipe's video mode strays from the face):
    a frame's landmarks are those of the frame alone, whatever came first."""
    with FaceCropper(256) as cropper:
        clip = DrivingClip(short_clip, 1024)
        boxes = cropper.clip_boxes(clip.first_pass())
        frames = np.stack([cropper.cut(frame, box_at(boxes, i)) for i, frame in enumerate(clip.frames())])
    tracker = FaceMeshTracker()
    try:
        in_order = tracker.driving(frames)
        backwards = tracker.driving(frames[::-1])[::-1]
        alone = np.concatenate([tracker.still(frame) for frame in frames])
    finally:
        tracker.close()
    np.testing.assert_array_equal(in_order, alone)
    np.testing.assert_array_equal(backwards, alone)
