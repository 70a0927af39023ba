"""Training objectives: the self-supervised motion-transfer loss of each family and the discriminator's loss.

One training step reconstructs the driving frame from the source frame and both frames' keypoints, then sums:
the reconstruction loss (:class:`~enliven.train.losses.ReconstructionLoss`), the keypoint equivariance losses
(:mod:`enliven.train.equivariance`), with a discriminator the generator GAN and feature-matching losses, and the
family's own terms. This module holds what all families share; :mod:`enliven.train.families` holds each family's
objective and :func:`~enliven.train.families.build_objectives`. The trainer owns the optimisers (generator and
discriminator steps are separate).

Every loss in :attr:`StepOutput.parts` is already weighted by its ``loss_weights`` entry (as the authors log them),
and ``loss`` is their sum, in float32.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enliven.models.base import MotionTransferModel
from enliven.models.fomm import MultiScaleDiscriminator
from enliven.train.equivariance import (
    RandomTransform,
    TpsKernel,
    equivariance_jacobian_loss,
    equivariance_value_loss,
)
from enliven.train.losses import (
    ImagePyramid,
    LossConfig,
    ReconstructionLoss,
    discriminator_gan_loss,
    feature_matching_loss,
    generator_gan_loss,
)
from enliven.types import GeneratorOutput, Keypoints


@dataclass(frozen=True)
class Visuals:
    """Detached tensors for image grids; images ``B x 3 x H x W`` in ``[0, 1]``.

    Attributes:
        source, driving, prediction: the step's frames and the reconstruction of ``driving``.
        deformed: the source warped by the dense motion (before inpainting), or ``None``.
        occlusion: ``B x 1 x H x W`` the finest occlusion map resized to the image (1 = visible), or ``None``.
        kp_source, kp_driving: ``B x K x 2`` keypoints, ``(x, y)`` in ``[-1, 1]``.
    """

    source: Tensor
    driving: Tensor
    prediction: Tensor
    deformed: Tensor | None
    occlusion: Tensor | None
    kp_source: Tensor
    kp_driving: Tensor


@dataclass(frozen=True)
class StepOutput:
    """Result of one objective evaluation.

    Attributes:
        loss: float32 scalar to backpropagate.
        parts: detached, weighted float32 scalars by name, for logging (``l1``, ``ms_ssim``, ``perceptual``,
            ``generator_gan``, ``feature_matching``, ``equivariance_value``, ``equivariance_jacobian``, ``warp``,
            ``bg``, ``discriminator_gan``; only those computed).
        visuals: the step's images and keypoints (generator steps), else ``None``.
    """

    loss: Tensor
    parts: dict[str, Tensor]
    visuals: Visuals | None = None


class LandmarkPair(NamedTuple):
    """Face-mesh landmarks of a batch's frames: ``B x 468 x 2`` each, normalised (:mod:`enliven.face_mesh`)."""

    source: Tensor
    driving: Tensor


@dataclass(frozen=True)
class _Generated:
    output: GeneratorOutput
    kp_source: Keypoints
    kp_driving: Keypoints
    parts: dict[str, Tensor]


def _step_output(parts: dict[str, Tensor], like: Tensor, visuals: Visuals | None = None) -> StepOutput:
    values = [v.float() for v in parts.values()]
    loss = torch.stack(values).sum() if values else like.new_zeros((), dtype=torch.float32)
    return StepOutput(loss=loss, parts={k: v.detach().float() for k, v in parts.items()}, visuals=visuals)


def unwrap_discriminator(module: nn.Module) -> MultiScaleDiscriminator:
    """The :class:`MultiScaleDiscriminator` inside a DDP wrapper or a :class:`DiscriminatorObjective`."""
    while not isinstance(module, MultiScaleDiscriminator):
        if isinstance(module, DiscriminatorObjective):
            module = module.discriminator
        elif isinstance(getattr(module, "module", None), nn.Module):  # DistributedDataParallel / DataParallel
            module = module.module  # type: ignore[assignment]
        else:
            raise TypeError(f"expected a MultiScaleDiscriminator, got {type(module).__name__}")
    return module


@contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """Stop gradients from accumulating in ``module``'s parameters (they still flow through it to its input)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class GeneratorObjective(nn.Module, ABC):
    """The generator-side loss of one family; its trainable networks live in :attr:`model` (checkpoint names).

    ``forward(source, driving, epoch=, discriminator=, landmarks=)`` takes ``B x 3 x H x W`` frames in ``[0, 1]``
    (and, for families driven by face-mesh landmarks, both frames' landmarks) and returns a :class:`StepOutput`.
    With a discriminator (the plain module, a DDP wrapper of it, or the :class:`DiscriminatorObjective`) it adds
    the generator GAN loss (``generator_gan > 0``) and feature matching; the discriminator's parameters get no
    gradient from this step. Works under autocast (the equivariance and
    MS-SSIM math runs in float32); creates tensors on the inputs' device.

    Args:
        model: the inference model whose networks are trained.
        config: loss settings.
        vgg: frozen VGG-19 for ``perceptual == "vgg19"``.
        discriminator_scales: scales of the discriminator that will be passed to :meth:`forward`, if any.
    """

    kernel: ClassVar[TpsKernel]

    def __init__(
        self,
        model: MotionTransferModel,
        config: LossConfig,
        vgg: nn.Module | None = None,
        discriminator_scales: Sequence[float] = (),
    ) -> None:
        super().__init__()
        self.model = model
        self.config = config
        channels = model.num_channels
        self.reconstruction = ReconstructionLoss(config, channels, vgg)  # type: ignore[arg-type]
        self.discriminator_pyramid = ImagePyramid(discriminator_scales, channels) if discriminator_scales else None

    @classmethod
    def create(
        cls,
        model: MotionTransferModel,
        model_config: Any,
        loss_config: LossConfig,
        vgg: nn.Module | None,
        discriminator_scales: Sequence[float],
    ) -> GeneratorObjective:
        """The objective of a freshly built ``model`` of ``model_config`` (families with extra trained networks,
        such as TPSMM's background predictor, build them here)."""
        return cls(model, loss_config, vgg, discriminator_scales)

    @classmethod
    def discriminator_keypoints(cls, model_config: Any) -> int:
        """Keypoints the discriminator may be shown (its ``num_kp``) for a model of ``model_config``."""
        raise NotImplementedError(f"{cls.__name__} does not say how many keypoints its discriminator sees")

    @classmethod
    def discriminator_config(cls, model_config: Any) -> Any:
        """The discriminator settings a model config carries (FOMM's ``discriminator_params``), or ``None``."""
        return None

    @abstractmethod
    def networks(self) -> dict[str, nn.Module]:
        """The trained networks by checkpoint entry name."""

    @abstractmethod
    def _generate(
        self, source: Tensor, driving: Tensor, epoch: int, landmarks: LandmarkPair | None, plate: Tensor | None = None
    ) -> _Generated:
        """Find keypoints, reconstruct ``driving`` and compute the family's own losses."""

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters of :meth:`networks` that require gradients (no VGG, no AVD network)."""
        return [p for net in self.networks().values() for p in net.parameters() if p.requires_grad]

    def forward(
        self,
        source: Tensor,
        driving: Tensor,
        *,
        epoch: int = 0,
        discriminator: nn.Module | None = None,
        landmarks: LandmarkPair | None = None,
        plate: Tensor | None = None,
    ) -> StepOutput:
        """One generator step's losses; see the class docstring. ``plate``: the sources' background plates
        (``B x 3 x H x W``, for models that compose over one)."""
        gen = self._generate(source, driving, epoch, landmarks, plate)
        prediction = gen.output.prediction
        parts = dict(self.reconstruction(prediction, driving))
        if discriminator is not None and (self.config.generator_gan or any(self.config.feature_matching)):
            parts.update(self._adversarial(unwrap_discriminator(discriminator), prediction, driving, gen.kp_driving))
        parts.update(self._equivariance(driving, gen.kp_driving))
        parts.update(gen.parts)
        return _step_output(parts, prediction, self._visuals(source, driving, gen))

    def _adversarial(
        self, discriminator: MultiScaleDiscriminator, prediction: Tensor, driving: Tensor, kp_driving: Keypoints
    ) -> dict[str, Tensor]:
        cfg = self.config
        pyramid = self.discriminator_pyramid
        if pyramid is None or pyramid.scales != discriminator.scales:
            raise ValueError("the discriminator's scales differ from those this objective was built for")
        kp = Keypoints(kp_driving.value.detach())
        parts: dict[str, Tensor] = {}
        with _frozen(discriminator):
            fake = discriminator(pyramid(prediction), kp)
        if cfg.generator_gan:
            losses = [generator_gan_loss(m.float(), cfg.gan) for m in fake.prediction_maps]
            parts["generator_gan"] = cfg.generator_gan * torch.stack(losses).sum()
        if any(cfg.feature_matching):
            with torch.no_grad():
                real = discriminator(pyramid(driving), kp)
            losses = [
                feature_matching_loss(r, f, cfg.feature_matching)
                for r, f in zip(real.feature_maps, fake.feature_maps, strict=True)
            ]
            parts["feature_matching"] = torch.stack(losses).sum()
        return parts

    def _equivariance(self, driving: Tensor, kp_driving: Keypoints) -> dict[str, Tensor]:
        cfg = self.config
        use_jacobian = cfg.equivariance_jacobian > 0 and kp_driving.jacobian is not None
        if not (cfg.equivariance_value > 0 or use_jacobian):
            return {}
        transform = RandomTransform.sample(driving.shape[0], cfg.transform, self.kernel, driving.device)
        kp_transformed = self.model.detect_keypoints(transform.transform_frame(driving))
        parts: dict[str, Tensor] = {}
        if cfg.equivariance_value > 0:
            value = equivariance_value_loss(kp_driving.value, kp_transformed.value, transform)
            parts["equivariance_value"] = cfg.equivariance_value * value
        jac_driving, jac_transformed = kp_driving.jacobian, kp_transformed.jacobian
        if use_jacobian and jac_driving is not None and jac_transformed is not None:
            value = equivariance_jacobian_loss(jac_driving, kp_transformed.value, jac_transformed, transform)
            parts["equivariance_jacobian"] = cfg.equivariance_jacobian * value
        return parts

    @staticmethod
    def _visuals(source: Tensor, driving: Tensor, gen: _Generated) -> Visuals:
        out = gen.output
        occlusion = out.motion.occlusion[-1].detach() if out.motion.occlusion else None
        if occlusion is not None and occlusion.shape[2:] != source.shape[2:]:
            occlusion = F.interpolate(occlusion, size=source.shape[2:], mode="bilinear", align_corners=False)
        return Visuals(
            source=source.detach(),
            driving=driving.detach(),
            prediction=out.prediction.detach(),
            deformed=None if out.deformed is None else out.deformed.detach(),
            occlusion=occlusion,
            kp_source=gen.kp_source.value.detach(),
            kp_driving=gen.kp_driving.value.detach(),
        )


class DiscriminatorObjective(nn.Module):
    """The discriminator step: real driving frames vs (detached) predictions, on the discriminator's pyramid.

    Args:
        discriminator: the multi-scale patch discriminator (checkpoint entry ``discriminator``).
        config: loss settings (``discriminator_gan`` weight, ``gan`` kind).
        num_channels: image channels.
    """

    def __init__(self, discriminator: MultiScaleDiscriminator, config: LossConfig, num_channels: int) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.config = config
        self.pyramid = ImagePyramid(discriminator.scales, num_channels)

    def forward(self, driving: Tensor, prediction: Tensor, kp_driving: Tensor | None = None) -> StepOutput:
        """Weighted discriminator loss (``parts["discriminator_gan"]``).

        Args:
            driving: ``B x C x H x W`` real frames in ``[0, 1]``.
            prediction: ``B x C x H x W`` generated frames (detached here).
            kp_driving: ``B x K x 2`` driving keypoints, required by keypoint-conditioned (``use_kp``) discriminators.
        """
        kp = None if kp_driving is None else Keypoints(kp_driving.detach())
        real = self.discriminator(self.pyramid(driving), kp)
        fake = self.discriminator(self.pyramid(prediction.detach()), kp)
        losses = [
            discriminator_gan_loss(r.float(), f.float(), self.config.gan)
            for r, f in zip(real.prediction_maps, fake.prediction_maps, strict=True)
        ]
        return _step_output({"discriminator_gan": self.config.discriminator_gan * torch.stack(losses).sum()}, driving)
