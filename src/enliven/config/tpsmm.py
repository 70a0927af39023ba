"""Configuration of the Thin-Plate Spline Motion Model (TPSMM) family.

The dataclasses mirror the ``model_params`` section of the authors' YAML files (``common_params``,
``generator_params``, ``dense_motion_params``, ``avd_network_params``) key for key, so that an official config
file reads into a :class:`TpsmmConfig` and writes back unchanged. Values are validated once, when a config is
built; every mistake raises :class:`~enliven.errors.ConfigError` naming the offending key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, get_type_hints

from enliven.config._validate import as_bool, as_int, as_number, check_keys, image_size, section
from enliven.errors import ConfigError

# Every int of a TPSMM config is a count or a size; floats are written back as floats.
_CHECKS = {
    int: lambda value, path: as_int(value, path, minimum=1),
    float: lambda value, path: float(as_number(value, path)),
    bool: as_bool,
}


def _validate_fields(obj: Any, path: str) -> None:
    """Check the type of every field of a flat config dataclass (an int made float where a float is expected)."""
    hints = get_type_hints(type(obj))
    for f in fields(obj):
        object.__setattr__(obj, f.name, _CHECKS[hints[f.name]](getattr(obj, f.name), f"{path}.{f.name}"))


@dataclass(frozen=True)
class TpsmmCommonParams:
    """``model_params.common_params``: settings shared by all networks.

    Attributes:
        num_tps: number K of thin-plate-spline transformations; each has 5 control points.
        num_channels: image channels (3 for RGB).
        bg: whether training also estimates an affine background motion (``bg_predictor``); inference ignores it.
        multi_mask: whether the dense motion network predicts one occlusion map per generator resolution.
    """

    yaml_key: ClassVar[str] = "common_params"
    num_tps: int = 10
    num_channels: int = 3
    bg: bool = True
    multi_mask: bool = True

    def __post_init__(self) -> None:
        _validate_fields(self, f"model_params.{self.yaml_key}")


@dataclass(frozen=True)
class TpsmmGeneratorParams:
    """``model_params.generator_params``: the inpainting network (encoder-decoder with warped skips)."""

    yaml_key: ClassVar[str] = "generator_params"
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 3

    def __post_init__(self) -> None:
        _validate_fields(self, f"model_params.{self.yaml_key}")


@dataclass(frozen=True)
class TpsmmDenseMotionParams:
    """``model_params.dense_motion_params``: the hourglass that mixes the K+1 transformations.

    Attributes:
        scale_factor: the dense motion runs on the image downscaled by this factor (1, 1/2, 1/4 or 1/8).
    """

    yaml_key: ClassVar[str] = "dense_motion_params"
    block_expansion: int = 64
    max_features: int = 1024
    num_blocks: int = 5
    scale_factor: float = 0.25

    def __post_init__(self) -> None:
        _validate_fields(self, f"model_params.{self.yaml_key}")
        if self.num_upsamplings is None:
            raise ConfigError(
                f"The TPSMM config key model_params.{self.yaml_key}.scale_factor must be 1, 0.5, 0.25 or 0.125,"
                f" not {self.scale_factor}."
            )

    @property
    def num_upsamplings(self) -> int | None:
        """``log2(1 / scale_factor)``, or ``None`` when the scale factor is not one of 1, 1/2, 1/4, 1/8."""
        if not 0 < self.scale_factor <= 1:
            return None
        steps = round(math.log2(1 / self.scale_factor))
        return steps if steps <= 3 and math.isclose(2.0**-steps, self.scale_factor) else None


@dataclass(frozen=True)
class TpsmmAvdParams:
    """``model_params.avd_network_params``: sizes of the identity and pose codes of the AVD network."""

    yaml_key: ClassVar[str] = "avd_network_params"
    id_bottle_size: int = 128
    pose_bottle_size: int = 128

    def __post_init__(self) -> None:
        _validate_fields(self, f"model_params.{self.yaml_key}")


_SECTIONS = {
    "common": TpsmmCommonParams,
    "generator": TpsmmGeneratorParams,
    "dense_motion": TpsmmDenseMotionParams,
    "avd": TpsmmAvdParams,
}


@dataclass(frozen=True)
class TpsmmConfig:
    """A whole TPSMM model. The defaults are those of the official ``vox-256`` config.

    Attributes:
        image_size: side of the square frames the model works at (``dataset_params.frame_shape[0]``).
    """

    family: ClassVar[str] = "tpsmm"
    image_size: int = 256
    common: TpsmmCommonParams = field(default_factory=TpsmmCommonParams)
    generator: TpsmmGeneratorParams = field(default_factory=TpsmmGeneratorParams)
    dense_motion: TpsmmDenseMotionParams = field(default_factory=TpsmmDenseMotionParams)
    avd: TpsmmAvdParams = field(default_factory=TpsmmAvdParams)

    @property
    def num_channels(self) -> int:
        """Image channels (``common_params.num_channels``), as the other families' configs name it."""
        return self.common.num_channels

    def __post_init__(self) -> None:
        for name, kind in _SECTIONS.items():
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(f"TpsmmConfig.{name} must be a {kind.__name__}, not {getattr(self, name)!r}.")
        as_int(self.image_size, "dataset_params.frame_shape[0] (image_size)", minimum=1)
        self._check_consistency()

    def _check_consistency(self) -> None:
        gen, dense = self.generator, self.dense_motion
        up = dense.num_upsamplings or 0
        if self.common.multi_mask and gen.num_down_blocks != 3:
            raise ConfigError(
                "With model_params.common_params.multi_mask, model_params.generator_params.num_down_blocks must be 3"
                f" (one occlusion map per generator resolution), not {gen.num_down_blocks}."
            )
        if self.common.multi_mask and dense.num_blocks < 4 - up:
            raise ConfigError(
                f"With multi_mask and scale_factor {dense.scale_factor}, model_params.dense_motion_params.num_blocks"
                f" must be at least {4 - up}, not {dense.num_blocks}."
            )
        divisor = max(2**gen.num_down_blocks, 2 ** (dense.num_blocks + up))
        if self.image_size % divisor:
            raise ConfigError(
                f"The image size {self.image_size} (dataset_params.frame_shape) must be a multiple of {divisor}"
                " for these generator_params and dense_motion_params."
            )

    @classmethod
    def from_yaml_dict(cls, data: Mapping[str, Any]) -> TpsmmConfig:
        """Build a config from the whole dict of an authors'-format YAML file.

        ``model_params`` must hold exactly the four sections and their keys; the image size is taken from
        ``dataset_params.frame_shape[0]`` when given, else 256. Other top-level sections (training settings) are
        ignored.

        Raises:
            ConfigError: a section or key is missing, unknown, or of the wrong type.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"A TPSMM config must be a mapping with a model_params section, not {type(data).__name__}."
            )
        model_params = section(data, "model_params")
        check_keys(model_params, "model_params", required=tuple(kind.yaml_key for kind in _SECTIONS.values()))
        sections = {}
        for name, kind in _SECTIONS.items():
            values = section(model_params, kind.yaml_key, "model_params")
            check_keys(values, f"model_params.{kind.yaml_key}", required=tuple(f.name for f in fields(kind)))
            sections[name] = kind(**values)
        return cls(image_size=image_size(data), **sections)

    def to_yaml_dict(self) -> dict[str, Any]:
        """Return the authors'-format dict (``dataset_params.frame_shape`` and ``model_params``)."""
        model_params = {kind.yaml_key: asdict(getattr(self, name)) for name, kind in _SECTIONS.items()}
        frame_shape = [self.image_size, self.image_size, self.common.num_channels]
        return {"dataset_params": {"frame_shape": frame_shape}, "model_params": model_params}

    @classmethod
    def from_preset(cls, name: str) -> TpsmmConfig:
        """Build the config of an official checkpoint (see :data:`TPSMM_PRESETS`)."""
        if name not in TPSMM_PRESETS:
            raise ConfigError(f"Unknown TPSMM preset {name!r}; choose one of {', '.join(TPSMM_PRESETS)}.")
        preset = TPSMM_PRESETS[name]
        size = preset["image_size"]
        return cls.from_yaml_dict(
            {"dataset_params": {"frame_shape": [size, size, 3]}, "model_params": preset["model_params"]}
        )


def _official_model_params(bg: bool) -> dict[str, dict[str, Any]]:
    # All four official TPSMM configs share these settings; only MGif trains without background motion.
    return {
        "common_params": {"num_tps": 10, "num_channels": 3, "bg": bg, "multi_mask": True},
        "generator_params": {"block_expansion": 64, "max_features": 512, "num_down_blocks": 3},
        "dense_motion_params": {"block_expansion": 64, "max_features": 1024, "num_blocks": 5, "scale_factor": 0.25},
        "avd_network_params": {"id_bottle_size": 128, "pose_bottle_size": 128},
    }


#: ``model_params`` and image size of the authors' published checkpoints, by config name.
TPSMM_PRESETS: dict[str, dict[str, Any]] = {
    "vox-256": {"image_size": 256, "model_params": _official_model_params(bg=True)},
    "taichi-256": {"image_size": 256, "model_params": _official_model_params(bg=True)},
    "ted-384": {"image_size": 384, "model_params": _official_model_params(bg=True)},
    "mgif-256": {"image_size": 256, "model_params": _official_model_params(bg=False)},
}
