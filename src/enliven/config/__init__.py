"""Model configurations: frozen dataclasses read from the authors' YAML format.

``load_model_config`` reads a FOMM, TPSMM or lite YAML file (or an already parsed dict), detects the family
(``model_params.family``, else ``num_kp`` for FOMM, ``num_tps`` for TPSMM in ``common_params``) and returns the
typed config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from enliven.config.fomm import FommConfig
from enliven.config.lite import LiteConfig
from enliven.config.tpsmm import TpsmmConfig
from enliven.errors import ConfigError

ModelConfig = FommConfig | TpsmmConfig | LiteConfig

CONFIG_CLASSES: dict[str, type[FommConfig] | type[TpsmmConfig] | type[LiteConfig]] = {
    "fomm": FommConfig,
    "tpsmm": TpsmmConfig,
    "lite": LiteConfig,
}


def detect_family(data: dict[str, Any]) -> str:
    """Return ``"fomm"``, ``"tpsmm"`` or ``"lite"`` for an authors'-format config dict.

    enliven's own families name themselves (``model_params.family``); the authors' are told by their keys.
    """
    if not isinstance(data, dict) or not isinstance(data.get("model_params"), dict):
        raise ConfigError("the config has no 'model_params' section; pass a FOMM or TPSMM YAML config.")
    family = data["model_params"].get("family")
    if family is not None:
        if family not in CONFIG_CLASSES:
            raise ConfigError(f"unknown model family {family!r}; expected one of {', '.join(CONFIG_CLASSES)}.")
        return str(family)
    common = data["model_params"].get("common_params") or {}
    if "num_tps" in common:
        return "tpsmm"
    if "num_kp" in common:
        return "fomm"
    raise ConfigError(
        "cannot tell the model family: model_params.common_params has neither 'num_kp' (FOMM) nor 'num_tps' (TPSMM)."
    )


def config_from_dict(data: dict[str, Any], family: str | None = None) -> ModelConfig:
    """Build the typed config of an authors'-format dict (family detected unless given)."""
    family = family or detect_family(data)
    if family not in CONFIG_CLASSES:
        raise ConfigError(f"unknown model family {family!r}; expected one of {', '.join(CONFIG_CLASSES)}.")
    return CONFIG_CLASSES[family].from_yaml_dict(data)


def load_model_config(path: str | Path) -> ModelConfig:
    """Read a FOMM/TPSMM YAML config file into its typed config."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"the config file {path} does not exist; check the --config path.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"the config file {path} is not valid YAML ({err.__class__.__name__}); fix or replace it."
        ) from None
    return config_from_dict(data)
