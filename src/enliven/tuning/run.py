"""``tune``: short training trials over a search space, stored in an Optuna study that a later call resumes.

A tuning folder holds::

    TUNE_DIR/study.db             the Optuna study (SQLite); a second run with the same study name adds trials
    TUNE_DIR/trials/<n>/          trial n's training run (config, last checkpoint, TensorBoard logs)
    TUNE_DIR/results.md           every trial (number, state, parameters, score, seconds) and the best parameters

Studies other than the default ``enliven`` keep their trials in ``trials/<study>/<n>/`` and their table in
``results-<study>.md``, so that several studies can share one folder and one database.

A trial trains its config for ``steps_per_trial`` steps from scratch and is scored on the dataset's ``val`` split
(``test`` when there is none) by reconstruction L1: source = a clip's first frame, driving = its first frames,
absolute motion, through the trained model's EMA weights (what ``enliven release`` ships), compared with the real
frames. Lower is better. A trial whose training diverges (the trainer raises on a non-finite loss), runs out of
memory, or whose parameters make an invalid config is recorded as failed and the study goes on.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from enliven.data import ClipReader, ClipRef, find_clips
from enliven.errors import ConfigError, EnlivenError, InputError
from enliven.evaluate import metrics
from enliven.evaluate.protocols import read_frames
from enliven.inference.animator import Animator
from enliven.models.factory import build_model
from enliven.train.checkpointing import load_checkpoint
from enliven.train.config import TrainConfig, load_train_config
from enliven.train.trainer import train
from enliven.tuning.report import TrialRecord, TuneResult, best_record, records_from_study, write_results
from enliven.tuning.space import SearchSpace, TrialParams, apply_params
from enliven.types import MotionMode

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

DEFAULT_STUDY = "enliven"
STUDY_DB = "study.db"
_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# What a single trial may raise without ending the study: divergence, too little memory, a bad parameter mix.
_TRIAL_ERRORS: tuple[type[Exception], ...] = (FloatingPointError, torch.OutOfMemoryError, EnlivenError)


@dataclass(frozen=True)
class ScoreOptions:
    """How a trial's model is scored.

    Attributes:
        max_clips: clips of the split, evenly spread over it.
        max_frames: first frames of each clip (frame 0 is the source).
        batch_size: driving frames per model call.
    """

    max_clips: int = 4
    max_frames: int = 8
    batch_size: int = 8

    def __post_init__(self) -> None:
        if min(self.max_clips, self.max_frames, self.batch_size) < 1:
            raise ConfigError("the scoring options max_clips, max_frames and batch_size must be 1 or more.")


def score_split(root: Path) -> str:
    """``val`` when the dataset has one, else ``test``.

    Raises:
        InputError: the dataset has neither.
    """
    for split in ("val", "test"):
        try:
            find_clips(root, split)
        except InputError:
            continue
        return split
    raise InputError(f"{root} has neither a 'val' nor a 'test' split to score trials on; prepare one first.")


def _spread(clips: list[ClipRef], count: int) -> list[ClipRef]:
    """At most ``count`` clips, evenly spaced over the list."""
    if len(clips) <= count:
        return clips
    return [clips[i] for i in np.linspace(0, len(clips) - 1, count).round().astype(int)]


def reconstruction_l1(
    config: TrainConfig, checkpoint: Path, clips: list[ClipRef], options: ScoreOptions, device: str = "auto"
) -> float:
    """Mean L1 (``[0, 1]`` RGB) of the checkpoint's EMA model reconstructing each clip's first frames from its first
    frame with absolute motion; frame 0 (the source itself) is left out."""
    model = build_model(config.model)
    model.load_state_dict(load_checkpoint(checkpoint)["ema"], strict=True)
    animator = Animator(model, device=device, mode=MotionMode.ABSOLUTE)
    reader, errors = ClipReader(), []
    for clip in clips:
        frames = read_frames(reader, clip, options.max_frames, animator.size)
        animator.set_source(frames[0])
        driving = frames[1:] if len(frames) > 1 else frames
        outputs = np.concatenate(
            [animator(driving[i : i + options.batch_size]) for i in range(0, len(driving), options.batch_size)]
        )
        errors.append(metrics.l1_error(driving, outputs))
    return float(np.concatenate(errors).mean())


def _import_optuna():  # noqa: ANN202 - the module
    try:
        import optuna
    except ImportError:
        raise InputError("enliven tune needs Optuna; install it with: pip install 'enliven[train]'.") from None
    return optuna


def trial_dir(out: Path, study_name: str, number: int) -> Path:
    base = Path(out) / "trials"
    return base / str(number) if study_name == DEFAULT_STUDY else base / study_name / str(number)


def results_path(out: Path, study_name: str) -> Path:
    return Path(out) / ("results.md" if study_name == DEFAULT_STUDY else f"results-{study_name}.md")


def tune(
    base_config: str | Path | TrainConfig,
    data: str | Path,
    out: str | Path,
    trials: int = 20,
    steps_per_trial: int = 200,
    *,
    study_name: str = DEFAULT_STUDY,
    space: SearchSpace | None = None,
    score: ScoreOptions | None = None,
    device: str = "auto",
    seed: int | None = None,
    progress: bool = False,
    on_trial: Callable[[TrialRecord], None] | None = None,
) -> TuneResult:
    """Run ``trials`` more trials of a study (created, or resumed when ``out`` already holds it).

    Args:
        base_config: the training YAML (or parsed config) the trials vary.
        data: the dataset folder (``enliven prepare`` output); trials train on ``train``, are scored on ``val``
            (or ``test`` when there is no ``val``).
        out: the tuning folder (see the module docstring).
        trials: trials to add in this call.
        steps_per_trial: optimisation steps of each trial.
        study_name: the Optuna study name.
        space: what to search; default :meth:`SearchSpace.around` the base config. Resuming a study needs the same
            categorical choices as before.
        score: how trials are scored (see :class:`ScoreOptions`).
        device: ``auto``, ``cpu`` or ``cuda``.
        seed: seed of the sampler (default: the config's); offset by the trials already done, so that a resumed
            study draws new points.
        progress: show each trial's training progress bar.
        on_trial: called with each finished trial's record (the CLI prints a line).

    Returns:
        Every trial of the study so far, the best one, and the results file written.

    Raises:
        InputError: the dataset is missing or has no split to score on. ConfigError: bad config, study name or
            counts; a study whose search space does not match ``space``.
    """
    optuna = _import_optuna()
    from optuna.trial import TrialState

    if trials < 1 or steps_per_trial < 1:
        raise ConfigError(f"trials and steps per trial must be 1 or more, got {trials} and {steps_per_trial}.")
    if not _STUDY_NAME.match(study_name):
        raise ConfigError(f"the study name {study_name!r} must be letters, digits, '_', '.' or '-'; choose another.")
    config = base_config if isinstance(base_config, TrainConfig) else load_train_config(base_config)
    data, out = Path(data).expanduser(), Path(out).expanduser()
    find_clips(data, "train")  # a missing dataset fails now, not in every trial
    split = score_split(data)
    space = space or SearchSpace.around(config)
    # Short trials keep one checkpoint, written at their end.
    config = replace(config, keep_last=1, checkpoint_every=steps_per_trial)

    out.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{(out / STUDY_DB).resolve()}"
    study = optuna.create_study(storage=storage, study_name=study_name, direction="minimize", load_if_exists=True)
    distributions = space.distributions()
    _check_same_space(study, distributions, study_name, out)
    done = len(study.trials)
    study.sampler = optuna.samplers.TPESampler(seed=(config.seed if seed is None else seed) + done)
    if done == 0 and (base := space.base_params(config)) is not None:
        study.enqueue_trial(base)  # the base config is the first trial: the point every other one is measured by
    options = score or ScoreOptions()
    clips = _spread(find_clips(data, split), options.max_clips)

    for _ in range(trials):
        trial = study.ask(distributions)
        params = TrialParams.from_mapping(trial.params)
        run_dir = trial_dir(out, study_name, trial.number)
        trial.set_user_attr("run_dir", str(run_dir))
        try:
            trial_config = apply_params(config, params)
            result = train(trial_config, data, run_dir, device=device, max_steps=steps_per_trial, progress=progress)
            trial.set_user_attr("steps_per_second", result.steps_per_second)
            if result.checkpoint is None:  # pragma: no cover - a single process always writes one
                raise RuntimeError(f"trial {trial.number} wrote no checkpoint")
            value = reconstruction_l1(trial_config, result.checkpoint, clips, options, device)
        except _TRIAL_ERRORS as err:
            trial.set_user_attr("error", f"{type(err).__name__}: {err}")
            log.warning("trial %d (%s) failed: %s", trial.number, params.describe(), err)
            frozen = study.tell(trial, state=TrialState.FAIL)
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)  # interrupted: the study must not keep a "running" trial
            raise
        else:
            frozen = study.tell(trial, value)
        if on_trial is not None:
            on_trial(records_from_study([frozen])[0])

    records = records_from_study(study.get_trials(deepcopy=False))
    best = best_record(records)
    best_config = None if best is None else apply_params(config, best.params)
    path = write_results(results_path(out, study_name), records, best_config, study_name, split, steps_per_trial)
    return TuneResult(study_name, storage, out, tuple(records), best, best_config, path)


def _check_same_space(study: optuna.Study, distributions: dict, study_name: str, out: Path) -> None:
    """A resumed study must search the same space (Optuna refuses other categorical choices mid-study)."""
    from optuna.distributions import check_distribution_compatibility

    for frozen in study.get_trials(deepcopy=False):
        for name, old in frozen.distributions.items():
            if name not in distributions:
                continue
            try:
                check_distribution_compatibility(old, distributions[name])
            except ValueError:
                raise ConfigError(
                    f"the study '{study_name}' in {out} searched {name} over {old} and now gets "
                    f"{distributions[name]}; use the same base config and space, or another --study name."
                ) from None
