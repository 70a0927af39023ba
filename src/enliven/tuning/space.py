"""The search space of ``enliven tune``: typed ranges, the parameters of one trial, and how they change a config.

A trial draws a :class:`TrialParams` from a :class:`SearchSpace`; :func:`apply_params` is the one place that maps
those parameters onto a :class:`~enliven.train.config.TrainConfig` (by frozen-dataclass replacement):

* ``lr``: the generator's learning rate; the keypoint detector's and discriminator's keep their ratio to it;
* ``batch_size``: pairs per step;
* ``num_kp``: keypoints (FOMM ``num_kp``) or thin-plate-spline transforms (TPSMM ``num_tps``);
* ``equivariance``, ``reconstruction``, ``ms_ssim``, ``feature_matching``: multipliers of the base config's loss
  weights (``equivariance_value`` and ``equivariance_jacobian``; ``l1`` and the VGG ``perceptual`` weights;
  ``ms_ssim``; every discriminator block's feature-matching weight). A multiplier scales the whole group, so
  per-scale or per-block ratios stay as the base config has them.

A loss dimension whose base weights are all 0 changes nothing and is left out of :meth:`SearchSpace.around`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from enliven.errors import ConfigError
from enliven.families import KeypointCount, family_of
from enliven.train.config import TrainConfig

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

#: Range of the loss-weight multipliers of the default space (log-uniform around the base weights).
WEIGHT_SCALE_RANGE = (0.25, 4.0)
#: The default learning-rate range spans this factor below and above the base config's.
LR_FACTOR = 10.0


@dataclass(frozen=True)
class FloatRange:
    """A float drawn from ``[low, high]``, log-uniform by default."""

    low: float
    high: float
    log: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.low <= self.high:
            raise ConfigError(f"a search range needs 0 < low <= high, got [{self.low}, {self.high}]; fix the space.")


@dataclass(frozen=True)
class TrialParams:
    """The hyper-parameters of one trial (see the module docstring); ``None``: the base config's value."""

    lr: float | None = None
    batch_size: int | None = None
    num_kp: int | None = None
    equivariance: float | None = None
    reconstruction: float | None = None
    ms_ssim: float | None = None
    feature_matching: float | None = None

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> TrialParams:
        """Read Optuna's ``trial.params`` back (names as the fields)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in params.items() if k in known})

    def describe(self) -> str:
        """``lr=2e-04 batch_size=8 ...`` with the multipliers as ``x1.5``."""
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name == "lr":
                parts.append(f"lr={value:.2e}")
            elif isinstance(value, float):
                parts.append(f"{f.name}=x{value:.3g}")
            else:
                parts.append(f"{f.name}={value}")
        return " ".join(parts)


@dataclass(frozen=True)
class SearchSpace:
    """What ``enliven tune`` searches over; each field is a :class:`FloatRange`, a tuple of choices, or ``None``
    (not searched). The fields are :class:`TrialParams`' and mean the same."""

    lr: FloatRange
    batch_size: tuple[int, ...]
    num_kp: tuple[int, ...]
    equivariance: FloatRange | None = FloatRange(*WEIGHT_SCALE_RANGE)
    reconstruction: FloatRange | None = FloatRange(*WEIGHT_SCALE_RANGE)
    ms_ssim: FloatRange | None = FloatRange(*WEIGHT_SCALE_RANGE)
    feature_matching: FloatRange | None = FloatRange(*WEIGHT_SCALE_RANGE)

    def __post_init__(self) -> None:
        for name in ("batch_size", "num_kp"):
            choices = getattr(self, name)
            if not choices or any(not isinstance(c, int) or c < 1 for c in choices):
                raise ConfigError(f"the search space's {name} must be whole numbers of 1 or more, got {choices!r}.")

    @classmethod
    def around(cls, config: TrainConfig) -> SearchSpace:
        """The default space around a base config: its learning rate / 10 to x 10, half to double its batch size
        and keypoint count, loss-weight multipliers in ``WEIGHT_SCALE_RANGE`` for every loss it uses."""
        loss = config.loss
        weight = FloatRange(*WEIGHT_SCALE_RANGE)
        return cls(
            lr=FloatRange(config.lr_generator / LR_FACTOR, config.lr_generator * LR_FACTOR),
            batch_size=_half_to_double(config.batch_size),
            num_kp=_half_to_double(keypoint_count(config)),
            equivariance=weight if loss.equivariance_value or loss.equivariance_jacobian else None,
            reconstruction=weight if _reconstruction_weights(config) else None,
            ms_ssim=weight if loss.perceptual == "offline" and loss.ms_ssim else None,
            feature_matching=weight if any(loss.feature_matching) else None,
        )

    def distributions(self) -> dict[str, BaseDistribution]:
        """The searched dimensions as Optuna distributions, named after the fields."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        found: dict[str, BaseDistribution] = {}
        for f in fields(self):
            dim = getattr(self, f.name)
            if isinstance(dim, FloatRange):
                found[f.name] = FloatDistribution(dim.low, dim.high, log=dim.log)
            elif dim is not None:
                found[f.name] = CategoricalDistribution(tuple(dim))
        return found

    def base_params(self, config: TrainConfig) -> dict[str, Any] | None:
        """The base config as a point of this space (multipliers 1), or ``None`` when it lies outside."""
        point: dict[str, Any] = {"lr": config.lr_generator, "batch_size": config.batch_size}
        point["num_kp"] = keypoint_count(config)
        for f in fields(self):
            dim = getattr(self, f.name)
            if isinstance(dim, FloatRange) and f.name != "lr":
                point[f.name] = 1.0
            inside = (
                dim is None
                or (isinstance(dim, FloatRange) and dim.low <= point[f.name] <= dim.high)
                or (isinstance(dim, tuple) and point[f.name] in dim)
            )
            if not inside:
                return None
        return point


def _half_to_double(value: int) -> tuple[int, ...]:
    return tuple(sorted({max(1, value // 2), value, value * 2}))


def _reconstruction_weights(config: TrainConfig) -> tuple[float, ...]:
    loss = config.loss
    return loss.perceptual_weights if loss.perceptual == "vgg19" else ((loss.l1,) if loss.l1 else ())


def _keypoint_knob(config: TrainConfig) -> KeypointCount:
    knob = family_of(config.model).keypoint_count
    if knob is None:
        raise ConfigError(f"enliven tune cannot set the keypoint count of {config.model.family} models.")
    return knob


def keypoint_count(config: TrainConfig) -> int:
    """The keypoint count the family registers for tuning (FOMM's ``num_kp``, TPSMM's ``num_tps``)."""
    return _keypoint_knob(config).get(config.model)


def _with_keypoints(config: TrainConfig, count: int) -> TrainConfig:
    return replace(config, model=_keypoint_knob(config).replace(config.model, count))


def _scaled(values: tuple[float, ...], factor: float | None) -> tuple[float, ...]:
    return values if factor is None else tuple(v * factor for v in values)


def apply_params(config: TrainConfig, params: TrialParams) -> TrainConfig:
    """The base config with a trial's parameters (see the module docstring).

    Raises:
        ConfigError: the resulting model config is inconsistent (e.g. a keypoint count its family rejects).
    """
    lr = config.lr_generator if params.lr is None else params.lr
    ratio = lr / config.lr_generator if config.lr_generator > 0 else 1.0
    loss = config.loss
    eq = 1.0 if params.equivariance is None else params.equivariance
    rec = 1.0 if params.reconstruction is None else params.reconstruction
    vgg = loss.perceptual == "vgg19"
    new_loss = replace(
        loss,
        equivariance_value=loss.equivariance_value * eq,
        equivariance_jacobian=loss.equivariance_jacobian * eq,
        l1=loss.l1 if vgg else loss.l1 * rec,
        perceptual_weights=_scaled(loss.perceptual_weights, params.reconstruction if vgg else None),
        ms_ssim=loss.ms_ssim * (1.0 if params.ms_ssim is None else params.ms_ssim),
        feature_matching=_scaled(loss.feature_matching, params.feature_matching),
    )
    config = replace(
        config,
        loss=new_loss,
        lr_generator=lr,
        lr_kp_detector=config.lr_kp_detector * ratio,
        lr_discriminator=config.lr_discriminator * ratio,
        batch_size=config.batch_size if params.batch_size is None else params.batch_size,
    )
    return config if params.num_kp is None else _with_keypoints(config, params.num_kp)
