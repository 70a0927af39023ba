"""Each family's training objective, and :func:`build_objectives`, which picks them for a model config.

* FOMM: reconstruction, equivariance of keypoints and jacobians, optional GAN.
* TPSMM: reconstruction, keypoint equivariance, warp loss, background loss, TPS dropout.
* lite: reconstruction (and an optional GAN), the correction's sparsity prior and the landmark flow loss: its
  keypoints are face-mesh landmarks read from the dataset, so there is nothing to make equivariant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import ClassVar

import torch
from torch import Tensor, nn

from enliven.config import ModelConfig
from enliven.config.fomm import FommConfig, FommDiscriminatorConfig
from enliven.config.lite import LiteConfig
from enliven.config.tpsmm import TpsmmConfig
from enliven.face_mesh import NUM_FACE_MESH_POINTS, OUTER_LIPS
from enliven.families import family_of
from enliven.models.factory import build_model
from enliven.models.fomm import FommModel, MultiScaleDiscriminator
from enliven.models.lite import LiteModel
from enliven.models.lite.motion import sample_flow
from enliven.models.lite.regions import polygon_mask
from enliven.models.tpsmm import BgMotionPredictor, TpsmmModel, build_bg_predictor
from enliven.models.tpsmm.keypoints import POINTS_PER_TPS
from enliven.models.tpsmm.tps import resize_grid, resize_map, sample
from enliven.pose import NUM_POSE_POINTS
from enliven.train.equivariance import TpsKernel, float32
from enliven.train.losses import DEFAULT_DISCRIMINATOR, LossConfig
from enliven.train.objectives import DiscriminatorObjective, GeneratorObjective, LandmarkPair, _Generated
from enliven.train.vgg import load_vgg19
from enliven.types import Keypoints, MotionField


class FommObjective(GeneratorObjective):
    """FOMM (Siarohin et al. 2019): reconstruction, equivariance of keypoints and jacobians, optional GAN.

    Trains ``model.kp_detector`` and ``model.generator`` (with its dense motion network).
    """

    kernel: ClassVar[TpsKernel] = "fomm"
    model: FommModel

    @classmethod
    def discriminator_keypoints(cls, config: FommConfig) -> int:
        return config.num_kp

    @classmethod
    def discriminator_config(cls, config: FommConfig) -> FommDiscriminatorConfig | None:
        return config.discriminator

    def networks(self) -> dict[str, nn.Module]:
        return {"kp_detector": self.model.kp_detector, "generator": self.model.generator}

    def _generate(
        self, source: Tensor, driving: Tensor, epoch: int, landmarks: LandmarkPair | None, plate: Tensor | None = None
    ) -> _Generated:
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

    @classmethod
    def create(
        cls,
        model: TpsmmModel,
        model_config: TpsmmConfig,
        loss_config: LossConfig,
        vgg: nn.Module | None,
        discriminator_scales: Sequence[float],
    ) -> TpsmmObjective:
        bg_predictor = build_bg_predictor(model_config) if model_config.common.bg else None
        return cls(model, loss_config, vgg, discriminator_scales, bg_predictor)

    @classmethod
    def discriminator_keypoints(cls, config: TpsmmConfig) -> int:
        return config.common.num_tps * POINTS_PER_TPS

    def __init__(
        self,
        model: TpsmmModel,
        config: LossConfig,
        vgg: nn.Module | None = None,
        discriminator_scales: Sequence[float] = (),
        bg_predictor: BgMotionPredictor | None = None,
    ) -> None:
        super().__init__(model, config, vgg, discriminator_scales)
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

    def _generate(
        self, source: Tensor, driving: Tensor, epoch: int, landmarks: LandmarkPair | None, plate: Tensor | None = None
    ) -> _Generated:
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


class LiteObjective(GeneratorObjective):
    """enliven-lite: reconstruction (and an optional GAN) from the frames' face-mesh landmarks.

    Trains ``model.encoder``, ``model.dense_motion`` and ``model.decoder``. The landmarks come with the batch
    (``landmarks=`` of :meth:`forward`); there is no keypoint detector, hence no equivariance loss. A lite model
    with learned keypoints (``keypoints: learned``) also trains ``model.kp_detector``, with the keypoint
    equivariance loss, as FOMM's.
    """

    kernel: ClassVar[TpsKernel] = "fomm"  # random warps of the equivariance loss (learned keypoints)
    model: LiteModel

    @classmethod
    def discriminator_keypoints(cls, config: LiteConfig) -> int:
        if config.keypoints == "learned":
            return config.num_kp
        return NUM_POSE_POINTS if config.keypoints == "pose" else NUM_FACE_MESH_POINTS

    def networks(self) -> dict[str, nn.Module]:
        model = self.model
        nets: dict[str, nn.Module] = {"encoder": model.encoder, "dense_motion": model.dense_motion}
        if model.kp_detector is not None:
            nets["kp_detector"] = model.kp_detector
        return nets | {"decoder": model.decoder}

    def _generate(
        self, source: Tensor, driving: Tensor, epoch: int, landmarks: LandmarkPair | None, plate: Tensor | None = None
    ) -> _Generated:
        if self.model.kp_detector is not None:
            kp_source, kp_driving = self.model.detect_keypoints(source), self.model.detect_keypoints(driving)
        elif landmarks is None:
            raise ValueError("this lite model trains on stored landmarks (face mesh or pose): the batch has none")
        else:
            kp_source, kp_driving = Keypoints(landmarks.source), Keypoints(landmarks.driving)
        output = self.model.generate(self.model.encode_source(source, kp_source, plate=plate), kp_driving)
        parts: dict[str, Tensor] = {}
        if self.config.correction and output.deformed is not None:
            parts["correction"] = self.config.correction * (output.prediction - output.deformed).abs().mean()
        if self.config.landmark_flow and landmarks is not None:
            moved = sample_flow(output.motion.deformation, landmarks.driving)
            # Only points in both frames count: pose landmarks also place cut-off limbs, outside the frame.
            seen = ((landmarks.driving.abs() <= 1).all(-1) & (landmarks.source.abs() <= 1).all(-1)).to(moved.dtype)
            error = (moved - landmarks.source).norm(dim=-1) * seen
            parts["landmark_flow"] = self.config.landmark_flow * error.sum() / seen.sum().clamp(min=1)
        if self.config.mouth_region and landmarks is not None and not self.model.body:
            parts["mouth_region"] = self.config.mouth_region * mouth_region_error(
                output.prediction, driving, landmarks.driving
            )
        return _Generated(output, kp_source, kp_driving, parts)

    def _equivariance(self, driving: Tensor, kp_driving: Keypoints) -> dict[str, Tensor]:
        if self.model.kp_detector is None:  # landmarks are given: nothing to make equivariant
            return {}
        return super()._equivariance(driving, kp_driving)


def mouth_region_error(prediction: Tensor, target: Tensor, landmarks: Tensor) -> Tensor:
    """Mean absolute error of ``B x 3 x H x W`` images inside the target's outer lip line (``B x 468 x 2``
    face-mesh landmarks, normalised), grown by ``H / 32`` pixels; 0 for frames without landmarks."""
    outline = landmarks.index_select(1, torch.tensor(OUTER_LIPS, device=landmarks.device))
    region = polygon_mask(outline.float(), prediction.shape[-1], feather=max(1, prediction.shape[-1] // 32))
    region = (region > 0).to(prediction.dtype)  # the feather grows the region; inside it every pixel counts fully
    error = (prediction - target).abs().mean(1, keepdim=True) * region
    return error.sum() / region.sum().clamp(min=1.0)


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
    objective_class = family_of(model_config).objective_class()
    num_channels = model_config.num_channels
    discriminator = None
    if loss_config.uses_discriminator:
        disc_config = (
            objective_class.discriminator_config(model_config) or loss_config.discriminator or DEFAULT_DISCRIMINATOR
        )
        # The config's fields are the discriminator's keyword arguments (see FommDiscriminatorConfig).
        num_kp = objective_class.discriminator_keypoints(model_config)
        discriminator = MultiScaleDiscriminator(num_channels=num_channels, num_kp=num_kp, **asdict(disc_config))
    scales = discriminator.scales if discriminator is not None else ()
    generator = objective_class.create(build_model(model_config), model_config, loss_config, vgg, scales)
    disc_objective = None
    if discriminator is not None:
        disc_objective = DiscriminatorObjective(discriminator, loss_config, num_channels).train()
    return generator.train(), disc_objective
