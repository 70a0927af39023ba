"""Configuration of the First Order Motion Model (FOMM) family, in the authors' YAML format.

:meth:`FommConfig.from_yaml_dict` reads the whole YAML dict of an official (or compatible) config file and
validates ``model_params`` once; :meth:`FommConfig.to_yaml_dict` writes it back. Optional keys take the default
of the authors' constructors when absent (e.g. ``scale_factor: 1``, ``estimate_jacobian: false``), so a config
builds the same network here as in the authors' code. :data:`FOMM_PRESETS` holds the ``model_params`` of the
eight published configs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from enliven.config._validate import check_keys, get_bool, get_int, get_list, get_number, image_size, is_number, section
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
        where = "model_params"
        params = section(data, where)
        check_keys(
            params,
            where,
            required=("common_params", "kp_detector_params", "generator_params"),
            optional=("discriminator_params",),
        )
        common_where = f"{where}.common_params"
        common = section(params, "common_params", where)
        check_keys(common, common_where, required=("num_kp", "num_channels"), optional=("estimate_jacobian",))
        num_kp = get_int(common, "num_kp", common_where, minimum=1)
        num_channels = get_int(common, "num_channels", common_where, minimum=1)
        estimate_jacobian = get_bool(common, "estimate_jacobian", common_where, False)
        disc = None
        if "discriminator_params" in params:
            disc = _read_discriminator(section(params, "discriminator_params", where))
        return cls(
            num_kp=num_kp,
            num_channels=num_channels,
            kp_detector=_read_kp_detector(section(params, "kp_detector_params", where)),
            generator=_read_generator(section(params, "generator_params", where)),
            estimate_jacobian=estimate_jacobian,
            discriminator=disc,
            image_size=image_size(data),
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
                "num_kp": self.num_kp,
                "num_channels": self.num_channels,
                "estimate_jacobian": self.estimate_jacobian,
            },
            "kp_detector_params": _non_default(
                kp, always=("temperature", "block_expansion", "max_features", "scale_factor", "num_blocks")
            ),
            "generator_params": {
                **_non_default(
                    gen,
                    always=(
                        "block_expansion",
                        "max_features",
                        "num_down_blocks",
                        "num_bottleneck_blocks",
                        "estimate_occlusion_map",
                    ),
                    skip=("dense_motion",),
                ),
                "dense_motion_params": _non_default(
                    dm, always=("block_expansion", "max_features", "num_blocks", "scale_factor")
                ),
            },
        }
        if self.discriminator is not None:
            disc = _non_default(self.discriminator, always=("scales", "block_expansion", "max_features", "num_blocks"))
            disc["scales"] = list(self.discriminator.scales)
            params["discriminator_params"] = disc
        frame_shape = [self.image_size, self.image_size, self.num_channels]
        return {"dataset_params": {"frame_shape": frame_shape}, "model_params": params}


def _read_kp_detector(d: Mapping[str, Any]) -> FommKeypointDetectorConfig:
    where = "model_params.kp_detector_params"
    check_keys(
        d,
        where,
        required=("block_expansion", "max_features", "num_blocks", "temperature"),
        optional=("scale_factor", "single_jacobian_map", "pad"),
    )
    return FommKeypointDetectorConfig(
        block_expansion=get_int(d, "block_expansion", where, minimum=1),
        max_features=get_int(d, "max_features", where, minimum=1),
        num_blocks=get_int(d, "num_blocks", where, minimum=1),
        temperature=get_number(d, "temperature", where, low=0),
        scale_factor=get_number(d, "scale_factor", where, 1, low=0, high=1),
        single_jacobian_map=get_bool(d, "single_jacobian_map", where, False),
        pad=get_int(d, "pad", where, 0),
    )


def _read_generator(d: Mapping[str, Any]) -> FommGeneratorConfig:
    where = "model_params.generator_params"
    check_keys(
        d,
        where,
        required=("block_expansion", "max_features", "num_down_blocks", "num_bottleneck_blocks", "dense_motion_params"),
        optional=("estimate_occlusion_map",),
    )
    dm_where = f"{where}.dense_motion_params"
    dm = section(d, "dense_motion_params", where)
    check_keys(
        dm,
        dm_where,
        required=("block_expansion", "max_features", "num_blocks"),
        optional=("scale_factor", "kp_variance"),
    )
    dense_motion = FommDenseMotionConfig(
        block_expansion=get_int(dm, "block_expansion", dm_where, minimum=1),
        max_features=get_int(dm, "max_features", dm_where, minimum=1),
        num_blocks=get_int(dm, "num_blocks", dm_where, minimum=1),
        scale_factor=get_number(dm, "scale_factor", dm_where, 1, low=0, high=1),
        kp_variance=get_number(dm, "kp_variance", dm_where, 0.01, low=0),
    )
    return FommGeneratorConfig(
        block_expansion=get_int(d, "block_expansion", where, minimum=1),
        max_features=get_int(d, "max_features", where, minimum=1),
        num_down_blocks=get_int(d, "num_down_blocks", where),
        num_bottleneck_blocks=get_int(d, "num_bottleneck_blocks", where),
        dense_motion=dense_motion,
        estimate_occlusion_map=get_bool(d, "estimate_occlusion_map", where, False),
    )


def _read_discriminator(d: Mapping[str, Any]) -> FommDiscriminatorConfig:
    where = "model_params.discriminator_params"
    check_keys(
        d, where, optional=("scales", "block_expansion", "max_features", "num_blocks", "sn", "use_kp", "kp_variance")
    )
    return FommDiscriminatorConfig(
        scales=get_list(d, "scales", where, lambda s: is_number(s) and 0 < s <= 1, "numbers in (0, 1]", default=()),
        block_expansion=get_int(d, "block_expansion", where, 64, minimum=1),
        max_features=get_int(d, "max_features", where, 512, minimum=1),
        num_blocks=get_int(d, "num_blocks", where, 4, minimum=1),
        sn=get_bool(d, "sn", where, False),
        use_kp=get_bool(d, "use_kp", where, False),
        kp_variance=get_number(d, "kp_variance", where, 0.01, low=0),
    )


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
            "temperature": 0.1,
            "block_expansion": 32,
            "max_features": 1024,
            "scale_factor": 0.25,
            "num_blocks": 5,
        },
        "generator_params": {
            "block_expansion": 64,
            "max_features": 512,
            "num_down_blocks": 2,
            "num_bottleneck_blocks": 6,
            "estimate_occlusion_map": True,
            "dense_motion_params": {"block_expansion": 64, "max_features": 1024, "num_blocks": 5, "scale_factor": 0.25},
        },
        "discriminator_params": {"scales": [1], "block_expansion": 32, "max_features": 512, "num_blocks": 4},
    }
    for name, extra in changes.items():
        params[name] = {**params[name], **extra}
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
