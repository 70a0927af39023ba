"""Milliseconds per frame through ``Animator`` for a named architecture (random weights are fine for speed).

    python benchmarks/bench_animator.py --model fomm-vox --threads 2 --frames 20

Prints the per-frame time with the source cached (``Animator``: the source is encoded once) and, for comparison,
without caching (the source re-encoded for every frame, as the authors' demo does), measured in one run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from enliven.config import config_from_dict
from enliven.models.factory import build_model
from enliven.models.presets import PRESETS
from enliven.pipelines.animator import Animator


def _time(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fomm-vox", choices=sorted(PRESETS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    preset = PRESETS[args.model]
    model = build_model(config_from_dict(preset.config, preset.family))
    animator = Animator(model, device=args.device)
    size = animator.size
    rng = np.random.default_rng(0)
    source = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    frames = rng.integers(0, 256, (args.frames + args.warmup, size, size, 3), dtype=np.uint8)
    sync = torch.cuda.synchronize if animator.device.type == "cuda" else (lambda: None)

    animator.set_source(source)
    it = iter(frames)

    def cached() -> None:
        animator(next(it))
        sync()

    def uncached() -> None:
        animator.set_source(source)
        animator(next(it))
        sync()

    _time(cached, args.warmup)
    with_cache = _time(cached, args.frames // 2)
    it = iter(frames)
    _time(uncached, args.warmup)
    without_cache = _time(uncached, args.frames - args.frames // 2)
    print(
        f"model {args.model} ({preset.family}) at {size}x{size}, device {animator.device}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print(
        f"  source cached (Animator):   median {statistics.median(with_cache):7.1f} ms/frame "
        f"(min {min(with_cache):.1f}, n={len(with_cache)})"
    )
    print(
        f"  source re-encoded per frame: median {statistics.median(without_cache):7.1f} ms/frame "
        f"(min {min(without_cache):.1f}, n={len(without_cache)})"
    )


if __name__ == "__main__":
    main()
