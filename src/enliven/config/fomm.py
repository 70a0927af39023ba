"""Configuration of the First Order Motion Model (FOMM) family, in the authors' YAML format.

:meth:`FommConfig.from_yaml_dict` reads the whole YAML dict of an official (or compatible) config file and
validates ``model_params`` once; :meth:`FommConfig.to_yaml_dict` writes it back. Optional keys take the default
of the authors' constructors when absent (e.g. ``scale_factor: 1``, ``estimate_jacobian: false``), so a config
builds the same network here as in the authors' code. :data:`FOMM_PRESETS` holds the ``model_params`` of the
eight published configs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from enliven.errors import ConfigError

Number = int | float


@dataclass(frozen=True)
class FommKeypointDetectorConfig:
    """``kp_detector_params``: the hourglass keypoint detector.

    Attributes:
        block_expansion: width of the first hourglass level.
        max_features: channel cap of the hourglass.
        num_blocks: hourglass depth (down/up blocks).
        temperature: softmax temperature of the keypoint heatmaps.
        scale_factor: the image is band-limited and resized by this factor before detection (1: not resized).
        single_jacobian_map: predict one jacobian map shared by all keypoints (mgif) instead of one per keypoint.
        pad: padding of the 7x7 keypoint/jacobian convolutions (the authors default to 0).
    """

    block_expansion: int
    max_features: int
    num_blocks: int
    temperature: float
    scale_factor: float = 1
    single_jacobian_map: bool = False
    pad: int = 0


@dataclass(frozen=True)
class FommDenseMotionConfig:
    """``generator_params.dense_motion_params``: the dense motion network.

    Attributes:
        block_expansion: width of the first hourglass level.
        max_features: channel cap of the hourglass.
        num_blocks: hourglass depth.
        scale_factor: motion is estimated at this fraction of the image size.
        kp_variance: variance of the gaussian keypoint heatmaps, in normalised units.
    """

    block_expansion: int
    max_features: int
    num_blocks: int
    scale_factor: float = 1
    kp_variance: float = 0.01


@dataclass(frozen=True)
class FommGeneratorConfig:
    """``generator_params``: the occlusion-aware generator (a Johnson-style encoder, bottleneck, decoder).

    Attributes:
        block_expansion: width after the first 7x7 convolution.
        max_features: channel cap.
        num_down_blocks: number of x2 down (and up) blocks; features are warped at ``1 / 2**num_down_blocks``.
        num_bottleneck_blocks: residual blocks between encoder and decoder.
        dense_motion: the dense motion network's parameters.
        estimate_occlusion_map: predict an occlusion map that masks the warped features.
    """

    block_expansion: int
    max_features: int
    num_down_blocks: int
    num_bottleneck_blocks: int
    dense_motion: FommDenseMotionConfig
    estimate_occlusion_map: bool = False


@dataclass(frozen=True)
class FommDiscriminatorConfig:
    """``discriminator_params``: the multi-scale patch discriminator (training only).

    Attributes:
        scales: image scales, each with its own discriminator; kept as written (``1`` and ``1.0`` name different
            checkpoint entries, ``discs.1`` and ``discs.1-0``).
        block_expansion: width of the first block.
        max_features: channel cap.
        num_blocks: number of 4x4 convolution blocks.
        sn: spectral normalisation of every convolution.
        use_kp: feed keypoint heatmaps of the driving frame alongside the image.
        kp_variance: variance of those heatmaps.
    """

    scales: tuple[Number, ...] = ()
    block_expansion: int = 64
    max_features: int = 512
    num_blocks: int = 4
    sn: bool = False
    use_kp: bool = False
    kp_variance: float = 0.01


@dataclass(frozen=True)
class FommConfig:
    """A whole FOMM configuration (``model_params`` plus the image size).

    Attributes:
        num_kp: number of keypoints.
        num_channels: image channels (3).
        kp_detector: keypoint detector parameters.
        generator: generator parameters.
        estimate_jacobian: the detector predicts a local affine jacobian per keypoint.
        discriminator: discriminator parameters, or ``None`` when the config has none (inference-only files).
        image_size: side of the square frames the model was trained on (``dataset_params.frame_shape[0]``).
    """

    family: ClassVar[str] = "fomm"

    num_kp: int
    num_channels: int
    kp_detector: FommKeypointDetectorConfig
    generator: FommGeneratorConfig
    estimate_jacobian: bool = False
    discriminator: FommDiscriminatorConfig | None = None
    image_size: int = 256

    @classmethod
    def from_yaml_dict(cls, data: dict[str, Any]) -> FommConfig:
        """Validate an authors'-format config dict (``model_params``, optionally ``dataset_params``).

        Raises:
            ConfigError: a key is missing, unknown, or has a wrong type or value.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"a FOMM config must be a mapping, got {type(data).__name__}; pass the parsed YAML.")
        params = _section(data, "model_params", "model_params")
        _check_keys(
            params, "model_params",
            required=("common_params", "kp_detector_params", "generator_params"),
            optional=("discriminator_params",),
        )
        common = _section(params, "common_params", "model_params.common_params")
        _check_keys(
            common, "model_params.common_params", required=("num_kp", "num_channels"), optional=("estimate_jacobian",)
        )
        num_kp = _positive_int(common, "num_kp", "model_params.common_params")
        num_channels = _positive_int(common, "num_channels", "model_params.common_params")
        estimate_jacobian = _bool(common, "estimate_jacobian", "model_params.common_params", False)
        disc = None
        if "discriminator_params" in params:
            disc = _read_discriminator(_section(params, "discriminator_params", "model_params.discriminator_params"))
        return cls(
            num_kp=num_kp,
            num_channels=num_channels,
            kp_detector=_read_kp_detector(_section(params, "kp_detector_params", "model_params.kp_detector_params")),
            generator=_read_generator(_section(params, "generator_params", "model_params.generator_params")),
            estimate_jacobian=estimate_jacobian,
            discriminator=disc,
            image_size=_read_image_size(data),
        )

    @classmethod
    def from_preset(cls, name: str) -> FommConfig:
        """Config of a published model (a key of :data:`FOMM_PRESETS`, e.g. ``"vox"``); image size 256."""
        if name not in FOMM_PRESETS:
            raise ConfigError(f"unknown FOMM preset {name!r}; choose one of {', '.join(FOMM_PRESETS)}.")
        return cls.from_yaml_dict({"model_params": FOMM_PRESETS[name]})

    def to_yaml_dict(self) -> dict[str, Any]:
        """The authors' format: ``{"dataset_params": {"frame_shape": ...}, "model_params": {...}}``.

        Optional keys are written only where they differ from the authors' defaults, so the official configs
        round-trip to the same ``model_params``.
        """
        kp, gen, dm = self.kp_detector, self.generator, self.generator.dense_motion
        params: dict[str, Any] = {
            "common_params": {
                "num_kp": self.num_kp, "num_channels": self.num_channels, "estimate_jacobian": self.estimate_jacobian,
            },
            "kp_detector_params": _non_default(kp, always=("temperature", "block_expansion", "max_features",
                                                           "scale_factor", "num_blocks")),
            "generator_params": {
                **_non_default(gen, always=("block_expansion", "max_features", "num_down_blocks",
                                            "num_bottleneck_blocks", "estimate_occlusion_map"), skip=("dense_motion",)),
                "dense_motion_params": _non_default(dm, always=("block_expansion", "max_features", "num_blocks",
                                                                "scale_factor")),
            },
        }
        if self.discriminator is not None:
            disc = _non_default(self.discriminator, always=("scales", "block_expansion", "max_features", "num_blocks"))
            disc["scales"] = list(self.discriminator.scales)
            params["discriminator_params"] = disc
        frame_shape = [self.image_size, self.image_size, self.num_channels]
        return {"dataset_params": {"frame_shape": frame_shape}, "model_params": params}


