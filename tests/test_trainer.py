"""The training loop, checkpoints, resume, release, CLI and DDP, on a tiny synthetic FOMM-layout dataset."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import TINY_SIDE, square_frame, tiny_fomm_document, tiny_tpsmm_document, write_square_clips
from enliven.cli import main as cli_main
from enliven.errors import ConfigError, InputError
from enliven.train.checkpointing import list_checkpoints, load_checkpoint, release_run
from enliven.train.config import train_config_from_dict
from enliven.train.trainer import train
from enliven.train.visualize import draw_keypoints

SIDE = TINY_SIDE

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FOMM_TINY = tiny_fomm_document(
    dataset={"id_sampling": False, "augmentation_params": {"flip_param": {"horizontal_flip": True, "time_flip": True}}},
    train_params={
        "num_epochs": 2,
        "num_repeats": 2,
        "epoch_milestones": [1],
        "lr_generator": 2.0e-4,
        "batch_size": 2,
        "dataloader_workers": 0,
        "scales": [1, 0.5],
        "loss_weights": {
            "generator_gan": 1,
            "discriminator_gan": 1,
            "feature_matching": [10, 10],
            "equivariance_value": 10,
            "equivariance_jacobian": 10,
        },
        "checkpoint_every": 2,
        "keep_last": 2,
        "grad_clip": 10.0,
        "log_every": 1,
        "image_every": 2,
        "seed": 0,
    },
)

TPSMM_TINY = tiny_tpsmm_document(
    train_params={
        "num_epochs": 1,
        "num_repeats": 2,
        "batch_size": 2,
        "scales": [1, 0.5],
        "bg_start": 0,
        "loss_weights": {"equivariance_value": 10, "warp_loss": 10, "bg": 10},
        "log_every": 1,
        "seed": 0,
    }
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_square_clips(tmp_path_factory.mktemp("data") / "faces", ("train",) * 3 + ("val",), 5, sources=True)


def write_config(path: Path, document: dict, **train_params: object) -> Path:
    document = copy.deepcopy(document)
    document["train_params"].update(train_params)
    path.write_text(yaml.safe_dump(document))
    return path


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(list_checkpoints(run_dir)[-1])
    return {**state["generator_objective"], **{f"ema.{k}": v for k, v in state["ema"].items()}}


def test_a_few_steps_give_finite_losses_checkpoints_and_tensorboard(dataset: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "fomm.yaml", FOMM_TINY)
    result = train(config, dataset, tmp_path / "run", device="cpu", max_steps=5, progress=False)
    assert result.step == 5 and result.epoch == 1  # 3 clips x 2 repeats / batch 2 = 3 steps per epoch
    assert result.losses and all(np.isfinite(v) for v in result.losses.values())
    assert {"generator", "discriminator"} <= set(result.losses)
    # Checkpoints at 2 and 4 (every 2) and at the end (5); only the last two are kept.
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step-000000004.pt", "step-000000005.pt"]
    state = load_checkpoint(result.checkpoint)
    for key in ("generator_objective", "discriminator_objective", "ema", "optimizer_generator", "scheduler_generator",
                "optimizer_discriminator", "scaler", "rng", "config", "data"):  # fmt: skip
        assert key in state, key
    assert state["step"] == 5 and state["epoch"] == 1 and state["data_epoch"] == 1
    assert set(state["rng"]) >= {"python", "numpy", "torch"}
    assert yaml.safe_load(state["config"])["train_params"]["max_steps"] == 5
    # The epoch milestone (1 epoch = 3 steps) has divided the learning rate by 10.
    assert state["optimizer_generator"]["param_groups"][0]["lr"] == pytest.approx(2e-5)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["dataset_params"]["root_dir"] == str(dataset)
    assert any((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert not list((tmp_path / "run" / "checkpoints").glob(".*"))  # no temporary files left


def test_resume_continues_exactly(dataset: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "fomm.yaml", FOMM_TINY, checkpoint_every=2)
    train(config, dataset, tmp_path / "straight", device="cpu", max_steps=4, progress=False)
    assert [p.name for p in list_checkpoints(tmp_path / "straight")] == ["step-000000002.pt", "step-000000004.pt"]
    train(config, dataset, tmp_path / "split", device="cpu", max_steps=2, progress=False)
    result = train(None, dataset, tmp_path / "split", resume=True, device="cpu", max_steps=4, progress=False)
    assert result.step == 4
    straight, split = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    assert straight.keys() == split.keys()
    for key in straight:
        assert torch.equal(straight[key], split[key]), key


def test_tpsmm_trains_through_the_same_loop(dataset: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "tpsmm.yaml", TPSMM_TINY)
    result = train(config, dataset, tmp_path / "run", device="cpu", max_steps=2, progress=False)
    assert result.step == 2 and all(np.isfinite(v) for v in result.losses.values())
    assert "discriminator" not in result.losses  # TPSMM trains without a GAN by default
    path, _ = release_run(tmp_path / "run", tmp_path / "tpsmm.safetensors")
    from enliven.weights.loader import load_model

    assert load_model(path).model.family == "tpsmm"


def test_release_then_animate_loads_it(dataset: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "fomm.yaml", FOMM_TINY)
    train(config, dataset, tmp_path / "run", device="cpu", max_steps=1, progress=False)
    out = tmp_path / "model.safetensors"
    assert cli_main(["release", str(tmp_path / "run"), "-o", str(out)]) == 0
    from enliven.weights.loader import load_model

    loaded = load_model(out)
    assert loaded.model.family == "fomm" and loaded.model.image_size == SIDE
    card = loaded.metadata["model_card"]
    assert "FOMM" in card and "1 steps" in card and "| squares | MIT | 2 |" in card
    assert loaded.metadata["content"] == "face"
    ema = load_checkpoint(list_checkpoints(tmp_path / "run")[-1])["ema"]
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, ema[key]), key
    # enliven animate --model FILE end to end (no face crop: the synthetic frames have no face).
    driving = tmp_path / "driving"
    driving.mkdir()
    for index in range(3):
        Image.fromarray(square_frame(0, index)).save(driving / f"{index:06d}.png")
    Image.fromarray(square_frame(1, 0)).save(tmp_path / "source.png")
    args = ["animate", str(tmp_path / "source.png"), str(driving), "-o", str(tmp_path / "out") + "/"]
    assert cli_main([*args, "--model", str(out), "--no-crop", "--device", "cpu", "-q"]) == 0
    assert len(list((tmp_path / "out").glob("*.png"))) == 3


def test_cli_errors_are_one_sentence(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = write_config(tmp_path / "fomm.yaml", FOMM_TINY)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**FOMM_TINY, "train_params": {"batch_size": 0}}))
    typo = write_config(tmp_path / "typo.yaml", FOMM_TINY, max_step=3)
    cases = [
        ["train", "--config", str(config), "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r")],
        ["train", "--config", str(bad), "--data", str(dataset), "--out", str(tmp_path / "r")],
        ["train", "--config", str(typo), "--data", str(dataset), "--out", str(tmp_path / "r")],
        ["train", "--config", str(tmp_path / "nope.yaml"), "--data", str(dataset), "--out", str(tmp_path / "r")],
        ["train", "--data", str(dataset), "--out", str(tmp_path / "r"), "--resume"],
        ["release", str(tmp_path / "r"), "-o", str(tmp_path / "m.safetensors")],
    ]
    for argv in cases:
        assert cli_main(argv) == 2, argv
        message = capsys.readouterr().err.strip()
        assert message.startswith("enliven: error: ") and message.count("\n") == 0, message


def test_config_is_validated_once(tmp_path: Path) -> None:
    config = train_config_from_dict(FOMM_TINY)
    assert config.family == "fomm" and config.dataset.frame_size == (SIDE, SIDE) and config.dataset.num_repeats == 2
    assert config.lr_kp_detector == config.lr_discriminator == 2e-4 and config.max_steps is None
    again = train_config_from_dict(yaml.safe_load(config.to_yaml()))
    assert again.to_yaml_dict() == config.to_yaml_dict()
    tpsmm = train_config_from_dict({**TPSMM_TINY, "dataset_params": {"frame_shape": None, "id_sampling": True}})
    assert tpsmm.model.image_size == tpsmm.dataset.frame_size[0] == 256  # TPSMM's files: null means the default
    with pytest.raises(ConfigError, match="max_step"):
        train_config_from_dict({**FOMM_TINY, "train_params": {**FOMM_TINY["train_params"], "max_step": 3}})
    with pytest.raises(ConfigError, match="frame size"):
        train_config_from_dict({**FOMM_TINY, "dataset_params": {"frame_size": [32, 32]}})
    with pytest.raises(ConfigError, match="ema_decay"):
        train_config_from_dict({**FOMM_TINY, "train_params": {"ema_decay": 1}})


def test_existing_run_is_not_overwritten(dataset: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "fomm.yaml", FOMM_TINY)
    train(config, dataset, tmp_path / "run", device="cpu", max_steps=1, progress=False)
    with pytest.raises(InputError, match="--resume"):
        train(config, dataset, tmp_path / "run", device="cpu", max_steps=1, progress=False)
    with pytest.raises(InputError, match="release file"):
        release_run(tmp_path / "run", tmp_path / "model.pt")


def test_ddp_on_two_cpu_processes(dataset: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "fomm.yaml", FOMM_TINY, num_repeats=4)
    env = dict(os.environ)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "enliven", "train", "--config", str(config), "--data", str(dataset)]
    command += ["--out", str(tmp_path / "run"), "--device", "cpu", "--max-steps", "2", "-q"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step-000000002.pt"]
    assert "trained to step 2" in done.stdout and done.stdout.count("trained to step") == 1


def test_keypoints_are_drawn_where_they_are() -> None:
    images = torch.zeros(1, 3, 9, 9)
    drawn = draw_keypoints(images, torch.tensor([[[0.0, 0.0], [1.0, -1.0]]]), radius=1.0)
    assert drawn[0, :, 4, 4].sum() > 0 and drawn[0, :, 0, 8].sum() > 0  # centre; top-right corner
    assert drawn[0, :, 8, 0].sum() == 0 and not torch.equal(drawn[0, :, 4, 4], drawn[0, :, 0, 8])
