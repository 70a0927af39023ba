"""Pairs per second delivered by the training DataLoader over a real FOMM-layout dataset.

Usage::

    python benchmarks/bench_loader.py DATASET [--workers 2] [--batch 8] [--size 256] [--batches 150]
        [--config AUG.yaml | --no-augmentation] [--id-sampling] [--split train]

Reports pairs/s after a warm-up (worker start-up and first batches excluded). Augmentation is the packaged default
unless ``--config`` or ``--no-augmentation`` is given.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

from torch.utils.data import DataLoader

from enliven.data import (
    AugmentationConfig,
    PairDataset,
    PairDatasetConfig,
    collate_pairs,
    load_augmentation,
    worker_init_fn,
)
from enliven.errors import EnlivenError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="FOMM-layout dataset folder")
    parser.add_argument("--split", default="train")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=150, help="timed batches")
    parser.add_argument("--warmup", type=int, default=10, help="untimed batches first")
    parser.add_argument("--config", type=Path, default=None, help="augmentation YAML (default: the packaged one)")
    parser.add_argument("--no-augmentation", action="store_true")
    parser.add_argument("--id-sampling", action="store_true")
    args = parser.parse_args(argv)

    try:
        augmentation = AugmentationConfig() if args.no_augmentation else load_augmentation(args.config)
        needed = (args.batches + args.warmup) * args.batch
        probe = PairDataset(PairDatasetConfig(root=args.dataset, split=args.split, id_sampling=args.id_sampling))
        repeats = max(1, -(-needed // len(probe)))
        config = PairDatasetConfig(
            root=args.dataset,
            split=args.split,
            frame_size=(args.size, args.size),
            id_sampling=args.id_sampling,
            num_repeats=repeats,
            augmentation=augmentation,
            seed=0,
        )
        dataset = PairDataset(config, clips=probe.clips)
    except EnlivenError as err:
        print(f"bench_loader: {err}", file=sys.stderr)
        return 2

    loader = DataLoader(
        dataset,
        batch_size=args.batch,
        shuffle=True,
        num_workers=args.workers,
        collate_fn=collate_pairs,
        worker_init_fn=worker_init_fn,
        persistent_workers=False,
        drop_last=True,
    )
    cpu_start = _cpu_seconds()
    batches = iter(loader)
    for _ in range(args.warmup):
        next(batches)
    start = time.perf_counter()
    for _ in range(args.batches):
        batch = next(batches)
    elapsed = time.perf_counter() - start
    del batches  # joins the workers, so their CPU time is counted below
    cpu = _cpu_seconds() - cpu_start
    pairs = args.batches * args.batch
    total = (args.batches + args.warmup) * args.batch
    print(
        f"{pairs / elapsed:.0f} pairs/s ({pairs} pairs of {tuple(batch.source.shape[1:])} in {elapsed:.2f} s; "
        f"{len(dataset.clips)} clips, {len(dataset.identities)} identities, workers={args.workers}, "
        f"batch={args.batch}, augmentation={'off' if args.no_augmentation else args.config or 'default'})"
    )
    # Wall figures suffer when other processes share the cores; CPU time per pair does not.
    print(
        f"CPU: {1e3 * cpu / total:.2f} ms per pair over all processes (start-up included), "
        f"i.e. at most {os.cpu_count() * total / cpu:.0f} pairs/s on {os.cpu_count()} idle cores; "
        f"load average at the end {os.getloadavg()[0]:.1f}"
    )
    return 0


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


if __name__ == "__main__":
    sys.exit(main())
