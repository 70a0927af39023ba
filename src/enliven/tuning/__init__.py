"""Hyper-parameter tuning (``enliven tune``): short training trials in a resumable Optuna study.

    >>> result = tune("configs/fomm-faces-tiny.yaml", "~/enliven-data/faces", "tune/fomm", trials=20)  # doctest: +SKIP
    >>> result.best.params, result.results                                                             # doctest: +SKIP

Optuna (the ``train`` extra) is imported when a study starts.
"""

from enliven.tuning.report import TrialRecord, TuneResult, results_table
from enliven.tuning.run import DEFAULT_STUDY, ScoreOptions, reconstruction_l1, score_split, tune
from enliven.tuning.space import FloatRange, SearchSpace, TrialParams, apply_params

__all__ = [
    "DEFAULT_STUDY",
    "FloatRange",
    "ScoreOptions",
    "SearchSpace",
    "TrialParams",
    "TrialRecord",
    "TuneResult",
    "apply_params",
    "reconstruction_l1",
    "results_table",
    "score_split",
    "tune",
]
