"""``enliven release RUN_DIR -o model.safetensors``: turn a training run into a file ``enliven animate`` loads."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "release",
        help="write a trained run's model as one .safetensors file (weights, config, model card)",
        description="Write the model of a training run (its latest checkpoint by default, EMA weights) as an "
        "enliven release file, which 'enliven animate --model FILE' loads.",
    )
    p.add_argument("run_dir", help="the run folder written by 'enliven train' (--out)")
    p.add_argument("-o", "--output", required=True, help="the .safetensors file to write")
    p.add_argument("--checkpoint", default=None, help="a checkpoint file to release instead of the latest")
    p.add_argument("--raw", action="store_true", help="release the raw weights instead of their EMA")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from enliven.train.checkpointing import release_run
    from enliven.train.motion import is_motion_run

    checkpoint = Path(args.checkpoint) if args.checkpoint else None
    if is_motion_run(Path(args.run_dir)):
        from enliven.train.motion import release_motion_run

        path, metadata = release_motion_run(Path(args.run_dir), Path(args.output), checkpoint)
        print(f"wrote {path} (motion VAE after {metadata['training_steps']} steps)")
        return 0
    path, metadata = release_run(Path(args.run_dir), Path(args.output), checkpoint, use_ema=not args.raw)
    print(f"wrote {path} ({metadata['weights']} weights after {metadata['training_steps']} steps)")
    return 0
