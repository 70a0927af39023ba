"""Training data: FOMM-layout readers, the pair dataset, clip-consistent augmentation, ``enliven data preview``."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch.utils.data import DataLoader

from enliven.cli import main as cli_main
from enliven.data import (
    AugmentationConfig,
    Augmenter,
    AugmentParams,
    ClipKind,
    ClipReader,
    PairBatch,
    PairDataset,
    PairDatasetConfig,
    collate_pairs,
    find_clips,
    load_augmentation,
    worker_init_fn,
)
from enliven.data.augment import ColourOp, colour_matrix
from enliven.data.pairs import choose_frames
from enliven.errors import ConfigError, InputError

SIDE = 40  # stored frame side; the loader resizes to FRAME
FRAME = (32, 32)


def grey_frame(index: int, side: int = SIDE) -> np.ndarray:
    """A frame whose grey level encodes its index (survives video compression within a few levels)."""
    return np.full((side, side, 3), (20 + 30 * index) % 256, dtype=np.uint8)


def write_folder(path: Path, count: int) -> None:
    path.mkdir(parents=True)
    for i in range(count):
        cv2.imwrite(str(path / f"{i:06d}.png"), grey_frame(i))


def write_video(path: Path, count: int, side: int = SIDE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (side, side))
    for i in range(count):
        writer.write(grey_frame(i, side))
    writer.release()


def write_gif(path: Path, count: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [Image.fromarray(grey_frame(i)) for i in range(count)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=40, loop=0)


def write_strip(path: Path, count: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate([grey_frame(i) for i in range(count)], axis=1))


def make_dataset(root: Path) -> Path:
    """One clip of every layout in train/ (identities by FOMM's '#'), one clip in test/."""
    write_folder(root / "train" / "alice#one.mp4", 6)  # a frame folder named like VoxCeleb's
    write_video(root / "train" / "alice#two.mp4", 6)
    write_gif(root / "train" / "bob#walk.gif", 6)
    write_strip(root / "train" / "carol.png", 6)
    write_folder(root / "test" / "dave#x", 3)
    return root


@pytest.fixture()
def dataset_root(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "ds")


def test_find_clips_detects_every_layout_and_fomm_identities(dataset_root: Path) -> None:
    clips = {c.name: c for c in find_clips(dataset_root, "train")}
    assert {n: c.kind for n, c in clips.items()} == {
        "alice#one.mp4": ClipKind.FRAMES,
        "alice#two.mp4": ClipKind.VIDEO,
        "bob#walk.gif": ClipKind.GIF,
        "carol.png": ClipKind.STRIP,
    }
    assert {c.identity for c in clips.values()} == {"alice", "bob", "carol"}
    assert [c.name for c in find_clips(dataset_root, "test")] == ["dave#x"]
    with pytest.raises(InputError, match="no 'val' split"):
        find_clips(dataset_root, "val")


@pytest.mark.parametrize("name", ["alice#one.mp4", "alice#two.mp4", "bob#walk.gif", "carol.png"])
def test_reader_returns_the_requested_frames(dataset_root: Path, name: str) -> None:
    clip = next(c for c in find_clips(dataset_root) if c.name == name)
    reader = ClipReader()
    assert reader.num_frames(clip) == 6
    frames = reader.read(clip, [4, 1, 4])
    assert all(f.shape == (SIDE, SIDE, 3) and f.dtype == np.uint8 for f in frames)
    levels = [float(f.mean()) for f in frames]
    assert levels == pytest.approx([20 + 30 * 4, 20 + 30, 20 + 30 * 4], abs=8)


def test_odd_frames_are_converted_to_rgb_uint8(tmp_path: Path) -> None:
    clip_dir = tmp_path / "train" / "zoë#ünïcode"
    clip_dir.mkdir(parents=True)
    cv2.imwrite(str(clip_dir / "0.png"), np.full((SIDE, SIDE), 100, np.uint8))  # grayscale
    cv2.imwrite(str(clip_dir / "1.png"), np.full((SIDE, SIDE, 4), 100, np.uint8))  # RGBA
    cv2.imwrite(str(clip_dir / "2.png"), np.full((SIDE, SIDE, 3), 100 * 257, np.uint16))  # 16-bit
    Image.fromarray(np.full((SIDE, 2 * SIDE, 3), 100, np.uint8)).save(clip_dir / "3.jpg")  # another size
    (clip,) = find_clips(tmp_path)
    assert clip.identity == "zoë"
    frames = ClipReader().read(clip, range(4))
    assert [f.shape[2] for f in frames] == [3] * 4 and all(f.dtype == np.uint8 for f in frames)
    assert [int(f.mean() + 0.5) for f in frames] == [100] * 4
    pair = PairDataset(PairDatasetConfig(root=tmp_path, frame_size=FRAME, seed=0))[0]
    assert pair.source.shape == pair.driving.shape == (3, *FRAME)


def test_video_seeking_matches_sequential_decoding(tmp_path: Path) -> None:
    write_video(tmp_path / "train" / "long.mp4", 90, side=16)
    (clip,) = find_clips(tmp_path)
    reader = ClipReader()
    everything = reader.read_all(clip)
    picked = reader.read(clip, [85, 3, 60])
    for frame, index in zip(picked, [85, 3, 60], strict=True):
        np.testing.assert_array_equal(frame, everything[index])


def test_metadata_identities_override_the_clip_names(dataset_root: Path) -> None:
    meta = {
        "version": 1,
        "size": SIDE,
        "clips": {
            "alice#two": {"split": "train", "identity": "speaker7", "num_frames": 6, "path": "train/alice#two.mp4"},
            "carol": {"split": "train", "identity": "speaker7", "path": "train/carol.png"},
        },
    }
    (dataset_root / "metadata.json").write_text(json.dumps(meta))
    identities = {c.name: c.identity for c in find_clips(dataset_root)}
    assert identities == {
        "alice#one.mp4": "alice",
        "alice#two.mp4": "speaker7",
        "bob#walk.gif": "bob",
        "carol.png": "speaker7",
    }
    (dataset_root / "metadata.json").write_text("{not json")
    with pytest.raises(InputError, match="metadata.json"):
        find_clips(dataset_root)


def test_without_split_folders_identities_stay_on_one_side(tmp_path: Path) -> None:
    for person in range(10):
        for take in range(2):
            write_folder(tmp_path / f"p{person}#{take}", 2)
    train, test = find_clips(tmp_path, "train"), find_clips(tmp_path, "test")
    assert len(train) + len(test) == 20 and len(test) == 4
    assert not {c.identity for c in train} & {c.identity for c in test}
    assert [c.name for c in find_clips(tmp_path, "test")] == [c.name for c in test]  # deterministic


def test_a_dataset_with_one_split_folder_keeps_its_layout(tmp_path: Path) -> None:
    # enliven prepare writes no folder for an empty split: a val-only dataset is still split by its folders
    for person in range(3):
        write_folder(tmp_path / "val" / f"p{person}#0", 2)
    assert [c.name for c in find_clips(tmp_path, "val")] == ["p0#0", "p1#0", "p2#0"]
    with pytest.raises(InputError, match="has no 'train' split \\(it has val\\)"):
        find_clips(tmp_path, "train")


def test_pairs_from_every_layout_are_resized_typed_and_distinct(dataset_root: Path) -> None:
    dataset = PairDataset(PairDatasetConfig(root=dataset_root, frame_size=FRAME, seed=1, num_repeats=3))
    assert len(dataset) == 4 * 3
    for i in range(len(dataset)):
        pair = dataset[i]
        assert pair.source.shape == (3, *FRAME) and pair.source.dtype == torch.float32
        assert pair.source_index < pair.driving_index  # two distinct frames, source first (no time flip here)
        expected = (20 + 30 * np.array([pair.source_index, pair.driving_index])) / 255
        got = [float(pair.source.mean()), float(pair.driving.mean())]
        assert got == pytest.approx(expected, abs=0.03)
    batch = collate_pairs([dataset[0], dataset[1]])
    assert isinstance(batch, PairBatch) and batch.source.shape == (2, 3, *FRAME) and len(batch.clips) == 2


def test_id_sampling_is_uniform_over_identities(tmp_path: Path) -> None:
    for take in range(5):
        write_folder(tmp_path / "train" / f"busy#{take}", 3)
    write_folder(tmp_path / "train" / "rare#0", 3)
    base = PairDatasetConfig(root=tmp_path, frame_size=FRAME, num_repeats=4, seed=0)
    by_clip = PairDataset(base)
    assert len(by_clip) == 6 * 4
    by_identity = PairDataset(PairDatasetConfig(**{**base.__dict__, "id_sampling": True}))
    assert len(by_identity) == 2 * 4
    counts = Counter(by_identity[i].identity for i in range(len(by_identity)))
    assert counts == {"busy": 4, "rare": 4}


def test_items_are_reproducible_and_loader_workers_change_nothing(dataset_root: Path) -> None:
    config = PairDatasetConfig(root=dataset_root, frame_size=FRAME, seed=3, augmentation=load_augmentation())
    dataset = PairDataset(config)
    torch.testing.assert_close(dataset[2].driving, dataset[2].driving)
    loader = DataLoader(dataset, batch_size=4, num_workers=2, collate_fn=collate_pairs, worker_init_fn=worker_init_fn)
    (batch,) = list(loader)
    torch.testing.assert_close(batch.source, collate_pairs([dataset[i] for i in range(4)]).source)
    dataset.set_epoch(1)
    assert any(not torch.equal(dataset[i].source, batch.source[i]) for i in range(4))  # a new epoch, new draws


FULL = {
    "flip": {"horizontal": 0.5, "time": 0.0},
    "rotation": {"degrees": 20},
    "translation": {"fraction": 0.1},
    "scale": {"range": [0.8, 1.2]},
    "crop": {"range": [0.6, 0.9]},
    "jitter": {"brightness": 0.3, "contrast": 0.3, "saturation": 0.3, "hue": 0.2},
    "blur": {"sigma": [0.5, 1.5], "p": 0.5},
}


def textured(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)


def test_both_frames_of_a_pair_get_identical_augmentation() -> None:
    augmenter = Augmenter(AugmentationConfig.from_dict(FULL), FRAME)
    rng = np.random.default_rng(0)
    frame = textured()
    for _ in range(20):
        params = augmenter.sample(rng)
        first, second = augmenter.apply([frame, frame.copy()], params, rng)
        np.testing.assert_array_equal(first, second)
    assert not np.array_equal(*(augmenter.apply([frame], augmenter.sample(rng), rng)[0] for _ in range(2)))


def test_pair_of_a_still_clip_is_identical_after_augmentation(tmp_path: Path) -> None:
    (tmp_path / "train" / "still").mkdir(parents=True)
    for i in range(4):
        cv2.imwrite(str(tmp_path / "train" / "still" / f"{i}.png"), textured())
    config = PairDatasetConfig(root=tmp_path, frame_size=FRAME, seed=0, augmentation=AugmentationConfig.from_dict(FULL))
    for pair in (PairDataset(config)[0], PairDataset(config)[0]):
        torch.testing.assert_close(pair.source, pair.driving, rtol=0, atol=0)


def test_geometry_follows_screen_conventions() -> None:
    frame = np.zeros((33, 33, 3), dtype=np.uint8)
    frame[16, 28] = 255  # a dot right of the centre
    augmenter = Augmenter(AugmentationConfig(border="constant"), (33, 33))
    rng = np.random.default_rng(0)

    def dot(params: AugmentParams) -> tuple[int, int]:
        out = augmenter.apply([frame], params, rng)[0][0]
        y, x = np.unravel_index(np.argmax(out), out.shape)
        return int(x), int(y)

    assert dot(AugmentParams()) == (28, 16)
    assert dot(AugmentParams(hflip=True)) == (4, 16)
    assert dot(AugmentParams(angle=90.0)) == (16, 4)  # counter-clockwise on screen: right goes up
    assert dot(AugmentParams(shift=(0.0, 0.25))) == (28, 24)
    assert dot(AugmentParams(hflip=True, shift=(0.0, 0.25))) == (4, 24)  # the warp mirrors as cv2.flip does
    assert dot(AugmentParams(zoom=0.5)) == (22, 16)  # zoom about the centre
    # The right half enlarged: its centre is 8.25 px right of the frame's, so the dot lands at 16 + (12 - 8.25) * 2.
    assert dot(AugmentParams(crop_side=0.5, crop_centre=(0.5, 0.0))) in ((23, 16), (24, 16))


def test_colour_matrix_matches_the_definitions() -> None:
    grey = np.array([100.0, 100.0, 100.0, 1.0])
    assert colour_matrix([(ColourOp.BRIGHTNESS, 1.5)], grey[:3]) @ grey == pytest.approx([150] * 3)
    red = np.array([200.0, 20.0, 20.0, 1.0])
    desaturated = colour_matrix([(ColourOp.SATURATION, 0.0)], red[:3]) @ red
    assert np.ptp(desaturated) == pytest.approx(0, abs=1e-6)
    hue = colour_matrix([(ColourOp.HUE, 0.25)], red[:3]) @ red
    assert hue @ [0.299, 0.587, 0.114] == pytest.approx(red[:3] @ [0.299, 0.587, 0.114])
    contrast = colour_matrix([(ColourOp.CONTRAST, 0.0)], red[:3]) @ red
    assert contrast == pytest.approx([red[:3] @ [0.299, 0.587, 0.114]] * 3)


@pytest.mark.parametrize("value_range", [(0, 1), (-1, 1)])
def test_normalisation_ranges(value_range: tuple[int, int]) -> None:
    config = AugmentationConfig.from_dict(
        {**FULL, "noise": {"gaussian": 0.5, "salt_pepper": 0.1, "speckle": 0.5}, "value_range": list(value_range)}
    )
    augmenter = Augmenter(config, FRAME)
    rng = np.random.default_rng(0)
    out = augmenter([textured(), textured(1)], rng)
    assert all(o.dtype == np.float32 and o.shape == (3, *FRAME) for o in out)
    low, high = min(float(o.min()) for o in out), max(float(o.max()) for o in out)
    assert (low, high) == (float(value_range[0]), float(value_range[1]))  # salt and pepper reach both ends


def test_default_and_fomm_configs_parse(tmp_path: Path) -> None:
    default = load_augmentation()
    assert default.flip is not None and default.value_range == (0.0, 1.0)
    fomm = {
        "dataset_params": {
            "root_dir": str(tmp_path),
            "frame_shape": [256, 256, 3],
            "id_sampling": True,
            "pairs_list": "data/vox256.csv",
            "augmentation_params": {
                "flip_param": {"horizontal_flip": True, "time_flip": False},
                "jitter_param": {"brightness": 0.1, "contrast": 0.1, "saturation": 0.1, "hue": 0.1},
                "resize_param": {"ratio": [0.9, 1.1]},
                "crop_param": {"size": [256, 256]},
            },
        }
    }
    path = tmp_path / "vox-256.yaml"
    path.write_text(yaml.safe_dump(fomm))
    aug = load_augmentation(path)
    assert aug.flip.horizontal == 0.5 and aug.flip.time == 0.0 and aug.jitter.hue == 0.1
    assert aug.scale.range == (0.9, 1.1) and aug.translation is not None
    dataset = PairDatasetConfig.from_dict(fomm["dataset_params"])
    assert dataset.frame_size == (256, 256) and dataset.id_sampling and dataset.augmentation == aug


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"flipp": {}}, "Unknown augmentation setting 'flipp'"),
        ({"rotation": {"degree": 3}}, "rotation.degree"),
        ({"jitter": {"hue": 0.9}}, "jitter.hue"),
        ({"scale": {"range": [1.2, 0.8]}}, "low end first"),
        ({"flip": {"horizontal": True}}, "flip.horizontal"),
        ({"value_range": [0, 255]}, "value_range"),
        ({"border": "wrap"}, "border"),
        ({"noise": 0.1}, "must be a mapping"),
        ({"flip": {"horizontal": 0.5}, "flip_param": {"horizontal_flip": True}}, "both"),
        ({"flip_param": {"vertical_flip": True}}, "flip_param.vertical_flip"),
    ],
)
def test_config_errors_name_the_setting(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AugmentationConfig.from_dict(settings)


def test_bad_yaml_and_dataset_settings_raise_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("flip: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_augmentation(bad)
    with pytest.raises(ConfigError, match="Cannot read"):
        load_augmentation(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="num_repeats"):
        PairDatasetConfig(root=tmp_path, num_repeats=0)
    with pytest.raises(ConfigError, match="Unknown dataset setting"):
        PairDatasetConfig.from_dict({"root": str(tmp_path), "batch": 3})
    with pytest.raises(ConfigError, match="max_frame_gap"):
        PairDatasetConfig(root=tmp_path, max_frame_gap=0)


def test_max_frame_gap_keeps_pairs_close_in_time() -> None:
    rng = np.random.default_rng(0)
    frames = np.arange(200)
    pairs = [choose_frames(frames, rng, 5) for _ in range(500)]
    assert all(0 < second - first <= 5 for first, second in pairs)
    assert len({first for first, _ in pairs}) > 100  # still drawn from the whole clip
    unlimited = [choose_frames(frames, rng, None) for _ in range(500)]
    assert max(second - first for first, second in unlimited) > 100
    assert choose_frames(np.array([3, 50]), rng, 5) == (3, 50)  # nothing that close: any other frame


def test_corrupt_clips_are_skipped_or_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_folder(tmp_path / "train" / "good", 4)
    (tmp_path / "train" / "broken.mp4").write_bytes(b"\x00not a video" * 10)
    write_folder(tmp_path / "train" / "truncated", 3)
    png = tmp_path / "train" / "truncated" / "000001.png"
    png.write_bytes(png.read_bytes()[:30])
    config = PairDatasetConfig(root=tmp_path, frame_size=FRAME, seed=0, num_repeats=4)
    with caplog.at_level(logging.WARNING, logger="enliven.data.pairs"):
        pairs = [PairDataset(config)[i] for i in range(12)]
    assert {p.clip for p in pairs} <= {"good", "truncated"} and "broken.mp4" in caplog.text
    strict = PairDataset(PairDatasetConfig(**{**config.__dict__, "skip_corrupt": False}))
    with pytest.raises(InputError, match="broken.mp4"):
        strict[0]
    (tmp_path / "train" / "good").rename(tmp_path / "unused")
    (tmp_path / "train" / "truncated").rename(tmp_path / "unused2")
    with pytest.raises(InputError, match="could not be read"):
        PairDataset(config)[0]


def test_time_flip_swaps_source_and_driving(dataset_root: Path) -> None:
    config = PairDatasetConfig(
        root=dataset_root, frame_size=FRAME, seed=0, augmentation=AugmentationConfig.from_dict({"flip": {"time": 1.0}})
    )
    pairs = [PairDataset(config)[i] for i in range(4)]
    assert all(p.source_index > p.driving_index for p in pairs)


def test_preview_command_writes_a_png(dataset_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "sheets" / "sheet.png"
    config = tmp_path / "aug.yaml"
    config.write_text(yaml.safe_dump({**FULL, "value_range": [-1, 1]}))
    argv = ["data", "preview", str(dataset_root), "-o", str(out), "--pairs", "5", "--size", "48"]
    argv += ["--config", str(config)]
    assert cli_main(argv) == 0
    sheet = cv2.imread(str(out))
    assert sheet is not None and sheet.shape[0] > 5 * 48 and sheet.shape[1] > 2 * 48
    assert [p.name for p in out.parent.iterdir()] == ["sheet.png"]  # no temp file left behind
    assert cli_main(["data", "preview", str(tmp_path / "nothing"), "-o", str(out)]) == 2


def test_data_package_imports_no_face_tools_nor_pipelines() -> None:
    code = (
        "import sys, enliven.data, enliven.data.preview; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('mediapipe', 'dlib', 'face_recognition_models') "
        "or m.startswith(('enliven.pipelines', 'enliven.cli'))]; print(bad); sys.exit(bool(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
