"""``enliven tune --config BASE.yaml --data DATASET --out TUNE_DIR``: short training trials in a resumable study."""

from __future__ import annotations

import argparse

from enliven.cli.arguments import add_device_argument, add_threads_argument, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tune",
        help="search learning rate, batch size, loss weights and keypoint count with short trials",
        description="Train short trials of a base config with Optuna-chosen learning rate, batch size, loss-weight "
        "multipliers and keypoint count, score each by reconstruction L1 on the dataset's val split (test when "
        "there is none), and write TUNE_DIR/results.md. The study lives in TUNE_DIR/study.db: running the "
        "command again adds trials to it.",
    )
    p.add_argument("--config", required=True, help="base training YAML (as for 'enliven train')")
    p.add_argument("--data", required=True, help="dataset folder (enliven prepare output)")
    p.add_argument("--out", required=True, help="tuning folder: study.db, trials/<n>/, results.md")
    p.add_argument("--trials", type=positive_int, default=20, help="trials to add in this run (default 20)")
    p.add_argument("--steps-per-trial", type=positive_int, default=200, help="training steps per trial (default 200)")
    p.add_argument("--study", default="enliven", help="study name in the database (default enliven)")
    add_device_argument(p)
    add_threads_argument(p)
    p.add_argument("--seed", type=int, default=None, help="sampler seed (default: the config's seed)")
    p.add_argument("--progress", action="store_true", help="show each trial's training progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import optuna

    from enliven.tuning import TrialRecord, tune

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own line per trial replaces Optuna's

    def report(record: TrialRecord) -> None:
        outcome = f"L1 {record.score:.5f}" if record.score is not None else (record.error or record.state.lower())
        seconds = f" in {record.seconds:.1f} s" if record.seconds is not None else ""
        print(f"trial {record.number} {record.state.lower()}{seconds}: {record.params.describe()} -> {outcome}")

    result = tune(
        args.config,
        args.data,
        args.out,
        args.trials,
        args.steps_per_trial,
        study_name=args.study,
        device=args.device,
        seed=args.seed,
        progress=args.progress,
        on_trial=report,
    )
    print(result.results.read_text(encoding="utf-8"))
    if result.best is None:
        print(f"no trial completed; see {result.results}")
        return 1
    print(f"best: trial {result.best.number} (L1 {result.best.score:.5f}); table in {result.results}")
    return 0
