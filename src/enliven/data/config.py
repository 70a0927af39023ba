"""Augmentation settings, parsed and validated once from YAML or a dict.

Augmentation YAML (every section optional; a missing or ``null`` section is off; see ``augmentation.yaml``)::

    flip: {horizontal: 0.5, time: 0.5}        # probabilities
    rotation: {degrees: 10, p: 0.5}           # angle uniform in [-10, 10] (or give [lo, hi])
    translation: {fraction: 0.05, p: 0.5}     # shift uniform in +-5 % of the frame size, per axis
    scale: {range: [0.9, 1.1], p: 0.5}        # zoom about the centre (> 1 enlarges)
    crop: {range: [0.8, 1.0], p: 0.5}         # a window of this side fraction, placed at random, resized back
    jitter: {brightness: 0.1, contrast: 0.1, saturation: 0.1, hue: 0.05, p: 0.8}
    noise: {gaussian: 0.03, salt_pepper: 0.005, speckle: 0.1, p: 0.2}   # max std / pixel fraction / max std
    blur: {sigma: [0.3, 1.5], p: 0.1}         # Gaussian blur, sigma in pixels at the output size
    border: reflect                           # reflect | replicate | constant (black)
    value_range: [0, 1]                       # or [-1, 1]

FOMM's ``augmentation_params`` are accepted too: ``flip_param: {horizontal_flip, time_flip}`` (probability 0.5
each), ``jitter_param: {brightness, contrast, saturation, hue}``, ``rotation_param: {degrees}``,
``resize_param: {ratio}`` (a zoom range) and ``crop_param: {size}`` (with ``resize_param``, places the zoomed frame at
a random position; the output is always the configured frame size). A whole FOMM config file works as well: its
``dataset_params`` are read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from enliven.errors import ConfigError

DEFAULT_AUGMENTATION = "augmentation.yaml"
_FOMM_SECTIONS = ("flip_param", "jitter_param", "rotation_param", "resize_param", "crop_param")


def _number(value: Any, name: str, low: float = -math.inf, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(f"The augmentation setting '{name}' must be a number in [{low}, {high}], got {value!r}.")
    return float(value)


def _pair(value: Any, name: str, low: float = -math.inf, high: float = math.inf) -> tuple[float, float]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ConfigError(f"The augmentation setting '{name}' must be a pair [low, high], got {value!r}.")
    lo, hi = (_number(v, name, low, high) for v in value)
    if lo > hi:
        raise ConfigError(f"The augmentation setting '{name}' must list the low end first, got {value!r}.")
    return lo, hi


def _probability(value: Any, name: str) -> float:
    return _number(value, name, 0.0, 1.0)


@dataclass(frozen=True)
class FlipConfig:
    """Probabilities of a horizontal flip (mirror) and of a time flip (source and driving swapped)."""

    horizontal: float = 0.0
    time: float = 0.0

    def __post_init__(self) -> None:
        _probability(self.horizontal, "flip.horizontal")
        _probability(self.time, "flip.time")


@dataclass(frozen=True)
class RotationConfig:
    """Rotation angle in degrees, uniform in ``degrees`` (counter-clockwise positive), applied with probability p."""

    degrees: tuple[float, float] = (0.0, 0.0)
    p: float = 1.0

    def __post_init__(self) -> None:
        _pair(self.degrees, "rotation.degrees", -180.0, 180.0)
        _probability(self.p, "rotation.p")


@dataclass(frozen=True)
class TranslationConfig:
    """Shift per axis uniform in ``+-fraction`` of the frame width / height."""

    fraction: float = 0.0
    p: float = 1.0

    def __post_init__(self) -> None:
        _number(self.fraction, "translation.fraction", 0.0, 0.5)
        _probability(self.p, "translation.p")


@dataclass(frozen=True)
class ScaleConfig:
    """Zoom factor about the frame centre, uniform in ``range`` (> 1 enlarges the content)."""

    range: tuple[float, float] = (1.0, 1.0)
    p: float = 1.0

    def __post_init__(self) -> None:
        _pair(self.range, "scale.range", 0.1, 10.0)
        _probability(self.p, "scale.p")


@dataclass(frozen=True)
class CropConfig:
    """Square-fraction crop window: side uniform in ``range`` of the frame, placed uniformly, resized back."""

    range: tuple[float, float] = (1.0, 1.0)
    p: float = 1.0

    def __post_init__(self) -> None:
        _pair(self.range, "crop.range", 0.05, 1.0)
        _probability(self.p, "crop.p")


@dataclass(frozen=True)
class JitterConfig:
    """Colour jitter strengths as in torchvision's ColorJitter: factors uniform in ``[1 - s, 1 + s]``, hue shift
    uniform in ``[-hue, hue]`` turns of the colour wheel; applied in a random order drawn once per clip."""

    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    p: float = 1.0

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation"):
            _number(getattr(self, name), f"jitter.{name}", 0.0, 10.0)
        _number(self.hue, "jitter.hue", 0.0, 0.5)
        _probability(self.p, "jitter.p")


@dataclass(frozen=True)
class NoiseConfig:
    """Pixel noise on ``[0, 1]`` values: Gaussian (std uniform in ``[0, gaussian]``), salt-and-pepper (a fraction
    uniform in ``[0, salt_pepper]`` of pixels set to black or white), speckle (``x * (1 + n)``, std uniform in
    ``[0, speckle]``). Each enabled kind is applied with probability p; strengths are drawn once per clip."""

    gaussian: float = 0.0
    salt_pepper: float = 0.0
    speckle: float = 0.0
    p: float = 1.0

    def __post_init__(self) -> None:
        _number(self.gaussian, "noise.gaussian", 0.0, 1.0)
        _number(self.salt_pepper, "noise.salt_pepper", 0.0, 1.0)
        _number(self.speckle, "noise.speckle", 0.0, 1.0)
        _probability(self.p, "noise.p")


@dataclass(frozen=True)
class BlurConfig:
    """Gaussian blur with sigma (pixels at the output size) uniform in ``sigma``."""

    sigma: tuple[float, float] = (0.0, 0.0)
    p: float = 1.0

    def __post_init__(self) -> None:
        _pair(self.sigma, "blur.sigma", 0.0, 20.0)
        _probability(self.p, "blur.p")


class Border(StrEnum):
    """How pixels brought in from outside the frame by rotation, translation or zoom-out are filled."""

    REFLECT = "reflect"
    REPLICATE = "replicate"
    CONSTANT = "constant"


@dataclass(frozen=True)
class AugmentationConfig:
    """Clip-consistent augmentation: one set of random parameters per pair or clip (see the module docstring)."""

    flip: FlipConfig | None = None
    rotation: RotationConfig | None = None
    translation: TranslationConfig | None = None
    scale: ScaleConfig | None = None
    crop: CropConfig | None = None
    jitter: JitterConfig | None = None
    noise: NoiseConfig | None = None
    blur: BlurConfig | None = None
    border: Border = Border.REFLECT
    value_range: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        if tuple(self.value_range) not in ((0.0, 1.0), (-1.0, 1.0)):
            raise ConfigError(f"value_range must be [0, 1] or [-1, 1], got {list(self.value_range)}.")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> AugmentationConfig:
        """Parse our keys or FOMM's ``augmentation_params`` keys (not both for one transform).

        Raises:
            ConfigError: an unknown key, a wrong type or a value out of range.
        """
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError(f"The augmentation settings must be a mapping, got {type(data).__name__}.")
        data = _translate_fomm(dict(data))
        sections = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(sections))
        if unknown:
            raise ConfigError(
                f"Unknown augmentation setting '{unknown[0]}'; use {', '.join(sections)} or FOMM's "
                f"{', '.join(_FOMM_SECTIONS)}."
            )
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            if name == "border":
                kwargs[name] = _border(value)
            elif name == "value_range":
                kwargs[name] = _pair(value, "value_range")
            elif value is not None and value is not False:
                kwargs[name] = _section(_SECTION_TYPES[name], value, name)
        return cls(**kwargs)


_SECTION_TYPES: dict[str, type] = {
    "flip": FlipConfig,
    "rotation": RotationConfig,
    "translation": TranslationConfig,
    "scale": ScaleConfig,
    "crop": CropConfig,
    "jitter": JitterConfig,
    "noise": NoiseConfig,
    "blur": BlurConfig,
}
# Settings that accept one number x for the symmetric range [-x, x].
_SYMMETRIC = {("rotation", "degrees")}


def _border(value: Any) -> Border:
    try:
        return Border(value)
    except ValueError:
        raise ConfigError(f"border must be one of {[b.value for b in Border]}, got {value!r}.") from None


def _section(section_type: type, value: Any, name: str) -> Any:
    if not isinstance(value, Mapping):
        raise ConfigError(f"The augmentation section '{name}' must be a mapping of settings, got {value!r}.")
    known = {f.name: f for f in fields(section_type)}
    kwargs = {}
    for key, raw in value.items():
        if key not in known:
            raise ConfigError(f"Unknown setting '{name}.{key}'; '{name}' takes {', '.join(known)}.")
        if isinstance(known[key].default, tuple):
            if (name, key) in _SYMMETRIC and not isinstance(raw, list | tuple):
                magnitude = _number(raw, f"{name}.{key}", 0.0)
                raw = (-magnitude, magnitude)
            kwargs[key] = _pair(raw, f"{name}.{key}")
        else:
            kwargs[key] = _number(raw, f"{name}.{key}")
    return section_type(**kwargs)


def _translate_fomm(data: dict[str, Any]) -> dict[str, Any]:
    """FOMM's ``augmentation_params`` sections to ours (other keys pass through unchanged)."""
    fomm = {key: data.pop(key) for key in _FOMM_SECTIONS if key in data}
    for key, value in fomm.items():
        if value is not None and not isinstance(value, Mapping):
            raise ConfigError(f"FOMM's augmentation section '{key}' must be a mapping, got {value!r}.")
    translated: dict[str, Any] = {}
    if flip := fomm.get("flip_param"):
        _only(flip, "flip_param", {"horizontal_flip", "time_flip"})
        translated["flip"] = {
            "horizontal": 0.5 * bool(flip.get("horizontal_flip")),
            "time": 0.5 * bool(flip.get("time_flip")),
        }
    if jitter := fomm.get("jitter_param"):
        _only(jitter, "jitter_param", {"brightness", "contrast", "saturation", "hue"})
        translated["jitter"] = dict(jitter)
    if rotation := fomm.get("rotation_param"):
        _only(rotation, "rotation_param", {"degrees"})
        translated["rotation"] = {"degrees": rotation.get("degrees", 0)}
    if resize := fomm.get("resize_param"):
        _only(resize, "resize_param", {"ratio", "interpolation"})
        low, high = _pair(resize.get("ratio", (0.75, 4 / 3)), "resize_param.ratio", 0.1, 10.0)
        translated["scale"] = {"range": [low, high]}
        if fomm.get("crop_param") is not None and high > 1.0:
            # FOMM crops the enlarged frame back to size at a random place: a shift within the overflow.
            translated["translation"] = {"fraction": min(0.5, (high - 1.0) / (2.0 * high))}
    if (crop := fomm.get("crop_param")) is not None:
        _only(crop, "crop_param", {"size"})
    for ours in translated:
        if ours in data:
            raise ConfigError(f"The augmentation section '{ours}' is given both in our form and FOMM's; keep one.")
    return {**data, **translated}


