"""The training loop: any registered family, one or many processes, CPU or CUDA.

Each step runs the generator objective (reconstruction, equivariance, GAN and feature-matching terms, as the
:class:`~enliven.train.objectives.GeneratorObjective` of the family defines them) and, when the family trains with
a GAN, the discriminator objective on the detached prediction; each side has its own Adam optimiser (betas
``(0.5, 0.999)``, as the authors) and MultiStepLR schedule, whose epoch milestones are converted to steps. An EMA copy
of the generator-side inference model follows the weights and is what ``enliven release`` ships.

Exact resumption: the pair dataset draws item ``i`` of epoch ``e`` from its own seeded generator, the sampler's order
depends only on ``(seed, epoch)`` and skips the batches already seen, and the checkpoint holds every RNG state the
objectives draw from, so 2 steps + resume + 2 steps equal 4 steps straight.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from enliven.data import PairDataset, collate_pairs, worker_init_fn
from enliven.errors import InputError
from enliven.io import atomic_output
from enliven.train import checkpointing as ckpt
from enliven.train.config import TrainConfig, load_train_config, train_config_from_yaml
from enliven.train.distributed import (
    DistInfo,
    ShardedSampler,
    average_scalars,
    barrier,
    cpu_threads,
    init_distributed,
    resolve_device,
    shutdown_distributed,
    wrap_ddp,
)
from enliven.train.objectives import LandmarkPair
from enliven.train.visualize import TrainingLog, visuals_grid

ADAM_BETAS = (0.5, 0.999)
# Consecutive non-finite steps after which an AMP run is declared diverged.
_AMP_BAD_STREAK = 20


@dataclass(frozen=True)
class TrainResult:
    """What a run did.

    Attributes:
        run_dir: the run folder.
        step: optimisation steps done in total (including those before a resume).
        epoch: completed epochs.
        checkpoint: the last checkpoint written (rank 0), or ``None`` on other ranks.
        seconds: wall time of this call's training loop.
        steps_per_second: steps of this call divided by ``seconds``.
        losses: the last step's losses (generator and discriminator parts).
    """

    run_dir: Path
    step: int
    epoch: int
    checkpoint: Path | None
    seconds: float
    steps_per_second: float
    losses: dict[str, float] = field(default_factory=dict)


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model`` for floating parameters; buffers are copied."""
    for average, current in zip(ema.parameters(), model.parameters(), strict=True):
        average.lerp_(current.detach(), 1.0 - decay)
    for average, current in zip(ema.buffers(), model.buffers(), strict=True):
        average.copy_(current)


def _freeze_all_but(module: nn.Module, trainable: list[nn.Parameter]) -> None:
    """Parameters the optimiser does not own (e.g. TPSMM's AVD network, trained separately) need no gradient, and
    DistributedDataParallel must not wait for one."""
    keep = {id(p) for p in trainable}
    for param in module.parameters():
        if id(param) not in keep:
            param.requires_grad_(False)


