"""Pairs per second delivered by the training DataLoader over a real FOMM-layout dataset.

Usage::

    python benchmarks/bench_loader.py DATASET [--workers 2] [--batch 8] [--size 256] [--batches 150]
        [--config AUG.yaml | --no-augmentation] [--id-sampling] [--split train]

Reports pairs/s after a warm-up (worker start-up and first batches excluded). Augmentation is the packaged default
unless ``--config`` or ``--no-augmentation`` is given.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
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
    batches = iter(loader)
    for _ in range(args.warmup):
        next(batches)
    cpu_start, own_start = _cpu_seconds(), time.process_time()
    start = time.perf_counter()
    for _ in range(args.batches):
        batch = next(batches)
    elapsed = time.perf_counter() - start
    cpu, own = _cpu_seconds() - cpu_start, time.process_time() - own_start
    pairs = args.batches * args.batch
    print(
        f"{pairs / elapsed:.0f} pairs/s ({pairs} pairs of {tuple(batch.source.shape[1:])} in {elapsed:.2f} s; "
        f"{len(dataset.clips)} clips, {len(dataset.identities)} identities, workers={args.workers}, "
        f"batch={args.batch}, augmentation={'off' if args.no_augmentation else args.config or 'default'})"
    )
    # Wall figures drop when other processes share the cores; CPU time per pair much less so.
    cores = len(os.sched_getaffinity(0))
    print(
        f"CPU: {1e3 * cpu / pairs:.2f} ms per pair while timed ({1e3 * own / pairs:.2f} of them in the loader "
        f"process, the rest in the workers), i.e. about "
        f"{cores * pairs / cpu:.0f} pairs/s if the {cores} cores were ours alone; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    return 0


def _cpu_seconds() -> float:
    """CPU seconds used so far by this process and its live children (the DataLoader workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = time.process_time()
    for child in multiprocessing.active_children():
        try:
            fields = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


if __name__ == "__main__":
    sys.exit(main())
