"""First Order Motion Model (Siarohin et al., NeurIPS 2019), compatible with the published checkpoints."""

from __future__ import annotations

from enliven.config.fomm import FOMM_PRESETS, FommConfig
from enliven.models.fomm.dense_motion import DenseMotionNetwork, DenseMotionSource
from enliven.models.fomm.discriminator import DiscriminatorOutput, MultiScaleDiscriminator
from enliven.models.fomm.generator import FommSourceEncoding, OcclusionAwareGenerator
from enliven.models.fomm.model import FommModel, build_discriminator, build_generator, build_kp_detector
from enliven.models.keypoint_detector import KeypointDetector

__all__ = [
    "FOMM_PRESETS",
    "DenseMotionNetwork",
    "DenseMotionSource",
    "DiscriminatorOutput",
    "FommConfig",
    "FommModel",
    "FommSourceEncoding",
    "KeypointDetector",
    "MultiScaleDiscriminator",
    "OcclusionAwareGenerator",
    "build_discriminator",
    "build_generator",
    "build_kp_detector",
]
