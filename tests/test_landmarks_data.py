"""Face-mesh landmark sidecars: writing (``enliven data landmarks``), resuming, and their delivery for training."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from enliven.cli import main as cli_main
from enliven.data import PairDataset, PairDatasetConfig, collate_pairs, find_clips
from enliven.data.augment import AugmentParams
from enliven.data.config import AugmentationConfig
from enliven.data.layout import clip_kind
from enliven.data.pairs import augment_points, landmarks_path
from enliven.errors import InputError
from enliven.face_mesh import LANDMARKS_SUFFIX, NUM_FACE_MESH_POINTS, normalized_to_pixels
from enliven.types import LandmarkKind

REAL_CLIP = "faces/PC-AVS/videos/Input_00010.mp4"
REAL_FRAMES = 4


@pytest.fixture(scope="module")
def face_dataset(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset of one real face clip (frames 0-3 of a 224 px PC-AVS crop) and one clip with a blank frame."""
    video = data_dir / REAL_CLIP
    if not video.exists():
        pytest.skip("the shared face clip is not here")
    capture = cv2.VideoCapture(str(video))
    frames = [capture.read()[1] for _ in range(REAL_FRAMES)]
    capture.release()
    root = tmp_path_factory.mktemp("faces")
    for name, clip_frames in (("speaker", frames), ("blank", [frames[0], np.full_like(frames[0], 128), frames[1]])):
        folder = root / "train" / name
        folder.mkdir(parents=True)
        for index, frame in enumerate(clip_frames):
            cv2.imwrite(str(folder / f"{index:06d}.png"), frame)
    return root


def _sidecar(root: Path, name: str) -> Path:
    return root / "train" / f"{name}{LANDMARKS_SUFFIX}"


def test_sidecars_are_written_resumed_and_not_taken_for_clips(face_dataset: Path) -> None:
    from enliven.prepare.landmarks import add_landmarks

    summary = add_landmarks(face_dataset, progress=False)
    assert (summary.clips, summary.computed, summary.skipped, summary.frames) == (2, 2, 0, REAL_FRAMES + 3)
    assert summary.missing == 1 and not summary.failed, summary
    speaker = np.load(_sidecar(face_dataset, "speaker"))
    assert speaker.shape == (REAL_FRAMES, NUM_FACE_MESH_POINTS, 2) and speaker.dtype == np.float32
    assert np.isfinite(speaker).all() and 0 < speaker.min() and speaker.max() < 224  # inside the 224 px crop
    blank = np.load(_sidecar(face_dataset, "blank"))
    assert np.isnan(blank[1]).all() and np.isfinite(blank[[0, 2]]).all()
    assert sorted(p.name for p in (face_dataset / "train").iterdir() if p.name.startswith(".")) == []  # no temp

    assert clip_kind(_sidecar(face_dataset, "speaker")) is None
    assert [c.name for c in find_clips(face_dataset, "train")] == ["blank", "speaker"]

    mtime = _sidecar(face_dataset, "speaker").stat().st_mtime_ns
    np.save(_sidecar(face_dataset, "blank"), blank[:2])  # wrong frame count: recomputed
    again = add_landmarks(face_dataset, splits=["train"], progress=False)
    assert (again.computed, again.skipped) == (1, 1)
    assert _sidecar(face_dataset, "speaker").stat().st_mtime_ns == mtime
    assert np.load(_sidecar(face_dataset, "blank")).shape[0] == 3


