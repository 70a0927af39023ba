"""Training objectives: the self-supervised motion-transfer loss of each family and the discriminator's loss.

One training step reconstructs the driving frame from the source frame and both frames' keypoints, then sums:
the reconstruction loss (:class:`~enliven.train.losses.ReconstructionLoss`), the keypoint equivariance losses
(:mod:`enliven.train.equivariance`), with a discriminator the generator GAN and feature-matching losses, and the
family's own terms (TPSMM: warp loss and background loss). :func:`build_objectives` builds the objectives of a
model config; the trainer owns the optimisers (generator and discriminator steps are separate).

Every loss in :attr:`StepOutput.parts` is already weighted by its ``loss_weights`` entry (as the authors log them),
and ``loss`` is their sum, in float32.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enliven.config import ModelConfig
from enliven.config.fomm import FommConfig
from enliven.config.tpsmm import TpsmmConfig
from enliven.models.base import MotionTransferModel
from enliven.models.factory import build_model
from enliven.models.fomm import FommModel, MultiScaleDiscriminator
from enliven.models.tpsmm import BgMotionPredictor, TpsmmModel, build_bg_predictor
from enliven.models.tpsmm.keypoints import POINTS_PER_TPS
from enliven.models.tpsmm.tps import resize_grid, resize_map, sample
from enliven.train.equivariance import (
    RandomTransform,
    TpsKernel,
    equivariance_jacobian_loss,
    equivariance_value_loss,
    float32,
)
from enliven.train.losses import (
    DEFAULT_DISCRIMINATOR,
    ImagePyramid,
    LossConfig,
    ReconstructionLoss,
    discriminator_gan_loss,
    feature_matching_loss,
    generator_gan_loss,
)
from enliven.train.vgg import load_vgg19
from enliven.types import GeneratorOutput, Keypoints, MotionField


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

    ``forward(source, driving, epoch=, discriminator=)`` takes ``B x 3 x H x W`` frames in ``[0, 1]`` and returns
    a :class:`StepOutput`. With a discriminator (the plain module, a DDP wrapper of it, or the
    :class:`DiscriminatorObjective`) it adds the generator GAN loss (``generator_gan > 0``) and feature matching;
    the discriminator's parameters get no gradient from this step. Works under autocast (the equivariance and
    MS-SSIM math runs in float32); creates tensors on the inputs' device.

    Args:
        model: the inference model whose networks are trained.
        config: loss settings.
        num_channels: image channels.
        vgg: frozen VGG-19 for ``perceptual == "vgg19"``.
        discriminator_scales: scales of the discriminator that will be passed to :meth:`forward`, if any.
    """

    kernel: ClassVar[TpsKernel]

    def __init__(
        self,
        model: MotionTransferModel,
        config: LossConfig,
        num_channels: int,
        vgg: nn.Module | None = None,
        discriminator_scales: Sequence[float] = (),
    ) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.reconstruction = ReconstructionLoss(config, num_channels, vgg)  # type: ignore[arg-type]
        self.discriminator_pyramid = ImagePyramid(discriminator_scales, num_channels) if discriminator_scales else None

    @abstractmethod
    def networks(self) -> dict[str, nn.Module]:
        """The trained networks by checkpoint entry name."""

    @abstractmethod
    def _generate(self, source: Tensor, driving: Tensor, epoch: int) -> _Generated:
        """Detect keypoints, reconstruct ``driving`` and compute the family's own losses."""

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters of :meth:`networks` that require gradients (no VGG, no AVD network)."""
        return [p for net in self.networks().values() for p in net.parameters() if p.requires_grad]

    def forward(
        self, source: Tensor, driving: Tensor, *, epoch: int = 0, discriminator: nn.Module | None = None
    ) -> StepOutput:
        """One generator step's losses; see the class docstring."""
        gen = self._generate(source, driving, epoch)
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


class FommObjective(GeneratorObjective):
    """FOMM (Siarohin et al. 2019): reconstruction, equivariance of keypoints and jacobians, optional GAN.

    Trains ``model.kp_detector`` and ``model.generator`` (with its dense motion network).
    """

    kernel: ClassVar[TpsKernel] = "fomm"
    model: FommModel

    def __init__(
        self,
        model: FommModel,
        config: LossConfig,
        vgg: nn.Module | None = None,
        discriminator_scales: Sequence[float] = (),
    ) -> None:
        super().__init__(model, config, model.config.num_channels, vgg, discriminator_scales)

    def networks(self) -> dict[str, nn.Module]:
        return {"kp_detector": self.model.kp_detector, "generator": self.model.generator}

    def _generate(self, source: Tensor, driving: Tensor, epoch: int) -> _Generated:
        kp_source = self.model.detect_keypoints(source)
        kp_driving = self.model.detect_keypoints(driving)
        output = self.model.generator(source, kp_source, kp_driving)
        return _Generated(output, kp_source, kp_driving, {})