def _read_kp_detector(d: dict[str, Any]) -> FommKeypointDetectorConfig:
    where = "model_params.kp_detector_params"
    _check_keys(d, where, required=("block_expansion", "max_features", "num_blocks", "temperature"),
                optional=("scale_factor", "single_jacobian_map", "pad"))
    return FommKeypointDetectorConfig(
        block_expansion=_positive_int(d, "block_expansion", where),
        max_features=_positive_int(d, "max_features", where),
        num_blocks=_positive_int(d, "num_blocks", where),
        temperature=_positive_number(d, "temperature", where),
        scale_factor=_scale(d, "scale_factor", where),
        single_jacobian_map=_bool(d, "single_jacobian_map", where, False),
        pad=_int(d, "pad", where, 0, minimum=0),
    )


def _read_generator(d: dict[str, Any]) -> FommGeneratorConfig:
    where = "model_params.generator_params"
    _check_keys(d, where,
                required=("block_expansion", "max_features", "num_down_blocks", "num_bottleneck_blocks",
                          "dense_motion_params"),
                optional=("estimate_occlusion_map",))
    dm_where = f"{where}.dense_motion_params"
    dm = _section(d, "dense_motion_params", dm_where)
    _check_keys(dm, dm_where, required=("block_expansion", "max_features", "num_blocks"),
                optional=("scale_factor", "kp_variance"))
    dense_motion = FommDenseMotionConfig(
        block_expansion=_positive_int(dm, "block_expansion", dm_where),
        max_features=_positive_int(dm, "max_features", dm_where),
        num_blocks=_positive_int(dm, "num_blocks", dm_where),
        scale_factor=_scale(dm, "scale_factor", dm_where),
        kp_variance=_positive_number(dm, "kp_variance", dm_where, 0.01),
    )
    return FommGeneratorConfig(
        block_expansion=_positive_int(d, "block_expansion", where),
        max_features=_positive_int(d, "max_features", where),
        num_down_blocks=_int(d, "num_down_blocks", where, minimum=0),
        num_bottleneck_blocks=_int(d, "num_bottleneck_blocks", where, minimum=0),
        dense_motion=dense_motion,
        estimate_occlusion_map=_bool(d, "estimate_occlusion_map", where, False),
    )


