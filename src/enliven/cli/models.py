"""``enliven models``: the named models and whether their weights are installed."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="list the named models and where their weights are looked for")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from enliven.weights.presets import DEFAULT_MODEL, PRESETS, models_dir

    print(f"Named models (weights are looked for in {models_dir()}; set ENLIVEN_MODELS to change):")
    width = max(len(name) for name in PRESETS)
    for name, preset in PRESETS.items():
        path = preset.weights_path()
        if path is None:
            state = "built in (random weights)"
        elif preset.bundled:
            state = "ships with enliven" if path.is_file() else f"missing {path} (reinstall enliven)"
        else:
            state = "installed" if path.is_file() else f"missing {preset.weights}"
        default = " (default)" if name == DEFAULT_MODEL else ""
        print(f"  {name:<{width}}  {preset.family:<5}  {state:<28} {preset.description}{default}")
    print(
        "Any authors' FOMM/TPSMM checkpoint (--model FILE [--config YAML]) or enliven .safetensors release works too."
    )
    from enliven.motion.generator import MotionGenerator

    labels = ", ".join(MotionGenerator.from_pretrained().labels[1:])
    print(
        "Motion model (enliven animate PHOTO --motion generated[:LABEL]|idle): enliven-motion, ships with enliven; "
        f"labels: {labels}."
    )
    return 0
