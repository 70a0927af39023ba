"""Training the motion VAE: ``enliven train --config configs/motion-vae-faces.yaml --data DATASET``.

The clips' motion is read once (landmark files only, :func:`enliven.motion.dataset.load_motion_clips`); the
expression PCA and the feature statistics are fitted on the training split and become the model's buffers; then
random windows (a share of each batch from the few labelled clips) train the VAE: mean squared error of the
standardised features and of their frame-to-frame differences, plus the KL divergence, whose weight rises over the
first steps. Checkpoints hold the weights, the optimiser, the step and the random state, so ``--resume`` continues
exactly where a run stopped; ``enliven release RUN -o FILE`` writes the last one as a release file.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from enliven.config.motion import MotionDataConfig, MotionTrainConfig, MotionVAEConfig
from enliven.errors import ConfigError, InputError
from enliven.io import atomic_output
from enliven.models.motion_vae import MotionVAE, kl_divergence
from enliven.motion.dataset import MotionClip, load_motion_clips
from enliven.motion.generator import motion_features

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"


@dataclass(frozen=True)
class MotionTrainResult:
    """What a run did (the fields ``enliven train`` prints, as for the motion-transfer trainer)."""

    run_dir: Path
    step: int
    checkpoint: Path | None
    seconds: float
    steps_per_second: float
    losses: dict[str, float]


def is_motion_config(data: object) -> bool:
    """Whether a parsed training YAML describes a motion VAE."""
    return (
        isinstance(data, dict)
        and isinstance(data.get("model_params"), dict)
        and (data["model_params"].get("family") == MotionVAEConfig.family)
    )


def is_motion_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` is a motion VAE run (its saved config says so)."""
    saved = Path(run_dir) / "config.yaml"
    return saved.is_file() and is_motion_config(yaml.safe_load(saved.read_text(encoding="utf-8")))


def fit_statistics(model: MotionVAE, clips: list[MotionClip]) -> None:
    """Fit the expression PCA and the feature mean and deviation on ``clips``, into the model's buffers."""
    expressions = np.concatenate([c.motion.expression.reshape(len(c.motion), -1) for c in clips]).astype(np.float64)
    mean = expressions.mean(axis=0)
    _, singular, basis = np.linalg.svd(expressions - mean, full_matrices=False)
    count = model.config.num_components
    explained = (singular[:count] ** 2).sum() / (singular**2).sum()
    logger.info("motion VAE: %d expression components explain %.1f %% of the variance", count, 100 * explained)
    model.expression_mean.copy_(torch.from_numpy(mean).float())
    model.expression_basis.copy_(torch.from_numpy(basis[:count]).float())
    model.feature_mean.zero_()
    model.feature_std.fill_(1.0)
    with torch.no_grad():
        features = torch.cat([motion_features(model, c.motion) for c in clips])
    model.feature_mean.copy_(features.mean(0))
    model.feature_std.copy_(features.std(0).clamp_min(1e-6))