def test_cli_exit_codes(face_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["data", "landmarks", str(face_dataset), "--no-progress"]) == 0
    assert "2 clips (0 computed, 2 already done)" in capsys.readouterr().out
    assert cli_main(["data", "landmarks", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("enliven: error:") and "does not exist" in err and err.count("\n") == 0
    assert cli_main(["data", "landmarks", str(face_dataset), "--splits", "val"]) == 2


SIDE = 96  # stored frames
OUT = 64  # delivered frames
DOT = (30.5, 41.5)  # the dot's centre in stored pixels: it covers pixels 28..32 x 39..43


def _dot_frame(index: int) -> np.ndarray:
    image = np.zeros((SIDE, SIDE, 3), np.uint8)
    x, y = int(DOT[0] + 2 * index), int(DOT[1] + index)
    image[y - 2 : y + 3, x - 2 : x + 3] = 255
    return image


def _landmarks(count: int, face: list[bool]) -> np.ndarray:
    """Point 0 on the dot of each frame, the rest of the mesh anywhere; NaN rows where ``face`` is false."""
    points = np.random.default_rng(0).uniform(0, SIDE, (count, NUM_FACE_MESH_POINTS, 2)).astype(np.float32)
    for index in range(count):
        points[index, 0] = (DOT[0] + 2 * index, DOT[1] + index)
    points[~np.array(face)] = np.nan
    return points


def _dot_dataset(root: Path, faces: dict[str, list[bool]], sidecars: bool = True) -> Path:
    clips = {}
    for name, face in faces.items():
        folder = root / "train" / name
        folder.mkdir(parents=True)
        for index in range(len(face)):
            cv2.imwrite(str(folder / f"{index:06d}.png"), _dot_frame(index))
        if sidecars:
            np.save(root / "train" / f"{name}{LANDMARKS_SUFFIX}", _landmarks(len(face), face))
        clips[name] = {"split": "train", "identity": name, "num_frames": len(face), "path": f"train/{name}"}
    (root / "metadata.json").write_text(json.dumps({"version": 1, "clips": clips}))
    return root


def _strong_augmentation() -> AugmentationConfig:
    return AugmentationConfig.from_dict(
        {
            "flip": {"horizontal": 0.5, "time": 0.5},
            "rotation": {"degrees": 30, "p": 1.0},
            "translation": {"fraction": 0.1, "p": 1.0},
            "scale": {"range": [0.8, 1.25], "p": 1.0},
            "crop": {"range": [0.7, 1.0], "p": 0.7},
            "border": "constant",
        }
    )


def _brightest(image: torch.Tensor) -> np.ndarray:
    """Intensity-weighted centre of the dot in a ``3 x H x W`` [0, 1] frame, in pixels (pixel i covers [i, i+1))."""
    grey = image.mean(0).numpy().astype(np.float64)
    grey = np.where(grey > 0.25, grey, 0.0)
    ys, xs = np.mgrid[0 : grey.shape[0], 0 : grey.shape[1]]
    return np.array([(xs * grey).sum(), (ys * grey).sum()]) / grey.sum() + 0.5


def test_augmented_landmarks_stay_on_the_dot(tmp_path: Path) -> None:
    root = _dot_dataset(tmp_path, {"dot": [True] * 6})
    config = PairDatasetConfig(root=root, frame_size=(OUT, OUT), augmentation=_strong_augmentation(), seed=3,
                               landmarks=True)  # fmt: skip
    dataset = PairDataset(config)
    flips, dots = 0, []
    for epoch in range(12):
        dataset.set_epoch(epoch)
        item = dataset[0]
        for frame, points in ((item.source, item.source_landmarks), (item.driving, item.driving_landmarks)):
            assert points.shape == (NUM_FACE_MESH_POINTS, 2) and points.dtype == torch.float32
            dot = normalized_to_pixels(points[0].numpy(), OUT, OUT)
            assert np.abs(dot - _brightest(frame)).max() < 1.0, (epoch, dot, _brightest(frame))
            dots.append(dot)
        flips += int(item.source_index > item.driving_index)
    assert 0 < flips < 12, "time flips happened and were followed"
    assert np.ptp(np.array(dots), axis=0).min() > 10, "the augmentation moved the dot around"


def test_augment_points_matches_the_mirror_and_resize() -> None:
    points = np.array([[0.0, 0.0], [SIDE, SIDE], [10.0, 70.0]])
    moved = augment_points(points, AugmentParams(hflip=True), (SIDE, SIDE), (OUT, OUT))
    np.testing.assert_allclose(moved, [[OUT, 0.0], [0.0, OUT], [OUT - 10 * OUT / SIDE, 70 * OUT / SIDE]], atol=1e-9)


def test_pairs_are_drawn_among_frames_with_a_face(tmp_path: Path) -> None:
    face = [False, True, False, False, True, False]
    root = _dot_dataset(tmp_path, {"a": face, "b": [True, False, False, False]})
    dataset = PairDataset(PairDatasetConfig(root=root, frame_size=(OUT, OUT), seed=0, landmarks=True))
    items = [dataset[i] for i in range(len(dataset))]
    for item in items:
        assert item.clip == "a" and {item.source_index, item.driving_index} == {1, 4}  # "b" has one face: replaced
    batch = collate_pairs(items)
    assert batch.source_landmarks.shape == (2, NUM_FACE_MESH_POINTS, 2)
    assert batch.to("cpu").driving_landmarks is not None
    assert torch.isfinite(batch.source_landmarks).all()


def test_landmarks_off_changes_nothing_and_missing_sidecars_are_reported(tmp_path: Path) -> None:
    root = _dot_dataset(tmp_path / "with", {"a": [True] * 4})
    item = PairDataset(PairDatasetConfig(root=root, frame_size=(OUT, OUT), seed=0))[0]
    assert item.source_landmarks is None and item.driving_landmarks is None
    batch = collate_pairs([item])
    assert batch.source_landmarks is None and batch.to("cpu").driving_landmarks is None

    bare = _dot_dataset(tmp_path / "bare", {"a": [True] * 4}, sidecars=False)
    assert PairDatasetConfig.from_dict({"root": str(bare), "landmarks": True}).landmarks is LandmarkKind.FACE_MESH
    with pytest.raises(InputError, match="enliven data landmarks") as err:
        PairDataset(PairDatasetConfig(root=bare, frame_size=(OUT, OUT), landmarks=True))
    assert str(err.value).count(". ") == 0
    assert landmarks_path(find_clips(root)[0]) == root / "train" / f"a{LANDMARKS_SUFFIX}"


def test_prepare_moves_sidecars_with_their_clips(tmp_path: Path) -> None:
    from enliven.prepare.assemble import _place

    for split in ("train", "test"):
        (tmp_path / split / "clip-00").mkdir(parents=True)
        np.save(tmp_path / split / f"clip-00{LANDMARKS_SUFFIX}", np.zeros((2, NUM_FACE_MESH_POINTS, 2), np.float32))
    _place(tmp_path, "clip-00", "val")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("*/*")) == [
        "val/clip-00",
        f"val/clip-00{LANDMARKS_SUFFIX}",
    ]


def test_prepare_without_landmarks(data_dir: Path, tmp_path: Path) -> None:
    from enliven.cli import build_parser
    from enliven.prepare import prepare_dataset

    assert build_parser().parse_args(["prepare", "in", "out", "--no-landmarks"]).landmarks is False
    assert build_parser().parse_args(["prepare", "in", "out"]).landmarks is True
    video = data_dir / REAL_CLIP
    if not video.exists():
        pytest.skip("the shared face clip is not here")
    out = tmp_path / "out"
    summary = prepare_dataset([video], out, kind="faces", size=32, max_frames=10, min_frames=8, landmarks=False,
                              progress=False)  # fmt: skip
    assert summary.total.clips == 1 and summary.landmarks is None
    assert not list(out.glob(f"*/*{LANDMARKS_SUFFIX}"))
