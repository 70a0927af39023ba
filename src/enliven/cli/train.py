"""``enliven train --config CONFIG.yaml --data DATASET``: train a motion-transfer model (any family)."""

from __future__ import annotations

import argparse
from pathlib import Path

from enliven.cli.arguments import add_device_argument, add_threads_argument, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a motion-transfer model (FOMM, TPSMM, enliven-lite) or the motion VAE on a prepared dataset",
        description="Train a motion-transfer model on a FOMM-layout dataset (the output of 'enliven prepare'). "
        "CONFIG is the authors' YAML format (model_params, dataset_params, train_params) plus enliven's "
        "training keys. A config whose model_params.family is motion_vae trains the motion VAE on the dataset's "
        "landmark files instead (configs/motion-vae-faces.yaml). For several GPUs or nodes, launch with torchrun: "
        "'torchrun --nproc_per_node N -m enliven train ...'.",
    )
    p.add_argument("--config", default=None, help="training YAML (optional with --resume: the run's own is used)")
    p.add_argument("--data", required=True, help="dataset folder (enliven prepare output or the authors' layout)")
    p.add_argument("--out", default=None, help="run folder for config, checkpoints and logs (default runs/<config>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    add_device_argument(p)
    add_threads_argument(p)
    p.add_argument("--max-steps", type=positive_int, default=None, help="stop after this many steps in total")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from enliven.errors import InputError
    from enliven.train.motion import is_motion_config, train_motion
    from enliven.train.trainer import train

    if args.out is None:
        if args.config is None:
            raise InputError("pass --out RUN_DIR (or --config, whose name then names the run folder).")
        args.out = str(Path("runs") / Path(args.config).stem)
    if args.config is None and not args.resume:
        raise InputError("no training config given; pass --config CONFIG.yaml (or --resume to continue a run).")
    saved = Path(args.out) / "config.yaml"
    config_file = saved if args.resume and saved.is_file() else args.config
    if config_file is not None and Path(config_file).is_file():
        if is_motion_config(yaml.safe_load(Path(config_file).read_text(encoding="utf-8"))):
            motion = train_motion(
                config_file, args.data, args.out, resume=args.resume, max_steps=args.max_steps, progress=not args.quiet
            )
            losses = ", ".join(f"{k} {v:.4g}" for k, v in motion.losses.items())
            print(
                f"trained to step {motion.step} ({motion.steps_per_second:.1f} steps/s); checkpoint {motion.checkpoint}"
                + (f"; last losses: {losses}" if losses else "")
            )
            return 0
    result = train(
        args.config,
        args.data,
        args.out,
        resume=args.resume,
        device=args.device,
        max_steps=args.max_steps,
        progress=not args.quiet,
    )
    if result.checkpoint is not None:
        losses = ", ".join(f"{k} {v:.4g}" for k, v in result.losses.items())
        print(
            f"trained to step {result.step} ({result.steps_per_second:.2f} steps/s); "
            f"checkpoint {result.checkpoint}" + (f"; last losses: {losses}" if losses else "")
        )
    return 0