class WindowSampler:
    """Random ``window``-frame windows of the clips' features, with a share from labelled clips."""

    def __init__(self, model: MotionVAE, clips: list[MotionClip], window: int, labelled_share: float) -> None:
        usable = [c for c in clips if len(c.motion) >= window]
        if not usable:
            raise InputError(f"no training clip has {window} frames; lower dataset_params.window.")
        with torch.no_grad():
            self.features = [motion_features(model, c.motion) for c in usable]
        self.labels = torch.tensor([model.config.label_index(c.label) for c in usable])
        self.window = window
        lengths = torch.tensor([len(f) - window + 1 for f in self.features], dtype=torch.float64)
        labelled = self.labels > 0
        # Each clip drawn in proportion to its windows, within its group (labelled or not).
        self.weights = []
        for group, share in ((labelled, labelled_share), (~labelled, 1 - labelled_share)):
            if group.any() and share > 0:
                self.weights.append((share, torch.where(group, lengths, torch.zeros_like(lengths))))
        total = sum(share for share, _ in self.weights)
        self.probabilities = sum(share / total * w / w.sum() for share, w in self.weights)

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``B x window x F`` features and ``B`` labels."""
        chosen = torch.multinomial(self.probabilities, batch_size, replacement=True, generator=generator)
        windows = []
        for index in chosen.tolist():
            features = self.features[index]
            start = int(torch.randint(0, len(features) - self.window + 1, (1,), generator=generator))
            windows.append(features[start : start + self.window])
        return torch.stack(windows), self.labels[chosen]


def train_motion(
    config: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    resume: bool = False,
    max_steps: int | None = None,
    progress: bool = True,
) -> MotionTrainResult:
    """Train (or resume) a motion VAE run in ``out`` (see the module docstring). CPU only: it takes minutes.

    Raises:
        ConfigError: an invalid config. InputError: the dataset has no usable landmark files, a run folder that
            already holds a run (without ``resume``), or nothing to resume.
    """
    out = Path(out)
    saved = out / "config.yaml"
    if resume and saved.is_file():
        config = saved
    raw = yaml.safe_load(Path(config).read_text(encoding="utf-8"))
    if not is_motion_config(raw):
        raise ConfigError(f"{config} is not a motion VAE config (model_params.family: motion_vae).")
    model_config = MotionVAEConfig.from_dict(raw)
    data_config = MotionDataConfig.from_dict(raw)
    train_config = MotionTrainConfig.from_dict(raw)
    if data_config.window % model_config.frames_per_latent:
        raise ConfigError(
            f"dataset_params.window ({data_config.window}) must be a multiple of {model_config.frames_per_latent} "
            "(2 ** model_params.num_levels)."
        )
    if resume and latest_checkpoint(out) is None:
        raise InputError(f"{out} holds no checkpoint to resume; train without --resume first.")
    if not resume and latest_checkpoint(out) is not None:
        raise InputError(f"{out} already holds a training run; pass --resume to continue it or another --out.")
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        with atomic_output(saved) as tmp:
            shutil.copyfile(config, tmp)

    torch.manual_seed(train_config.seed)
    model = MotionVAE(model_config)
    clips = load_motion_clips(data, "train", data_config, model_config.fps)
    fit_statistics(model, clips)
    sampler = WindowSampler(model, clips, data_config.window, train_config.labelled_share)
    optimizer = torch.optim.Adam(model.parameters(), lr=train_config.lr)
    generator = torch.Generator().manual_seed(train_config.seed)
    step = 0
    latest = latest_checkpoint(out)
    if resume and latest is not None:
        state = torch.load(latest, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch"])
        step = int(state["step"])
        logger.info("motion VAE: resumed %s at step %d", latest, step)
    total = min(train_config.steps, max_steps or train_config.steps)
    weights = torch.ones(model_config.num_features)  # per feature: the pose channels first
    weights[: model_config.num_pose_channels] = train_config.pose_weight
    weights *= model_config.num_features / weights.sum()  # the mean weight stays 1

    def learning_rate(at: int) -> float:  # cosine from lr to lr / 10
        return train_config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(at / train_config.steps, 1.0))))

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=step, desc="motion VAE", unit="step")
    started, first_step = time.perf_counter(), step
    losses: dict[str, float] = {}
    checkpoint = latest
    model.train()
    while step < total:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step)
        features, labels = sampler.sample(train_config.batch_size, generator)
        drop = torch.rand(labels.shape, generator=generator) < train_config.label_dropout
        labels = torch.where(drop, torch.zeros_like(labels), labels)
        output = model(features, labels, generator=generator)
        reconstruction = ((output.reconstruction - features).square() * weights).mean()
        velocity = ((output.reconstruction.diff(dim=1) - features.diff(dim=1)).square() * weights).mean()
        kl = kl_divergence(output.mean, output.log_variance)
        warm = min(1.0, (step + 1) / max(1, train_config.kl_warmup))
        loss = reconstruction + train_config.velocity_weight * velocity + warm * train_config.kl_weight * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        step += 1
        losses = {"reconstruction": reconstruction.item(), "velocity": velocity.item(), "kl": kl.item()}
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()}, refresh=False)
        if step % train_config.checkpoint_every == 0 or step == total:
            checkpoint = save_checkpoint(out, step, model, optimizer, generator)
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - started
    return MotionTrainResult(out, step, checkpoint, seconds, (step - first_step) / max(seconds, 1e-9), losses)


def save_checkpoint(
    out: Path, step: int, model: MotionVAE, optimizer: torch.optim.Optimizer, generator: torch.Generator
) -> Path:
    """Write ``out/checkpoints/step-NNNNNN.pt`` atomically (everything an exact resume needs)."""
    path = out / CHECKPOINTS / f"step-{step:06d}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
        "torch": torch.get_rng_state(),
        "step": step,
    }
    with atomic_output(path) as tmp:
        torch.save(state, tmp)
    return path


def latest_checkpoint(out: Path) -> Path | None:
    found = sorted((Path(out) / CHECKPOINTS).glob("step-*.pt"))
    return found[-1] if found else None


def release_motion_run(run_dir: Path, output: Path, checkpoint: Path | None = None) -> tuple[Path, dict[str, str]]:
    """Write a motion VAE run's checkpoint (default: the latest) as a release file (weights, config, metadata)."""
    from enliven.weights.checkpoint import save_release

    raw = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    model = MotionVAE(MotionVAEConfig.from_dict(raw))
    checkpoint = checkpoint or latest_checkpoint(run_dir)
    if checkpoint is None:
        raise InputError(f"{run_dir} holds no checkpoint; train first.")
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    metadata = {
        "weights": "trained",
        "training_steps": str(state["step"]),
        "training_config": yaml.safe_dump(raw, sort_keys=False),
    }
    return save_release(model, output, metadata), metadata  # type: ignore[arg-type]