class Trainer:
    """One process's share of a training run (see the module docstring).

    Args:
        config: the validated config, its dataset root set to the data folder.
        run_dir: where config, checkpoints and logs go.
        device: this process's device.
        info: this process's rank in the run.
        progress: show a console progress bar (rank 0 only).
    """

    def __init__(
        self, config: TrainConfig, run_dir: Path, device: torch.device, info: DistInfo, progress: bool = True
    ) -> None:
        from enliven.train.families import build_objectives

        self.config, self.run_dir, self.device, self.info, self.progress = config, run_dir, device, info, progress
        ckpt.seed_everything(config.seed)  # identical initial weights on every rank
        generator, discriminator = build_objectives(config.model, config.loss)
        if config.init_from:  # before the per-rank seed: loading may draw random initial weights
            copied = ckpt.warm_start(generator.model, config.init_from)
            if info.is_main:
                print(f"init_from {config.init_from}: {len(copied)} tensors copied", flush=True)
        self.generator = generator.to(device).train()
        self.discriminator = None if discriminator is None else discriminator.to(device).train()
        ckpt.seed_everything(config.seed + 7919 * info.rank)  # then different random transforms per rank
        self.ema = copy.deepcopy(self.generator.model).requires_grad_(False).eval()
        _freeze_all_but(self.generator, generator.trainable_parameters())
        self.generator_ddp = wrap_ddp(self.generator, info, device)
        self.discriminator_ddp = None if self.discriminator is None else wrap_ddp(self.discriminator, info, device)

        dataset_config = config.dataset
        if generator.model.keypoint_source.landmarks is not None:  # the model trains on stored landmarks of its kind
            dataset_config = replace(dataset_config, landmarks=generator.model.keypoint_source.landmarks)
        if getattr(generator.model, "needs_plate", False):  # and composes over its sources' background plates
            dataset_config = replace(dataset_config, plates=True)
        self.dataset = PairDataset(dataset_config)
        self.sampler = ShardedSampler(len(self.dataset), info, seed=config.seed)
        self.steps_per_epoch = self.sampler.shard_size // config.batch_size
        if self.steps_per_epoch < 1:
            raise InputError(
                f"{config.dataset.root} gives {len(self.dataset)} pairs per epoch, fewer than batch_size "
                f"{config.batch_size} x {info.world_size} processes; lower batch_size or raise num_repeats."
            )
        self.total_steps = config.max_steps or config.num_epochs * self.steps_per_epoch
        self.checkpoint_every = config.checkpoint_every or config.checkpoint_freq * self.steps_per_epoch
        self.loader = DataLoader(
            self.dataset,
            batch_size=config.batch_size,
            sampler=self.sampler,
            num_workers=config.dataloader_workers,
            collate_fn=collate_pairs,
            worker_init_fn=worker_init_fn,
            drop_last=True,
            pin_memory=device.type == "cuda",
            # The loader's own generator: creating an iterator must not draw from the global RNG (exact resume).
            generator=torch.Generator().manual_seed(config.seed),
        )
        self.optimizers = {"generator": self._generator_optimizer()}
        if self.discriminator is not None:
            params = [p for p in self.discriminator.parameters() if p.requires_grad]
            self.optimizers["discriminator"] = torch.optim.Adam(
                params, lr=config.lr_discriminator, betas=ADAM_BETAS, weight_decay=config.weight_decay
            )
        milestones = [m * self.steps_per_epoch for m in config.epoch_milestones]
        self.schedulers = {
            name: torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=config.lr_gamma)
            for name, opt in self.optimizers.items()
        }
        self.use_amp = config.amp and device.type == "cuda"
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.use_amp)
        self.step = 0
        self.bad_steps = 0
        self.data_summary = ckpt.describe_dataset(config.dataset.root, config.dataset.split)

    def _generator_optimizer(self) -> torch.optim.Optimizer:
        """Adam over the generator side; the keypoint detector (if the family names one) at ``lr_kp_detector``."""
        params = list(self.generator.trainable_parameters())
        detector = getattr(self.generator.model, "kp_detector", None)
        detector_ids = {id(p) for p in detector.parameters()} if isinstance(detector, nn.Module) else set()
        groups = [
            {"params": [p for p in params if id(p) not in detector_ids], "lr": self.config.lr_generator},
            {"params": [p for p in params if id(p) in detector_ids], "lr": self.config.lr_kp_detector},
        ]
        groups = [g for g in groups if g["params"]]
        return torch.optim.Adam(groups, betas=ADAM_BETAS, weight_decay=self.config.weight_decay)

    # ----------------------------------------------------------------------------------------- state

    def state_dict(self) -> dict:
        state = {
            "config": self.config.to_yaml(),
            "data": json.dumps(self.data_summary),
            "family": self.config.family,
            "generator_objective": self.generator.state_dict(),
            "ema": self.ema.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": ckpt.capture_rng(self.device),
            "step": self.step,
            "epoch": self.step // self.steps_per_epoch,
            "data_epoch": self.dataset.epoch,
            "steps_per_epoch": self.steps_per_epoch,
        }
        if self.discriminator is not None:
            state["discriminator_objective"] = self.discriminator.state_dict()
        for name in self.optimizers:
            state[f"optimizer_{name}"] = self.optimizers[name].state_dict()
            state[f"scheduler_{name}"] = self.schedulers[name].state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator_objective"])
        self.ema.load_state_dict(state["ema"])
        if self.discriminator is not None:
            self.discriminator.load_state_dict(state["discriminator_objective"])
        for name in self.optimizers:
            self.optimizers[name].load_state_dict(state[f"optimizer_{name}"])
            self.schedulers[name].load_state_dict(state[f"scheduler_{name}"])
        if state["scaler"]:  # empty when saved without AMP (e.g. on a CPU)
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        ckpt.restore_rng(state["rng"], self.device)
        if self.info.rank:
            ckpt.seed_everything(self.config.seed + 7919 * self.info.rank + 104729 * self.step)

    def save(self) -> Path | None:
        if not self.info.is_main:
            return None
        return ckpt.save_checkpoint(self.state_dict(), self.run_dir, self.step, self.config.keep_last)

    # ----------------------------------------------------------------------------------------- steps

    def _optimise(self, name: str, loss: torch.Tensor) -> None:
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.grad_clip is not None:
            self.scaler.unscale_(optimizer)
            params = [p for group in optimizer.param_groups for p in group["params"]]
            nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        self.scaler.step(optimizer)

    def train_step(
        self,
        source: torch.Tensor,
        driving: torch.Tensor,
        epoch: int,
        landmarks: LandmarkPair | None = None,
        plate: torch.Tensor | None = None,
    ) -> tuple[dict[str, float], object]:
        """One generator step and (when there is a discriminator) one discriminator step; returns losses, visuals."""
        disc = None if self.discriminator is None else self.discriminator.discriminator
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
            out = self.generator_ddp(source, driving, epoch=epoch, discriminator=disc, landmarks=landmarks, plate=plate)
        self._optimise("generator", out.loss)
        losses = {"generator": out.loss.detach(), **{k: v.detach() for k, v in out.parts.items()}}
        if self.discriminator_ddp is not None:
            if out.visuals is None:
                raise RuntimeError("the generator objective returned no visuals; the discriminator needs them")
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
                d_out = self.discriminator_ddp(
                    driving, out.visuals.prediction.detach(), out.visuals.kp_driving.detach()
                )
            self._optimise("discriminator", d_out.loss)
            losses.update({"discriminator": d_out.loss.detach(), **{k: v.detach() for k, v in d_out.parts.items()}})
        self.scaler.update()
        for scheduler in self.schedulers.values():
            scheduler.step()
        warmup = (1.0 + self.step) / (10.0 + self.step)  # a short EMA memory early on, so short runs use it too
        update_ema(self.ema, self.generator.model, min(self.config.ema_decay, warmup))
        self.step += 1
        return {k: float(v) for k, v in losses.items()}, out.visuals

    # ----------------------------------------------------------------------------------------- loop

    def fit(self) -> TrainResult:
        """Train until ``total_steps``; checkpoints every ``checkpoint_every`` steps and at the end."""
        log = TrainingLog(self.run_dir / "tensorboard" if self.info.is_main else None)
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            disable=not (self.progress and self.info.is_main),
            unit="step",
            dynamic_ncols=True,
        )
        window: dict[str, list[float]] = defaultdict(list)
        losses: dict[str, float] = {}
        last: Path | None = None
        start, start_step = time.perf_counter(), self.step
        try:
            while self.step < self.total_steps:
                epoch, offset = divmod(self.step, self.steps_per_epoch)
                self.dataset.set_epoch(epoch)
                self.sampler.set_epoch(epoch, skip=offset * self.config.batch_size)
                for batch in self.loader:
                    batch = batch.to(self.device, non_blocking=True)
                    landmarks = None
                    if batch.source_landmarks is not None and batch.driving_landmarks is not None:
                        landmarks = LandmarkPair(batch.source_landmarks, batch.driving_landmarks)
                    losses, visuals = self.train_step(batch.source, batch.driving, epoch, landmarks, batch.source_plate)
                    self._check_finite(losses)
                    for k, v in losses.items():
                        window[k].append(v)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in list(losses.items())[:4]}, refresh=False)
                    bar.update(1)
                    if self.step % self.config.log_every == 0 or self.step == self.total_steps:
                        means = average_scalars({k: sum(v) / len(v) for k, v in window.items()}, self.info)
                        log.scalars(means, self.step, prefix="loss/")
                        log.scalars(self._learning_rates(), self.step, prefix="lr/")
                        window.clear()
                    if visuals is not None and (self.step % self.config.image_every == 0 or self.step == 1):
                        log.image("samples", visuals_grid(visuals), self.step)
                    if self.step % self.checkpoint_every == 0 and self.step < self.total_steps:
                        last = self.save()
                    if self.step >= self.total_steps or self.step % self.steps_per_epoch == 0:
                        break
            seconds = time.perf_counter() - start
            last = self.save()
        finally:
            bar.close()
            log.close()
        done = self.step - start_step
        return TrainResult(
            run_dir=self.run_dir,
            step=self.step,
            epoch=self.step // self.steps_per_epoch,
            checkpoint=last,
            seconds=seconds,
            steps_per_second=done / seconds if seconds > 0 else 0.0,
            losses=losses,
        )

    def _check_finite(self, losses: dict[str, float]) -> None:
        """Stop on a diverged run. Under AMP a few overflowing steps are normal (the GradScaler skips them), so
        only a long streak stops it; in float32 the first non-finite loss does."""
        bad = [k for k, v in losses.items() if not math.isfinite(v)]
        self.bad_steps = self.bad_steps + 1 if bad else 0
        if self.bad_steps >= (_AMP_BAD_STREAK if self.use_amp else 1):
            raise FloatingPointError(
                f"training diverged at step {self.step}: non-finite {', '.join(bad)}; lower the learning rates, "
                "set grad_clip, or resume from an earlier checkpoint."
            )

    def _learning_rates(self) -> dict[str, float]:
        return {name: opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()}