def _read_discriminator(d: dict[str, Any]) -> FommDiscriminatorConfig:
    where = "model_params.discriminator_params"
    _check_keys(d, where, required=(),
                optional=("scales", "block_expansion", "max_features", "num_blocks", "sn", "use_kp", "kp_variance"))
    scales = d.get("scales", [])
    if not isinstance(scales, list | tuple) or not all(_is_number(s) and 0 < s <= 1 for s in scales):
        raise ConfigError(f"{where}.scales must be a list of numbers in (0, 1], got {scales!r}; fix the config.")
    return FommDiscriminatorConfig(
        scales=tuple(scales),
        block_expansion=_int(d, "block_expansion", where, 64, minimum=1),
        max_features=_int(d, "max_features", where, 512, minimum=1),
        num_blocks=_int(d, "num_blocks", where, 4, minimum=1),
        sn=_bool(d, "sn", where, False),
        use_kp=_bool(d, "use_kp", where, False),
        kp_variance=_positive_number(d, "kp_variance", where, 0.01),
    )


def _read_image_size(data: dict[str, Any]) -> int:
    dataset = data.get("dataset_params")
    if dataset is None:
        return 256
    if not isinstance(dataset, dict):
        raise ConfigError("dataset_params must be a mapping; fix the config.")
    shape = dataset.get("frame_shape")
    if shape is None:
        return 256
    if not isinstance(shape, list | tuple) or not shape or not _is_int(shape[0]) or shape[0] < 1:
        raise ConfigError(f"dataset_params.frame_shape must be a list like [256, 256, 3], got {shape!r}; fix it.")
    return int(shape[0])


