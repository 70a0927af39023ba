"""The motion VAE: a conditional sequence VAE over face motion (head pose and expression per frame).

Each frame is a feature vector: 6 head-pose channels (yaw, pitch, roll, log scale, x, y, relative to the clip) and
the expression's PCA coefficients, standardised (the PCA basis and the feature statistics are buffers, fitted on the
training data and saved with the weights). A temporal convolutional encoder halves time ``num_levels`` times into a
sequence of latent vectors (one per ``2 ** num_levels`` frames, each a diagonal Gaussian); the decoder upsamples
them back. Both see the label, as a learned embedding added at every step (label 0: unlabelled). The prior is a
standard normal per latent vector, so any length samples: draw ``ceil(T / 2 ** num_levels)`` vectors and decode.

Shapes: features ``B x T x F`` (``F = 6 + num_components``), latents ``B x T / 2 ** num_levels x latent_channels``,
labels ``B`` int64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enliven.config.motion import MotionVAEConfig

#: Landmark coordinates per frame (468 face-mesh points x 2).
EXPRESSION_SIZE = 468 * 2


@dataclass(frozen=True)
class MotionVAEOutput:
    """What a forward pass gives: ``reconstruction`` ``B x T x F``, posterior ``mean``/``log_variance``
    ``B x T' x latent_channels``."""

    reconstruction: Tensor
    mean: Tensor
    log_variance: Tensor


class TemporalBlock(nn.Module):
    """``x + conv(act(conv(act(x))))`` along time (kernel 5, replicate padding: no pull towards 0 at the ends)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.first = nn.Conv1d(channels, channels, 5, padding=2, padding_mode="replicate")
        self.second = nn.Conv1d(channels, channels, 5, padding=2, padding_mode="replicate")

    def forward(self, x: Tensor) -> Tensor:
        return x + self.second(F.leaky_relu(self.first(F.leaky_relu(x, 0.2)), 0.2))


class MotionVAE(nn.Module):
    """See the module docstring.

    Args:
        config: the architecture.
    """

    family = MotionVAEConfig.family

    def __init__(self, config: MotionVAEConfig) -> None:
        super().__init__()
        self.config = config
        hidden, latent, features = config.hidden_channels, config.latent_channels, config.num_features
        self.label_embedding = nn.Embedding(len(config.label_names), hidden)
        self.encoder_input = nn.Conv1d(features, hidden, 5, padding=2, padding_mode="replicate")
        self.encoder_levels = nn.ModuleList(
            [
                nn.Sequential(TemporalBlock(hidden), nn.Conv1d(hidden, hidden, 4, stride=2, padding=1))
                for _ in range(config.num_levels)
            ]
        )
        self.encoder_output = nn.Conv1d(hidden, 2 * latent, 3, padding=1, padding_mode="replicate")
        self.decoder_input = nn.Conv1d(latent, hidden, 3, padding=1, padding_mode="replicate")
        self.decoder_levels = nn.ModuleList(
            [
                nn.Sequential(
                    TemporalBlock(hidden),
                    nn.Upsample(scale_factor=2, mode="linear", align_corners=False),
                    nn.Conv1d(hidden, hidden, 5, padding=2, padding_mode="replicate"),
                )
                for _ in range(config.num_levels)
            ]
        )
        self.decoder_output = nn.Sequential(
            TemporalBlock(hidden), nn.Conv1d(hidden, features, 5, padding=2, padding_mode="replicate")
        )
        # The data's statistics, fitted before training (see enliven.train.motion) and saved with the weights.
        self.register_buffer("expression_mean", torch.zeros(EXPRESSION_SIZE))
        self.register_buffer("expression_basis", torch.zeros(config.num_components, EXPRESSION_SIZE))
        self.register_buffer("feature_mean", torch.zeros(features))
        self.register_buffer("feature_std", torch.ones(features))

    # -- features <-> pose and expression ----------------------------------------------------------------------
    def to_features(self, pose: Tensor, expression: Tensor) -> Tensor:
        """``B x T x 6`` pose channels and ``B x T x 468 x 2`` expressions -> ``B x T x F`` standardised features."""
        flat = expression.flatten(2) - self.expression_mean
        components = flat @ self.expression_basis.T
        return (torch.cat([pose, components], -1) - self.feature_mean) / self.feature_std

    def from_features(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Inverse of :meth:`to_features` (expressions within the PCA's span): ``(B x T x 6, B x T x 468 x 2)``."""
        raw = features * self.feature_std + self.feature_mean
        pose, components = raw[..., :6], raw[..., 6:]
        expression = components @ self.expression_basis + self.expression_mean
        return pose, expression.unflatten(-1, (-1, 2))

    # -- the VAE -----------------------------------------------------------------------------------------------
    def _condition(self, labels: Tensor) -> Tensor:
        return self.label_embedding(labels)[:, :, None]  # B x hidden x 1

    def encode(self, features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """``B x T x F`` features (``T`` a multiple of ``2 ** num_levels``) -> posterior mean and log variance,
        ``B x T / 2 ** num_levels x latent_channels`` each."""
        self._check_length(features.shape[1])
        x = self.encoder_input(features.transpose(1, 2)) + self._condition(labels)
        for level in self.encoder_levels:
            x = level(x)
        mean, log_variance = self.encoder_output(F.leaky_relu(x, 0.2)).chunk(2, dim=1)
        return mean.transpose(1, 2), log_variance.clamp(-12, 6).transpose(1, 2)

    def decode(self, latents: Tensor, labels: Tensor) -> Tensor:
        """``B x T' x latent_channels`` latents -> ``B x T' * 2 ** num_levels x F`` features."""
        x = self.decoder_input(latents.transpose(1, 2)) + self._condition(labels)
        for level in self.decoder_levels:
            x = level(x)
        return self.decoder_output(F.leaky_relu(x, 0.2)).transpose(1, 2)

    def forward(self, features: Tensor, labels: Tensor, generator: torch.Generator | None = None) -> MotionVAEOutput:
        """Reconstruct ``B x T x F`` features through a latent sampled from the posterior."""
        mean, log_variance = self.encode(features, labels)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        latents = mean + (0.5 * log_variance).exp() * noise
        return MotionVAEOutput(self.decode(latents, labels), mean, log_variance)

    def num_latents(self, num_frames: int) -> int:
        """Latent vectors that decode to at least ``num_frames`` frames."""
        return -(-num_frames // self.config.frames_per_latent)

    def _check_length(self, num_frames: int) -> None:
        if num_frames % self.config.frames_per_latent:
            raise ValueError(
                f"the motion VAE takes multiples of {self.config.frames_per_latent} frames, got {num_frames}"
            )


def kl_divergence(mean: Tensor, log_variance: Tensor) -> Tensor:
    """KL(posterior || standard normal) per latent element, averaged: a scalar."""
    return 0.5 * (mean.square() + log_variance.exp() - 1 - log_variance).mean()