def train(
    config: str | Path | TrainConfig | None,
    data: str | Path,
    out: str | Path,
    *,
    resume: bool = False,
    device: str = "auto",
    max_steps: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a motion-transfer model (any registered family) on a FOMM-layout dataset.

    Args:
        config: a training YAML (see :mod:`enliven.train.config`) or a parsed config; with ``resume`` it may be
            ``None`` (the run's saved config is used either way when resuming).
        data: the dataset folder (``enliven prepare`` output or the authors' layout).
        out: the run folder (created; must not hold a run unless ``resume``).
        resume: continue the run in ``out`` from its latest checkpoint, exactly.
        device: ``auto``, ``cpu`` or ``cuda``; under ``torchrun`` each process takes GPU ``LOCAL_RANK``.
        max_steps: stop after this many steps in total (overrides the config).
        progress: show a progress bar on the console.

    Raises:
        InputError: missing data folder, empty dataset, a run folder that already holds a run, nothing to resume.
        ConfigError: invalid config.
    """
    data, run_dir = Path(data), Path(out)
    if not data.is_dir():
        raise InputError(
            f"the dataset folder {data} does not exist; pass the folder 'enliven prepare' wrote to --data."
        )
    state = None
    if resume:
        latest = ckpt.latest_checkpoint(run_dir)
        if latest is None:
            raise InputError(f"{run_dir} holds no checkpoint to resume; train without --resume first.")
        state = ckpt.load_checkpoint(latest)
        parsed = train_config_from_yaml(state["config"])
    elif config is None:
        raise InputError("no training config given; pass --config CONFIG.yaml.")
    else:
        parsed = config if isinstance(config, TrainConfig) else load_train_config(config)
        if ckpt.latest_checkpoint(run_dir) is not None:
            raise InputError(f"{run_dir} already holds a training run; pass --resume to continue it or another --out.")
    parsed = parsed.with_overrides(data=data, max_steps=max_steps)
    info, torch_device = init_distributed(resolve_device(device))
    threads = torch.get_num_threads()
    try:
        if torch_device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        elif "OMP_NUM_THREADS" not in os.environ:
            torch.set_num_threads(cpu_threads(parsed.dataloader_workers, info))
        trainer = Trainer(parsed, run_dir, torch_device, info, progress)
        if info.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            _write_text(run_dir / ckpt.CONFIG_FILE, parsed.to_yaml())
            _write_text(run_dir / ckpt.DATA_FILE, json.dumps(trainer.data_summary, indent=1))
        if state is not None:
            trainer.load_state_dict(state)
        barrier(info)
        result = trainer.fit()
        barrier(info)
        return result
    finally:
        torch.set_num_threads(threads)
        shutdown_distributed()


def _write_text(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
