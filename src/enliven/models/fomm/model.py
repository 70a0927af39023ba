"""The FOMM family behind the family-agnostic :class:`~enliven.models.base.MotionTransferModel` interface."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from enliven.config.fomm import FommConfig
from enliven.errors import ConfigError
from enliven.models.base import MotionTransferModel, SourceEncoding
from enliven.models.fomm.dense_motion import DenseMotionNetwork
from enliven.models.fomm.discriminator import MultiScaleDiscriminator
from enliven.models.fomm.generator import FommSourceEncoding, OcclusionAwareGenerator
from enliven.models.keypoint_detector import KeypointDetector
from enliven.types import GeneratorOutput, Keypoints, MotionMode


def build_kp_detector(config: FommConfig) -> KeypointDetector:
    """The keypoint detector of a config (checkpoint entry ``kp_detector``)."""
    kp = config.kp_detector
    return KeypointDetector(
        block_expansion=kp.block_expansion,
        num_kp=config.num_kp,
        num_channels=config.num_channels,
        max_features=kp.max_features,
        num_blocks=kp.num_blocks,
        temperature=kp.temperature,
        estimate_jacobian=config.estimate_jacobian,
        scale_factor=kp.scale_factor,
        single_jacobian_map=kp.single_jacobian_map,
        pad=kp.pad,
    )


def build_generator(config: FommConfig) -> OcclusionAwareGenerator:
    """The generator of a config, with its dense motion network (checkpoint entry ``generator``)."""
    gen, dm = config.generator, config.generator.dense_motion
    dense_motion = DenseMotionNetwork(
        block_expansion=dm.block_expansion,
        num_blocks=dm.num_blocks,
        max_features=dm.max_features,
        num_kp=config.num_kp,
        num_channels=config.num_channels,
        estimate_occlusion_map=gen.estimate_occlusion_map,
        scale_factor=dm.scale_factor,
        kp_variance=dm.kp_variance,
    )
    return OcclusionAwareGenerator(
        num_channels=config.num_channels,
        block_expansion=gen.block_expansion,
        max_features=gen.max_features,
        num_down_blocks=gen.num_down_blocks,
        num_bottleneck_blocks=gen.num_bottleneck_blocks,
        dense_motion_network=dense_motion,
    )


def build_discriminator(config: FommConfig) -> MultiScaleDiscriminator:
    """The multi-scale discriminator of a config (training only; checkpoint entry ``discriminator``).

    Raises:
        ConfigError: the config has no ``discriminator_params``.
    """
    disc = config.discriminator
    if disc is None:
        raise ConfigError("the config has no 'model_params.discriminator_params'; add them to train a discriminator.")
    return MultiScaleDiscriminator(
        scales=disc.scales,
        num_channels=config.num_channels,
        block_expansion=disc.block_expansion,
        num_blocks=disc.num_blocks,
        max_features=disc.max_features,
        sn=disc.sn,
        use_kp=disc.use_kp,
        num_kp=config.num_kp,
        kp_variance=disc.kp_variance,
    )


class FommModel(MotionTransferModel):
    """First Order Motion Model for inference: keypoint detector + occlusion-aware generator.

    ``kp_detector`` and ``generator`` carry the names of the published checkpoints' entries, so each loads
    with ``load_state_dict(checkpoint[name], strict=True)``. Images are ``B x 3 x H x W`` in ``[0, 1]``;
    keypoints ``(x, y)`` in ``[-1, 1]`` (see :mod:`enliven.types`).

    Args:
        config: the validated configuration.
    """

    family: ClassVar[str] = "fomm"
    supported_modes: ClassVar[tuple[MotionMode, ...]] = (MotionMode.RELATIVE, MotionMode.ABSOLUTE)

    def __init__(self, config: FommConfig) -> None:
        super().__init__()
        self.config = config
        self.kp_detector = build_kp_detector(config)
        self.generator = build_generator(config)

    def detect_keypoints(self, image: Tensor) -> Keypoints:
        """Keypoints (with jacobians when the config estimates them) of ``B x 3 x H x W`` images in ``[0, 1]``."""
        return self.kp_detector(image)

    def encode_source(self, source: Tensor, keypoints: Keypoints | None = None) -> FommSourceEncoding:
        """Detect the source's keypoints (unless given) and compute every source-only tensor (encoder features,
        the downsampled source, its heatmaps and the background channels of the dense motion input)."""
        return self.generator.encode_source(source, self.detect_keypoints(source) if keypoints is None else keypoints)

    def generate(self, encoding: SourceEncoding, kp_driving: Keypoints, with_deformed: bool = False) -> GeneratorOutput:
        """Animate the encoded source (batch 1) to ``B`` sets of transferred driving keypoints.

        Args:
            encoding: from :meth:`encode_source`.
            kp_driving: ``B`` keypoint sets, e.g. from :meth:`transfer_motion`.
            with_deformed: also return the warped source (visualisation only; off by default to save a warp).

        Returns:
            ``B`` predictions in ``[0, 1]``, the motion (``mask`` ``B x (K+1) x h x w``, one occlusion map).
        """
        if not isinstance(encoding, FommSourceEncoding):
            raise TypeError(f"FommModel.generate needs a FommSourceEncoding, got {type(encoding).__name__}")
        return self.generator.decode(encoding, kp_driving, with_deformed=with_deformed)