class TpsmmObjective(GeneratorObjective):
    """TPSMM (Zhao & Zhang 2022): reconstruction, keypoint equivariance, warp loss, background loss, TPS dropout.

    Trains ``model.kp_detector``, ``model.dense_motion_network``, ``model.inpainting_network`` and, when the config
    has ``bg``, :attr:`bg_predictor` (used from epoch ``bg_start``; before that it gets no gradient). The AVD
    network is trained separately after these, so its parameters are frozen here.

    The warp loss (Sec. 3.4) compares, at every encoder level, the source's encoder features warped by the dense
    motion with the driving frame's encoder features, both masked by that level's occlusion map; only the motion
    receives its gradient (features and occlusion are detached, as in the authors' code).

    Args:
        bg_predictor: the background motion predictor, or ``None`` (no background motion).
    """

    kernel: ClassVar[TpsKernel] = "tpsmm"
    model: TpsmmModel

    def __init__(
        self,
        model: TpsmmModel,
        config: LossConfig,
        vgg: nn.Module | None = None,
        discriminator_scales: Sequence[float] = (),
        bg_predictor: BgMotionPredictor | None = None,
    ) -> None:
        super().__init__(model, config, model.config.common.num_channels, vgg, discriminator_scales)
        self.bg_predictor = bg_predictor
        model.avd_network.requires_grad_(False)

    def networks(self) -> dict[str, nn.Module]:
        nets: dict[str, nn.Module] = {
            "kp_detector": self.model.kp_detector,
            "dense_motion_network": self.model.dense_motion_network,
            "inpainting_network": self.model.inpainting_network,
        }
        if self.bg_predictor is not None:
            nets["bg_predictor"] = self.bg_predictor
        return nets

    def _generate(self, source: Tensor, driving: Tensor, epoch: int) -> _Generated:
        cfg, model = self.config, self.model
        kp_source = model.detect_keypoints(source)
        kp_driving = model.detect_keypoints(driving)
        bg_param = None
        if self.bg_predictor is not None and epoch >= cfg.bg_start:
            bg_param = self.bg_predictor(source, driving)
        dropout_p = cfg.dropout_p(epoch) if self.training else 0.0
        features = model.inpainting_network.encode(source)
        motion_source = model.dense_motion_network.prepare_source(source, kp_source.value)
        motion = model.dense_motion_network(motion_source, kp_driving.value, bg_param=bg_param, dropout_p=dropout_p)
        output = model.inpainting_network(source, features, motion)

        parts: dict[str, Tensor] = {}
        if cfg.warp:
            parts["warp"] = cfg.warp * self._warp_loss(driving, features, motion)
        if bg_param is not None and cfg.bg:
            reverse = self.bg_predictor(driving, source)  # type: ignore[misc]
            with float32(bg_param):
                product = bg_param.float() @ reverse.float()
                parts["bg"] = cfg.bg * (torch.eye(3, device=product.device) - product).abs().mean()
        return _Generated(output, kp_source, kp_driving, parts)

    def _warp_loss(self, driving: Tensor, source_features: list[Tensor], motion: MotionField) -> Tensor:
        """Sum over encoder levels of ``mean|occ * E(driving) - occ * warp(E(source))|`` (unweighted)."""
        inpainting = self.model.inpainting_network
        with torch.no_grad():
            target = inpainting.encode(driving)
        total = driving.new_zeros((), dtype=torch.float32)
        for level, (src, tgt) in enumerate(zip(source_features, target, strict=True)):
            size = (src.shape[2], src.shape[3])
            # Occlusion maps run coarse to fine: encoder level l (1/2**l of the image) uses map num_down_blocks - l.
            index = inpainting.num_down_blocks - level if inpainting.multi_mask else 0
            occlusion = resize_map(motion.occlusion[index], size).detach()
            warped = sample(src.detach(), resize_grid(motion.deformation, size)) * occlusion
            total = total + (tgt * occlusion - warped).abs().mean().float()
        return total


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


def build_objectives(
    model_config: ModelConfig, loss_config: LossConfig
) -> tuple[GeneratorObjective, DiscriminatorObjective | None]:
    """Build a freshly initialised model's objectives, in training mode on the CPU.

    A discriminator is built when :attr:`LossConfig.uses_discriminator` (``generator_gan > 0``, or feature
    matching weights with the offline reconstruction loss), from the model config's ``discriminator_params``
    (FOMM), else ``train_params.loss.discriminator``, else :data:`~enliven.train.losses.DEFAULT_DISCRIMINATOR`.
    With the VGG-19 loss the published behaviour is kept: no discriminator while ``generator_gan`` is 0.

    Raises:
        ConfigError: the VGG-19 weights file is missing or invalid.
    """
    vgg = load_vgg19(loss_config.vgg19_weights) if loss_config.perceptual == "vgg19" else None  # type: ignore[arg-type]
    if isinstance(model_config, FommConfig):
        num_channels, num_kp = model_config.num_channels, model_config.num_kp
        disc_config = model_config.discriminator
    elif isinstance(model_config, TpsmmConfig):
        num_channels, num_kp = model_config.common.num_channels, model_config.common.num_tps * POINTS_PER_TPS
        disc_config = None
    else:  # pragma: no cover - guarded by the config loader
        raise TypeError(f"no training objective for config {type(model_config).__name__}")
    discriminator = None
    if loss_config.uses_discriminator:
        disc_config = disc_config or loss_config.discriminator or DEFAULT_DISCRIMINATOR
        # The config's fields are the discriminator's keyword arguments (see FommDiscriminatorConfig).
        discriminator = MultiScaleDiscriminator(num_channels=num_channels, num_kp=num_kp, **asdict(disc_config))
    scales = discriminator.scales if discriminator is not None else ()
    model = build_model(model_config)
    generator: GeneratorObjective
    if isinstance(model, FommModel):
        generator = FommObjective(model, loss_config, vgg, scales)
    else:
        assert isinstance(model, TpsmmModel) and isinstance(model_config, TpsmmConfig)
        bg_predictor = build_bg_predictor(model_config) if model_config.common.bg else None
        generator = TpsmmObjective(model, loss_config, vgg, scales, bg_predictor)
    disc_objective = None
    if discriminator is not None:
        disc_objective = DiscriminatorObjective(discriminator, loss_config, num_channels).train()
    return generator.train(), disc_objective
