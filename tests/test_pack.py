"""``enliven data pack``: a prepared dataset as mp4 clips with float16 landmark sidecars, read like the original."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO_ROOT, TINY_SIDE, write_square_clips
from enliven.cli import main
from enliven.data import ClipReader, find_clips
from enliven.data.layout import ClipKind
from enliven.data.pairs import landmarks_path
from enliven.errors import InputError, OutputError
from enliven.prepare.pack import pack_dataset
from enliven.types import LandmarkKind


def _dataset(root: Path) -> Path:
    write_square_clips(root, ("train", "train", "val"), 6)
    rng = np.random.default_rng(0)
    for clip in ("train/clip0", "train/clip1", "val/clip2"):
        points = rng.uniform(0, TINY_SIDE, (6, LandmarkKind.FACE_MESH.num_points, 2)).astype(np.float32)
        np.save(root / f"{clip}{LandmarkKind.FACE_MESH.suffix}", points)
    return root


def test_a_packed_dataset_reads_like_the_original(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "faces")
    summary = pack_dataset(root, tmp_path / "packed", progress=False)
    assert (summary.clips, summary.frames) == (3, 18) and 0 < summary.bytes_out < summary.bytes_in
    reader = ClipReader()
    for split in ("train", "val"):
        before, after = find_clips(root, split), find_clips(summary.output, split)
        assert [clip.name + ".mp4" for clip in before] == [clip.name for clip in after]
        for old, new in zip(before, after, strict=True):
            assert new.kind is ClipKind.VIDEO and new.identity == old.identity and new.num_frames == 6
            frames, packed = np.stack(reader.read_all(old)), np.stack(reader.read_all(new))
            assert packed.shape == frames.shape
            # H.264 at CRF 18, 4:2:0: the test frames' per-pixel colour noise is lost, their 4 x 4 blocks are not
            blocks = [a.reshape(6, TINY_SIDE // 4, 4, TINY_SIDE // 4, 4, 3).mean((2, 4)) for a in (frames, packed)]
            assert np.abs(blocks[0] - blocks[1]).mean() < 4  # 2.2 here; a shifted or broken frame is far over
            landmarks, halved = np.load(landmarks_path(old)), np.load(landmarks_path(new))
            assert halved.dtype == np.float16 and np.abs(halved - landmarks).max() <= 1 / 16
    entries = json.loads((summary.output / "metadata.json").read_text())["clips"]
    assert entries["clip2"]["path"] == "val/clip2.mp4"


def test_pack_takes_the_splits_asked_for(tmp_path: Path) -> None:
    summary = pack_dataset(_dataset(tmp_path / "faces"), tmp_path / "packed", ("val",), progress=False)
    assert summary.clips == 1 and sorted(p.name for p in summary.output.iterdir()) == ["metadata.json", "val"]


def test_pack_refuses_what_it_cannot_do_and_leaves_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _dataset(tmp_path / "faces")
    taken = tmp_path / "taken"
    (taken / "x").mkdir(parents=True)
    with pytest.raises(OutputError, match="not empty"):
        pack_dataset(root, taken, progress=False)
    with pytest.raises(OutputError, match="inside the dataset"):
        pack_dataset(root, root / "packed", progress=False)
    with pytest.raises(InputError, match="no 'test' split"):
        pack_dataset(root, tmp_path / "packed", ("test",), progress=False)
    (root / "train" / "clip1" / "000003.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="not a readable image"):
        pack_dataset(root, tmp_path / "packed", progress=False)
    assert not (tmp_path / "packed").exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert main(["data", "pack", str(tmp_path / "nowhere"), str(tmp_path / "packed")]) != 0
    assert "no split folders" in capsys.readouterr().err


def test_the_cli_packs_and_says_how_much(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _dataset(tmp_path / "faces")
    assert main(["data", "pack", str(root), str(tmp_path / "packed"), "--splits", "train", "--no-progress"]) == 0
    assert "Packed 2 clips (12 frames)" in capsys.readouterr().out


def test_the_device_script_trains_on_a_packed_dataset_and_resumes(tmp_path: Path) -> None:
    """scripts/device_train.sh as a GPU machine runs it (enliven from src/, no MediaPipe), here at two steps."""
    from enliven.config.lite import LiteConfig
    from enliven.train.trainer import train
    from enliven.weights.checkpoint import load_release

    root = _dataset(tmp_path / "faces")
    packed = pack_dataset(root, tmp_path / "packed", progress=False).output
    tiny = LiteConfig(image_size=TINY_SIDE, motion_size=16, channels=(8, 16), motion_expansion=8)
    document = tiny.to_yaml_dict()
    document["dataset_params"].update({"id_sampling": False})
    losses = {"equivariance_value": 0, "equivariance_jacobian": 0}
    document["train_params"] = {"num_epochs": 1, "num_repeats": 4, "batch_size": 2, "dataloader_workers": 0}
    document["train_params"] |= {"scales": [1, 0.5], "loss_weights": losses, "checkpoint_every": 1, "seed": 0}
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(document))
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['mediapipe'] = sys.modules['dlib'] = None\n")
    script = REPO_ROOT / "scripts" / "device_train.sh"
    # a run folder brought back from an earlier call (here: one step trained in-process) is resumed, not restarted
    train(config, packed, tmp_path / "run", max_steps=1, progress=False)
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, OUT=str(out), PYTHON=sys.executable, PYTHONPATH=str(blocker))
    done = subprocess.run(
        ["bash", str(script), str(config), str(packed), "2", str(tmp_path / "run")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]  # without --resume the run folder would be refused
    assert [p.name for p in (out / "run" / "checkpoints").iterdir()] == ["step-000000002.pt"]
    assert "trained to step 2" in (out / "train.log").read_text()
    assert load_release(out / "model.safetensors").model.config == tiny
