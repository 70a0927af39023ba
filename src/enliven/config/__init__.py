"""Model configurations: frozen dataclasses read from the authors' YAML format.

``load_model_config`` reads a FOMM, TPSMM, lite (or any registered family's) YAML file, or an already parsed
dict, detects the family (``model_params.family``, else the family whose
:attr:`~enliven.families.Family.config_signature` key ``model_params.common_params`` holds: ``num_kp`` for FOMM,
``num_tps`` for TPSMM) and returns the family's typed config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol

import yaml

from enliven.config.fomm import FommConfig
from enliven.config.lite import LiteConfig
from enliven.config.tpsmm import TpsmmConfig
from enliven.errors import ConfigError
from enliven.families import families, family_names, get_family


class ModelConfig(Protocol):
    """What every family's config provides (a frozen dataclass; see :class:`~enliven.families.Family`)."""

    family: ClassVar[str]
    image_size: int

    @property
    def num_channels(self) -> int: ...

    def to_yaml_dict(self) -> dict[str, Any]: ...


def detect_family(data: dict[str, Any]) -> str:
    """The family name of an authors'-format config dict.

    enliven's own families name themselves (``model_params.family``); the authors' are told by their keys.
    """
    if not isinstance(data, dict) or not isinstance(data.get("model_params"), dict):
        raise ConfigError("the config has no 'model_params' section; pass a FOMM or TPSMM YAML config.")
    family = data["model_params"].get("family")
    if family is not None:
        return get_family(str(family)).name
    common = data["model_params"].get("common_params") or {}
    for candidate in families():
        if candidate.config_signature is not None and candidate.config_signature in common:
            return candidate.name
    keys = " nor ".join(f"'{f.config_signature}' ({f.name.upper()})" for f in families() if f.config_signature)
    raise ConfigError(f"cannot tell the model family: model_params.common_params has neither {keys}.")


def config_from_dict(data: dict[str, Any], family: str | None = None) -> ModelConfig:
    """Build the typed config of an authors'-format dict (family detected unless given)."""
    family = family or detect_family(data)
    return get_family(family).config_class().from_yaml_dict(data)


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


__all__ = [
    "FommConfig",
    "LiteConfig",
    "ModelConfig",
    "TpsmmConfig",
    "config_from_dict",
    "detect_family",
    "family_names",
    "load_model_config",
]
