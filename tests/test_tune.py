"""``enliven tune``: the search space, a resumable study on a tiny synthetic dataset, failed trials, the CLI."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import yaml
from PIL import Image

import enliven.tuning.run as tune_run
from conftest import TINY_SIDE, square_frame, tiny_fomm_document, tiny_tpsmm_document, write_square_clips
from enliven.cli import main as cli_main
from enliven.errors import ConfigError, InputError
from enliven.train.config import TrainConfig, train_config_from_dict
from enliven.tuning import FloatRange, SearchSpace, TrialParams, apply_params, tune

SIDE = TINY_SIDE
STEPS = 2

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = tiny_fomm_document(
    dataset={"id_sampling": False},
    train_params={
        "num_epochs": 1,
        "num_repeats": 2,
        "lr_generator": 2.0e-4,
        "batch_size": 2,
        "dataloader_workers": 0,
        "scales": [1, 0.5],
        "loss_weights": {
            "generator_gan": 0,
            "feature_matching": [10, 10],
            "equivariance_value": 10,
            "equivariance_jacobian": 10,
        },
        "loss": {"perceptual": "offline", "l1": 10, "ms_ssim": 5},
        "log_every": 1,
        "image_every": 1000,
        "seed": 0,
    },
)

# A small space: two batch sizes, two keypoint counts, every loss weight.
SPACE = SearchSpace(lr=FloatRange(1e-4, 1e-3), batch_size=(1, 2), num_kp=(3, 4))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_square_clips(tmp_path_factory.mktemp("faces"), ("train",) * 3 + ("val",) * 2, 4)


@pytest.fixture(scope="module")
def config() -> TrainConfig:
    return train_config_from_dict(TINY)


def test_apply_params_replaces_config_fields(config: TrainConfig):
    params = TrialParams(lr=1e-3, batch_size=1, num_kp=3, equivariance=2.0, reconstruction=0.5, ms_ssim=3.0,
                         feature_matching=0.1)  # fmt: skip
    tuned = apply_params(config, params)
    assert tuned.lr_generator == 1e-3
    assert tuned.lr_kp_detector == pytest.approx(1e-3) and tuned.lr_discriminator == pytest.approx(1e-3)
    assert tuned.batch_size == 1 and tuned.model.num_kp == 3
    assert tuned.loss.equivariance_value == 20 and tuned.loss.equivariance_jacobian == 20
    assert tuned.loss.l1 == 5 and tuned.loss.ms_ssim == 15
    assert tuned.loss.feature_matching == pytest.approx((1.0, 1.0))
    assert config.model.num_kp == 4 and config.loss.l1 == 10  # the base is untouched
    assert apply_params(config, TrialParams()) == config


def test_default_space_is_around_the_base_config(config: TrainConfig):
    space = SearchSpace.around(config)
    assert space.batch_size == (1, 2, 4) and space.num_kp == (2, 4, 8)
    assert space.lr.low == pytest.approx(2e-5) and space.lr.high == pytest.approx(2e-3)
    assert set(space.distributions()) == {"lr", "batch_size", "num_kp", "equivariance", "reconstruction", "ms_ssim",
                                          "feature_matching"}  # fmt: skip
    base = space.base_params(config)
    assert base is not None and apply_params(config, TrialParams.from_mapping(base)) == config
    with pytest.raises(ConfigError):
        SearchSpace(lr=FloatRange(1e-4, 1e-3), batch_size=(0,), num_kp=(4,))


def test_apply_params_sets_tpsmm_transform_count():
    tpsmm = train_config_from_dict(tiny_tpsmm_document(train_params={"loss_weights": {"equivariance_value": 10}}))
    space = SearchSpace.around(tpsmm)
    assert space.num_kp == (1, 2, 4) and space.feature_matching is None
    assert apply_params(tpsmm, TrialParams(num_kp=4)).model.common.num_tps == 4


def test_trial_config_yaml_keeps_loss_weights(config: TrainConfig):
    from enliven.train.config import train_config_from_yaml

    tuned = apply_params(config, TrialParams(equivariance=2.0, ms_ssim=3.0))
    assert train_config_from_yaml(tuned.to_yaml()).loss == tuned.loss


def _trial_count(db: Path) -> int:
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT COUNT(*) FROM trials").fetchone()[0]


def test_study_resumes_and_records_failures(dataset: Path, config: TrainConfig, tmp_path: Path, monkeypatch):
    out = tmp_path / "tune"
    first = tune(config, dataset, out, trials=2, steps_per_trial=STEPS, space=SPACE, device="cpu")
    db = out / "study.db"
    assert db.is_file() and _trial_count(db) == 2
    assert [t.state for t in first.trials] == ["COMPLETE", "COMPLETE"]
    assert first.trials[0].params == TrialParams(lr=2e-4, batch_size=2, num_kp=4, equivariance=1.0,
                                                 reconstruction=1.0, ms_ssim=1.0, feature_matching=1.0)  # fmt: skip
    for trial in first.trials:
        assert 0 < trial.score < 1 and trial.seconds > 0
        run_dir = out / "trials" / str(trial.number)
        assert (run_dir / "checkpoints").is_dir() and trial.run_dir == str(run_dir)
        saved = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert saved["model_params"]["common_params"]["num_kp"] == trial.params.num_kp
        assert saved["train_params"]["batch_size"] == trial.params.batch_size
    assert first.best is not None and first.best_config is not None
    text = first.results.read_text()
    assert first.results == out / "results.md" and "| 0 | COMPLETE |" in text and "| 1 | COMPLETE |" in text
    assert "## Best: trial" in text and "lr_generator" in text

    # The second call resumes the study; its trial diverges, as the trainer reports a non-finite loss.
    def diverging(*args, **kwargs):
        raise FloatingPointError("training diverged at step 1: non-finite generator")

    monkeypatch.setattr(tune_run, "train", diverging)
    second = tune(config, dataset, out, trials=1, steps_per_trial=STEPS, space=SPACE, device="cpu")
    assert _trial_count(db) == 3
    assert [t.state for t in second.trials] == ["COMPLETE", "COMPLETE", "FAIL"]
    failed = second.trials[2]
    assert failed.score is None and "FloatingPointError" in failed.error
    text = second.results.read_text()
    assert "| 2 | FAIL |" in text and "## Failed trials" in text and "diverged" in text
    assert second.best == first.best
    assert not list(out.glob(".*tmp*"))  # the results file was renamed into place

    with pytest.raises(ConfigError, match="search"):  # the same study with other categorical choices
        tune(config, dataset, out, trials=1, steps_per_trial=STEPS, device="cpu",
             space=SearchSpace(lr=FloatRange(1e-4, 1e-3), batch_size=(1, 2, 4), num_kp=(3, 4)))  # fmt: skip


def test_interrupted_trial_is_recorded_as_failed(dataset: Path, config: TrainConfig, tmp_path: Path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tune_run, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tune(config, dataset, tmp_path, trials=3, steps_per_trial=STEPS, space=SPACE, device="cpu")
    with sqlite3.connect(tmp_path / "study.db") as connection:
        assert connection.execute("SELECT state FROM trials").fetchall() == [("FAIL",)]


def test_cli_tune(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    config_path = tmp_path / "base.yaml"
    config_path.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "tune"
    argv = ["tune", "--config", str(config_path), "--data", str(dataset), "--out", str(out), "--trials", "1",
            "--steps-per-trial", "1", "--study", "small", "--device", "cpu"]  # fmt: skip
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    assert "trial 0 complete" in printed and "| trial | state |" in printed and "best: trial 0" in printed
    assert (out / "results-small.md").is_file() and (out / "trials" / "small" / "0" / "config.yaml").is_file()
    assert cli_main([*argv[:-2], "--study", "bad name!"]) == 2
    assert "study name" in capsys.readouterr().err


def test_tune_without_a_scoring_split(config: TrainConfig, tmp_path: Path):
    (tmp_path / "train" / "clip0").mkdir(parents=True)
    Image.fromarray(square_frame(0, 0)).save(tmp_path / "train" / "clip0" / "000000.png")
    with pytest.raises(InputError, match="neither a 'val' nor a 'test'"):
        tune(config, tmp_path, tmp_path / "tune", trials=1, steps_per_trial=1)
