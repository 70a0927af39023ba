"""Device choice and multi-process training: ``torchrun`` sets the environment, this module reads it.

A run started by ``torchrun --nproc_per_node N -m enliven train ...`` (or ``python -m torch.distributed.run``) has
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in its environment; each process then trains on its own shard of the pair
dataset (:class:`ShardedSampler`), gradients are averaged by ``DistributedDataParallel``, and only rank 0 logs and
writes checkpoints. Without those variables everything degrades to one process and no process group.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

from enliven.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda``; the one place a device is chosen.

    Raises:
        ConfigError: ``cuda`` was asked for on a machine without a usable GPU, or the name is unknown.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was given but PyTorch sees no CUDA GPU; use --device cpu or auto.")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {name!r}; use auto, cpu or cuda.")
    return torch.device(name)


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in a (possibly one-process) run.

    Attributes:
        rank: global rank (0 for a single process).
        world_size: number of processes.
        local_rank: rank on this node; picks the GPU.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs, shows progress and writes checkpoints."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(device: torch.device) -> tuple[DistInfo, torch.device]:
    """Join the process group when launched by ``torchrun``; returns this process's info and its device.

    On CUDA each process takes GPU ``LOCAL_RANK`` and the NCCL backend; on CPU the gloo backend is used.
    """
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) <= 1:
        return DistInfo(), device
    info = DistInfo(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return info, device


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def wrap_ddp(module: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """``DistributedDataParallel`` around ``module`` in a multi-process run, else ``module`` itself.

    ``find_unused_parameters`` is on: some parts train only in some phases (TPSMM's background predictor starts
    at ``bg_start``; the AVD network is trained separately), so not every parameter gets a gradient every step.
    """
    if not info.enabled:
        return module
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)


def average_scalars(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Mean of each logged scalar over all processes (every rank must call it with the same keys)."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    packed = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(packed)
    return {k: float(v) / info.world_size for k, v in zip(keys, packed, strict=True)}


class ShardedSampler(Sampler[int]):
    """A shuffled order of the dataset per epoch, cut into one shard per process, resumable mid-epoch.

    The order is a permutation seeded by ``(seed, epoch)``, padded by wrapping around so that every shard has the
    same length, and dealt out round-robin: rank ``r`` takes positions ``r, r + world, ...``. ``skip`` drops the
    first items of this process's shard, so a resumed run continues with the batch it would have seen next.
    """

    def __init__(self, size: int, info: DistInfo, seed: int, shuffle: bool = True) -> None:
        self.size = size
        self.info = info
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.skip = 0
        self.shard_size = -(-size // info.world_size)

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch = epoch
        self.skip = skip

    def __len__(self) -> int:
        return max(0, self.shard_size - self.skip)

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        total = self.shard_size * self.info.world_size
        order = (order * (-(-total // self.size)))[:total]
        shard = order[self.info.rank :: self.info.world_size]
        return iter(shard[self.skip :])


def cpu_threads(workers: int, info: DistInfo) -> int:
    """Compute threads per process on a CPU: the cores left by the loader workers, shared by the processes.

    More threads than free cores make each convolution's threads wait on each other (on a 2-core machine with 2
    loader workers, 2 threads trained 3-4x slower than 1).
    """
    cores = os.cpu_count() or 1
    return max(1, (cores - workers * info.world_size) // info.world_size)
