"""One factory for every family: typed config in, model out (and what a config alone decides about its inputs)."""

from __future__ import annotations

from torch import Tensor

from enliven.config import ModelConfig
from enliven.config.fomm import FommConfig
from enliven.config.lite import LiteConfig
from enliven.config.tpsmm import TpsmmConfig
from enliven.models.base import MotionTransferModel
from enliven.types import Keypoints


def build_model(config: ModelConfig) -> MotionTransferModel:
    """Build the inference model of a config, with freshly initialised weights, in eval mode on the CPU."""
    if isinstance(config, FommConfig):
        from enliven.models.fomm import FommModel

        model: MotionTransferModel = FommModel(config)
    elif isinstance(config, TpsmmConfig):
        from enliven.models.tpsmm import TpsmmModel

        model = TpsmmModel(config)
    elif isinstance(config, LiteConfig):
        from enliven.models.lite import LiteModel

        model = LiteModel(config)
    else:  # pragma: no cover - guarded by the config loader
        raise TypeError(f"no model family for config {type(config).__name__}")
    return model.eval()


def host_source_inputs(config: ModelConfig, keypoints: Keypoints) -> dict[str, Tensor]:
    """:meth:`MotionTransferModel.host_source_inputs` of a config's model, without building the model (for a
    runtime that has the config and graphs, not the weights)."""
    if isinstance(config, LiteConfig):
        from enliven.models.lite.model import lite_host_source_inputs

        return lite_host_source_inputs(config, keypoints)
    return {}
