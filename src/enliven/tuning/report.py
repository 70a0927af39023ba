"""The outcome of a tuning study: one typed record per trial, and the Markdown results table."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from enliven.io import atomic_output
from enliven.train.config import TrainConfig
from enliven.tuning.space import TrialParams

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial


@dataclass(frozen=True)
class TrialRecord:
    """One trial of a study.

    Attributes:
        number: the trial's number in its study (0, 1, ...).
        state: Optuna's state name: ``COMPLETE``, ``FAIL``, ``RUNNING`` (a process killed mid-trial) ...
        params: the trial's parameters.
        score: reconstruction L1 on the scoring split (lower is better); ``None`` unless complete.
        seconds: wall time of training and scoring; ``None`` while running.
        run_dir: the trial's training run folder.
        error: why a failed trial failed (one line), else ``None``.
    """

    number: int
    state: str
    params: TrialParams
    score: float | None
    seconds: float | None
    run_dir: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class TuneResult:
    """What :func:`~enliven.tuning.tune` leaves.

    Attributes:
        study_name: the Optuna study.
        storage: its database URL (``sqlite:///.../study.db``).
        out: the tuning folder.
        trials: every trial of the study so far (this call's and earlier ones'), by number.
        best: the complete trial of lowest score, or ``None`` when none completed.
        best_config: the base config with the best trial's parameters, or ``None``.
        results: the written results table.
    """

    study_name: str
    storage: str
    out: Path
    trials: tuple[TrialRecord, ...]
    best: TrialRecord | None
    best_config: TrainConfig | None
    results: Path


def records_from_study(trials: Iterable[FrozenTrial]) -> list[TrialRecord]:
    """Typed records of Optuna's frozen trials."""
    records = []
    for trial in trials:
        seconds = None
        if trial.datetime_start is not None and trial.datetime_complete is not None:
            seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
        value = trial.value if trial.state.name == "COMPLETE" else None
        records.append(
            TrialRecord(
                number=trial.number,
                state=trial.state.name,
                params=TrialParams.from_mapping(trial.params),
                score=None if value is None or not math.isfinite(value) else float(value),
                seconds=seconds,
                run_dir=trial.user_attrs.get("run_dir"),
                error=trial.user_attrs.get("error"),
            )
        )
    return sorted(records, key=lambda r: r.number)


def _cell(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name == "lr":
        return f"{value:.2e}"
    if isinstance(value, float):
        return f"x{value:.3g}"
    return str(value)


def results_table(records: Sequence[TrialRecord]) -> str:
    """A Markdown table: trial, state, one column per searched parameter, L1, seconds."""
    names = [f.name for f in fields(TrialParams) if any(getattr(r.params, f.name) is not None for r in records)]
    lines = [
        "| trial | state | " + " | ".join(names) + " | L1 | seconds |",
        "|---:|---|" + "---:|" * len(names) + "---:|---:|",
    ]
    for r in records:
        cells = [_cell(n, getattr(r.params, n)) for n in names]
        score = "-" if r.score is None else f"{r.score:.5f}"
        seconds = "-" if r.seconds is None else f"{r.seconds:.1f}"
        lines.append(f"| {r.number} | {r.state} | " + " | ".join(cells) + f" | {score} | {seconds} |")
    return "\n".join(lines)


def _rounded(value: Any) -> Any:
    """Floats (also inside lists and dicts) to 4 significant digits."""
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def best_settings(config: TrainConfig) -> dict[str, Any]:
    """The values a trial sets, in the training YAML's layout (4 significant digits), to copy into a config."""
    loss = config.loss
    weights: dict[str, Any] = {
        "equivariance_value": loss.equivariance_value,
        "equivariance_jacobian": loss.equivariance_jacobian,
    }
    if loss.feature_matching:
        weights["feature_matching"] = loss.feature_matching
    if loss.perceptual == "vgg19":
        weights["perceptual"] = loss.perceptual_weights
    train: dict[str, Any] = {
        "lr_generator": config.lr_generator,
        "lr_kp_detector": config.lr_kp_detector,
        "lr_discriminator": config.lr_discriminator,
        "batch_size": config.batch_size,
        "loss_weights": weights,
    }
    if loss.perceptual == "offline":
        train["loss"] = {"l1": loss.l1, "ms_ssim": loss.ms_ssim}
    common = config.model.to_yaml_dict()["model_params"]["common_params"]
    return {"model_params": {"common_params": common}, "train_params": _rounded(train)}


def best_record(records: Sequence[TrialRecord]) -> TrialRecord | None:
    """The complete trial of lowest score (the first of equals), or ``None``."""
    scored = [r for r in records if r.score is not None]
    return min(scored, key=lambda r: r.score) if scored else None  # type: ignore[arg-type, return-value]


def results_markdown(
    records: Sequence[TrialRecord], best_config: TrainConfig | None, study_name: str, split: str, steps: int
) -> str:
    """The results file: the table, the best trial with its settings, and why trials failed."""
    complete = [r for r in records if r.score is not None]
    best = best_record(records)
    lines = [
        f"# enliven tune: study `{study_name}`",
        "",
        f"{len(records)} trials ({len(complete)} complete). Each trains {steps} steps (the last call's setting) and "
        f"is scored by reconstruction L1 on the `{split}` split (source = first frame, absolute motion; lower is "
        "better). `lr` is the generator's learning rate (the others keep their ratio to it); the loss weights are "
        "multipliers of the base config's.",
        "",
        results_table(records),
        "",
    ]
    if best is None or best_config is None:
        lines += ["No trial has completed yet.", ""]
    else:
        lines += [
            f"## Best: trial {best.number}, L1 {best.score:.5f}",
            "",
            best.params.describe(),
            "",
            "Its settings, to copy into the training config:",
            "",
            "```yaml",
            yaml.safe_dump(best_settings(best_config), sort_keys=False).rstrip(),
            "```",
            "",
        ]
    failed = [r for r in records if r.error]
    if failed:
        lines += ["## Failed trials", ""] + [f"- trial {r.number}: {r.error}" for r in failed] + [""]
    return "\n".join(lines)


def write_results(
    path: Path,
    records: Sequence[TrialRecord],
    best_config: TrainConfig | None,
    study_name: str,
    split: str,
    steps: int,
) -> Path:
    """Write :func:`results_markdown` to ``path`` atomically."""
    with atomic_output(path) as tmp:
        Path(tmp).write_text(results_markdown(records, best_config, study_name, split, steps), encoding="utf-8")
    return path
