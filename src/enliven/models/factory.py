"""One factory for every family: typed config in, model out."""

from __future__ import annotations

from enliven.config import ModelConfig
from enliven.config.fomm import FommConfig
from enliven.config.lite import LiteConfig
from enliven.config.tpsmm import TpsmmConfig
from enliven.models.base import MotionTransferModel


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