def _only(section: Mapping[str, Any], name: str, allowed: set[str]) -> None:
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ConfigError(f"Unknown setting '{name}.{unknown[0]}'; FOMM's '{name}' takes {', '.join(sorted(allowed))}.")


def find_augmentation_settings(document: Any) -> Any:
    """Find the augmentation settings inside a YAML document: ours, a wrapper key, or a whole FOMM config."""
    if isinstance(document, Mapping):
        if isinstance(document.get("dataset_params"), Mapping):
            document = document["dataset_params"]
        for key in ("augmentation", "augmentation_params"):
            if key in document:
                return document[key]
    return document


def load_augmentation(path: str | Path | None = None) -> AugmentationConfig:
    """Read an augmentation YAML file; ``None`` gives the packaged default (``enliven/data/augmentation.yaml``).

    Raises:
        ConfigError: the file is missing, not YAML, or holds invalid settings.
    """
    if path is None:
        text = resources.files("enliven.data").joinpath(DEFAULT_AUGMENTATION).read_text(encoding="utf-8")
        source = f"the default {DEFAULT_AUGMENTATION}"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"Cannot read the augmentation config {path} ({err}); check the path.") from err
        source = str(path)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source} is not valid YAML ({str(err).splitlines()[0]}); fix its syntax.") from err
    try:
        return AugmentationConfig.from_dict(find_augmentation_settings(document))
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from err
