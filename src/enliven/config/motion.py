"""Configuration of the motion VAE (generated face motion) and of its training.

YAML layout (``configs/motion-vae-faces.yaml``)::

    model_params:
      family: motion_vae
      fps: 25
      num_components: 24         # expression PCA components
      hidden_channels: 128
      latent_channels: 16
      num_levels: 3              # one latent vector per 2**3 frames
      labels: [angry, happy, ...]
    dataset_params:
      window: 64
      labels: {happy: "_happy_", ...}     # clip-name pattern -> label; clips matching none are unlabelled
      identity_pattern: "^(?P<identity>[MW]\\d{3})_"
      neutral_label: neutral
    train_params: {steps: 3000, batch_size: 64, lr: 2.0e-3, kl_weight: 0.02, ...}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from enliven.config._validate import check_keys, get_int, get_list, get_number, section
from enliven.errors import ConfigError

#: The label index of unlabelled motion (and of unconditional sampling).
UNLABELLED = "none"


@dataclass(frozen=True)
class MotionVAEConfig:
    """The motion VAE's architecture (see :mod:`enliven.models.motion_vae`).

    Attributes:
        fps: frames per second of the motion it models (clips are resampled to it).
        num_components: expression PCA components per frame (of the 468 x 2 landmark offsets).
        hidden_channels: channels of the temporal convolutions.
        latent_channels: size of each latent vector.
        num_levels: temporal halvings: one latent vector per ``2 ** num_levels`` frames.
        labels: the condition labels, without ``none`` (index 0, unlabelled / unconditional).
    """

    family: ClassVar[str] = "motion_vae"
    fps: float = 25.0
    num_components: int = 24
    hidden_channels: int = 128
    latent_channels: int = 16
    num_levels: int = 3
    labels: tuple[str, ...] = ()

    @property
    def num_pose_channels(self) -> int:
        """yaw, pitch, roll, log scale, x, y."""
        return 6

    @property
    def num_features(self) -> int:
        """Per-frame feature size: the pose channels and the expression components."""
        return self.num_pose_channels + self.num_components

    @property
    def frames_per_latent(self) -> int:
        return 2**self.num_levels

    @property
    def label_names(self) -> tuple[str, ...]:
        """Every label, ``none`` first."""
        return (UNLABELLED, *self.labels)

    def label_index(self, label: str | None) -> int:
        """Index of ``label`` (``None`` or ``none``: 0).

        Raises:
            ConfigError: an unknown label (the sentence lists the known ones).
        """
        name = UNLABELLED if label in (None, "", UNLABELLED) else str(label)
        if name not in self.label_names:
            raise ConfigError(f"the motion model knows no label {name!r}; use one of {', '.join(self.label_names)}.")
        return self.label_names.index(name)

    def to_yaml_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["labels"] = list(self.labels)
        return {"model_params": {"family": self.family, **values}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MotionVAEConfig:
        """From a parsed YAML dict (the ``model_params`` section is read).

        Raises:
            ConfigError: a missing section, an unknown key, or a value of the wrong type.
        """
        params = section(data, "model_params")
        path = "model_params"
        check_keys(params, path, ("family",), tuple(f for f in cls.__dataclass_fields__ if f != "family"))
        if params["family"] != cls.family:
            raise ConfigError(f"model_params.family is {params['family']!r}; a motion VAE config says motion_vae.")
        labels = get_list(params, "labels", path, lambda x: isinstance(x, str) and x != UNLABELLED, "names", ())
        if len(set(labels)) != len(labels):
            raise ConfigError("model_params.labels names a label twice; list each once.")
        return cls(
            fps=get_number(params, "fps", path, 25.0, low=1, high=120),
            num_components=get_int(params, "num_components", path, 24, minimum=1),
            hidden_channels=get_int(params, "hidden_channels", path, 128, minimum=4),
            latent_channels=get_int(params, "latent_channels", path, 16, minimum=1),
            num_levels=get_int(params, "num_levels", path, 3, minimum=0),
            labels=labels,
        )


@dataclass(frozen=True)
class MotionDataConfig:
    """Which clips a motion VAE learns from, and how they are labelled.

    Attributes:
        window: frames per training window (a multiple of the model's frames per latent).
        labels: label -> regular expression searched in clip names; the first that matches labels the clip.
        identity_pattern: a regular expression with a group ``identity``, naming a clip's person; a person with a
            clip labelled ``neutral_label`` has their expression measured from that clip's mean (so an emotion is
            a change from their neutral face), everyone else from each clip's own mean.
        neutral_label: see ``identity_pattern``.
    """

    window: int = 64
    labels: tuple[tuple[str, str], ...] = ()
    identity_pattern: str = ""
    neutral_label: str = "neutral"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MotionDataConfig:
        params = data.get("dataset_params", {})
        path = "dataset_params"
        check_keys(params, path, (), ("window", "labels", "identity_pattern", "neutral_label", "root_dir"))
        labels = params.get("labels", {})
        if not isinstance(labels, Mapping) or not all(isinstance(v, str) for v in labels.values()):
            raise ConfigError("dataset_params.labels must map each label to a clip-name pattern (a string).")
        for pattern in (*labels.values(), params.get("identity_pattern", "")):
            try:
                re.compile(pattern)
            except re.error as err:
                raise ConfigError(f"dataset_params has an invalid pattern {pattern!r} ({err}); fix it.") from None
        return cls(
            window=get_int(params, "window", path, 64, minimum=8),
            labels=tuple((str(k), v) for k, v in labels.items()),
            identity_pattern=str(params.get("identity_pattern", "")),
            neutral_label=str(params.get("neutral_label", "neutral")),
        )


@dataclass(frozen=True)
class MotionTrainConfig:
    """Optimisation of a motion VAE.

    Attributes:
        steps: optimiser steps in all.
        batch_size: windows per step.
        lr: Adam's learning rate (cosine decay to a tenth).
        kl_weight: weight of the KL divergence per latent element (against the mean squared error per feature).
        kl_warmup: steps over which the KL weight rises from 0 (avoids collapsing the posterior early).
        velocity_weight: weight of the frame-to-frame differences' error (smooth, lively motion).
        pose_weight: weight of the six head-pose features' errors against the expression features' (1: equal).
        label_dropout: share of labelled windows shown as unlabelled (so unconditional sampling works).
        labelled_share: share of each batch drawn from labelled clips (they are few).
        checkpoint_every: steps between checkpoints (each one resumes exactly).
        seed: seeds the windows drawn and the initial weights.
    """

    steps: int = 3000
    batch_size: int = 64
    lr: float = 2e-3
    kl_weight: float = 0.02
    kl_warmup: int = 500
    velocity_weight: float = 2.0
    pose_weight: float = 1.0
    label_dropout: float = 0.2
    labelled_share: float = 0.5
    checkpoint_every: int = 500
    seed: int = 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MotionTrainConfig:
        params = data.get("train_params", {})
        path = "train_params"
        check_keys(params, path, (), tuple(cls.__dataclass_fields__))
        return cls(
            steps=get_int(params, "steps", path, 3000, minimum=1),
            batch_size=get_int(params, "batch_size", path, 64, minimum=1),
            lr=get_number(params, "lr", path, 2e-3, low=0),
            kl_weight=get_number(params, "kl_weight", path, 0.02, low=0),
            kl_warmup=get_int(params, "kl_warmup", path, 500),
            velocity_weight=get_number(params, "velocity_weight", path, 2.0, low=0),
            pose_weight=get_number(params, "pose_weight", path, 1.0, low=0),
            label_dropout=get_number(params, "label_dropout", path, 0.2, low=0, high=1),
            labelled_share=get_number(params, "labelled_share", path, 0.5, low=0, high=1),
            checkpoint_every=get_int(params, "checkpoint_every", path, 500, minimum=1),
            seed=get_int(params, "seed", path, 0),
        )
