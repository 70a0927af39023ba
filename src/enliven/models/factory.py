"""One factory for every family: typed config in, model out (the family registry says which class builds it)."""

from __future__ import annotations

from torch import Tensor

from enliven.config import ModelConfig
from enliven.families import family_of
from enliven.models.base import MotionTransferModel
from enliven.types import Keypoints


def build_model(config: ModelConfig) -> MotionTransferModel:
    """Build the inference model of a config, with freshly initialised weights, in eval mode on the CPU."""
    return family_of(config).build(config).eval()


def host_source_inputs(config: ModelConfig, keypoints: Keypoints) -> dict[str, Tensor]:
    """:meth:`MotionTransferModel.host_source_inputs` of a config's model, without building the model (for a
    runtime that has the config and graphs, not the weights)."""
    return family_of(config).source_inputs(config, keypoints)