def _section(d: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    if key not in d:
        raise ConfigError(f"the config has no '{where}' section; add it (see the official FOMM configs).")
    value = d[key]
    if not isinstance(value, dict):
        raise ConfigError(f"'{where}' must be a mapping, got {type(value).__name__}; fix the config.")
    return value


def _check_keys(d: dict[str, Any], where: str, required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    for key in required:
        if key not in d:
            raise ConfigError(f"the config is missing '{where}.{key}'; add it (see the official FOMM configs).")
    allowed = set(required) | set(optional)
    for key in d:
        if key not in allowed:
            raise ConfigError(
                f"the config has an unknown key '{where}.{key}'; remove it (allowed: {', '.join(sorted(allowed))})."
            )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _get(d: dict[str, Any], key: str, where: str, default: Any, check: Callable[[Any], bool], expected: str) -> Any:
    if key not in d:
        if default is None:
            raise ConfigError(f"the config is missing '{where}.{key}'; add it.")
        return default
    value = d[key]
    if not check(value):
        raise ConfigError(f"'{where}.{key}' must be {expected}, got {value!r}; fix the config.")
    return value


def _int(d: dict[str, Any], key: str, where: str, default: int | None = None, minimum: int = 0) -> int:
    return _get(d, key, where, default, lambda v: _is_int(v) and v >= minimum, f"an integer >= {minimum}")


def _positive_int(d: dict[str, Any], key: str, where: str) -> int:
    return _int(d, key, where, None, minimum=1)


def _positive_number(d: dict[str, Any], key: str, where: str, default: float | None = None) -> float:
    return _get(d, key, where, default, lambda v: _is_number(v) and v > 0, "a positive number")


def _scale(d: dict[str, Any], key: str, where: str) -> float:
    return _get(d, key, where, 1, lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]")


def _bool(d: dict[str, Any], key: str, where: str, default: bool) -> bool:
    return _get(d, key, where, default, lambda v: isinstance(v, bool), "true or false")


def _non_default(obj: Any, always: tuple[str, ...], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The dataclass's fields as a dict, leaving out those equal to their default unless listed in ``always``."""
    out: dict[str, Any] = {}
    for f in fields(obj):
        if f.name in skip:
            continue
        value = getattr(obj, f.name)
        if f.name in always or value != f.default:
            out[f.name] = value
    return out


def _vox_like(**changes: dict[str, Any]) -> dict[str, Any]:
    """The published 256x256 architecture shared by all official configs, with per-config changes."""
    params: dict[str, Any] = {
        "common_params": {"num_kp": 10, "num_channels": 3, "estimate_jacobian": True},
        "kp_detector_params": {
            "temperature": 0.1, "block_expansion": 32, "max_features": 1024, "scale_factor": 0.25, "num_blocks": 5,
        },
        "generator_params": {
            "block_expansion": 64, "max_features": 512, "num_down_blocks": 2, "num_bottleneck_blocks": 6,
            "estimate_occlusion_map": True,
            "dense_motion_params": {"block_expansion": 64, "max_features": 1024, "num_blocks": 5, "scale_factor": 0.25},
        },
        "discriminator_params": {"scales": [1], "block_expansion": 32, "max_features": 512, "num_blocks": 4},
    }
    for section, extra in changes.items():
        params[section] = {**params[section], **extra}
    return params


# model_params of the published configs (config/<name>-256.yaml). They share one architecture and differ in the
# discriminator (spectral norm or keypoint-conditioned) and in mgif's single jacobian map.
FOMM_PRESETS: dict[str, dict[str, Any]] = {
    "vox": _vox_like(discriminator_params={"sn": True}),
    "vox-adv": _vox_like(discriminator_params={"use_kp": True}),
    "taichi": _vox_like(),
    "taichi-adv": _vox_like(discriminator_params={"use_kp": True}),
    "nemo": _vox_like(discriminator_params={"sn": True}),
    "mgif": _vox_like(kp_detector_params={"single_jacobian_map": True}, discriminator_params={"sn": True}),
    "fashion": _vox_like(),
    "bair": _vox_like(discriminator_params={"sn": True}),
}
