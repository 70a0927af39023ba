"""The model-family registry: each family (FOMM, TPSMM, enliven-lite, ...) is registered once, and every place that
depends on the family (the config reader, the model factory, checkpoint loading, training, ``enliven bench``,
``enliven tune``) asks the registry instead of testing types.

    >>> from enliven.families import Family, register_family                       # doctest: +SKIP
    >>> register_family(Family("mine", config=MyConfig, model=MyModel, objective=MyObjective))

A :class:`Family` names its heavy parts (model class, training objective) as ``"module:attribute"`` strings or
gives the objects themselves; strings are imported on first use, so this module imports nothing but the standard
library and sits at the bottom of the import graph beside :mod:`enliven.config` (the built-in families are
described in :mod:`enliven.families.builtin`).

Adding a family: its config class, its model class (a :class:`~enliven.models.base.MotionTransferModel` built
from the config alone), optionally a training objective (:class:`~enliven.train.objectives.GeneratorObjective`
subclass), and one :func:`register_family` call (a line in :data:`BUILTIN_FAMILIES` for a family that ships with
enliven).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from enliven.errors import CheckpointError, ConfigError


def resolve(reference: Any) -> Any:
    """The object a ``"package.module:attribute"`` string names (imported now), or ``reference`` itself."""
    if not isinstance(reference, str):
        return reference
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class KeypointCount:
    """How ``enliven tune`` reads and sets a family's keypoint count (FOMM ``num_kp``, TPSMM ``num_tps``).

    Attributes:
        get: config -> count.
        replace: (config, count) -> a new config with that count.
    """

    get: Callable[[Any], int]
    replace: Callable[[Any, int], Any]


@dataclass(frozen=True)
class Family:
    """Everything enliven needs to know about one model family.

    Attributes:
        name: the family's name, as configs (``model_params.family``) and releases store it, e.g. ``"fomm"``.
        config: the config class (a frozen dataclass with ``family``, ``image_size``, ``num_channels``,
            ``from_yaml_dict`` and ``to_yaml_dict``), or its ``"module:attribute"`` reference.
        model: the model class or builder, called with a config: ``model(config) -> MotionTransferModel``.
        objective: the training objective class (``GeneratorObjective`` subclass), or ``None`` if the family
            cannot be trained.
        checkpoint_entries: entries of the authors' checkpoints that inference loads (attribute names of the model);
            empty for families that only load enliven releases.
        checkpoint_signature: entries whose presence identifies the family's authors' checkpoints.
        config_signature: a key of the authors' ``model_params.common_params`` that identifies the family's YAML
            configs when they do not name their family (FOMM ``num_kp``, TPSMM ``num_tps``).
        dense_motion: ``(attribute path, method)`` whose return ends the dense motion, for ``enliven bench``'s
            stage split; ``None``: not a separate stage.
        keypoint_count: the keypoint count ``enliven tune`` searches over, or ``None``.
        host_source_inputs: ``(config, keypoints) -> dict of tensors``: source-only values the exported graphs take
            as inputs (see ``MotionTransferModel.host_source_inputs``), computed from the config alone; ``None``:
            none.
    """

    name: str
    config: Any
    model: Any
    objective: Any = None
    checkpoint_entries: tuple[str, ...] = ()
    checkpoint_signature: tuple[str, ...] = ()
    config_signature: str | None = None
    dense_motion: tuple[str, str] | None = None
    keypoint_count: KeypointCount | None = None
    host_source_inputs: Any = None

    def config_class(self) -> Any:
        return resolve(self.config)

    def build(self, config: Any) -> Any:
        """A freshly initialised model of ``config``."""
        return resolve(self.model)(config)

    def objective_class(self) -> Any:
        """The training objective class.

        Raises:
            ConfigError: the family cannot be trained.
        """
        if self.objective is None:
            raise ConfigError(f"the {self.name} family has no training objective; it cannot be trained.")
        return resolve(self.objective)

    def source_inputs(self, config: Any, keypoints: Any) -> dict[str, Any]:
        return {} if self.host_source_inputs is None else resolve(self.host_source_inputs)(config, keypoints)


_REGISTRY: dict[str, Family] = {}

#: The families that ship with enliven: one registration line each (``name: module holding FAMILY``).
BUILTIN_FAMILIES: Mapping[str, str] = {
    "fomm": "enliven.families.builtin:FOMM",
    "tpsmm": "enliven.families.builtin:TPSMM",
    "lite": "enliven.families.builtin:LITE",
}


def _builtins_loaded() -> dict[str, Family]:
    if not _REGISTRY:
        for reference in BUILTIN_FAMILIES.values():
            family = resolve(reference)
            _REGISTRY.setdefault(family.name, family)
    return _REGISTRY


def register_family(family: Family, *, replace: bool = False) -> Family:
    """Register ``family`` under ``family.name``; returns it.

    Raises:
        ValueError: the name is taken (pass ``replace=True`` to override it).
    """
    registry = _builtins_loaded()
    if family.name in registry and not replace:
        raise ValueError(f"a model family named {family.name!r} is already registered")
    registry[family.name] = family
    return family


def unregister_family(name: str) -> None:
    """Remove a family (tests register and remove dummy families)."""
    _builtins_loaded().pop(name, None)


def families() -> Iterator[Family]:
    """The registered families, in registration order."""
    return iter(list(_builtins_loaded().values()))


def family_names() -> list[str]:
    return list(_builtins_loaded())


def get_family(name: str) -> Family:
    """The family registered as ``name``.

    Raises:
        ConfigError: no such family.
    """
    registry = _builtins_loaded()
    if name not in registry:
        raise ConfigError(f"unknown model family {name!r}; expected one of {', '.join(registry)}.")
    return registry[name]


def family_of(config: Any) -> Family:
    """The family of a config object (by its ``family`` attribute)."""
    name = getattr(config, "family", None)
    if not isinstance(name, str):
        raise ConfigError(f"{type(config).__name__} is not a model config (it has no family name).")
    return get_family(name)


def family_of_checkpoint(entries: Mapping[str, Any]) -> Family:
    """The family whose :attr:`Family.checkpoint_signature` entries an authors' checkpoint holds.

    Raises:
        CheckpointError: no family recognises the entries.
    """
    for family in families():
        if family.checkpoint_signature and all(name in entries for name in family.checkpoint_signature):
            return family
    names = ", ".join(sorted(map(str, entries))[:6]) or "nothing"
    known = "; ".join(
        f"{f.name.upper()} ({', '.join(f.checkpoint_signature)})" for f in families() if f.checkpoint_signature
    )
    raise CheckpointError(
        f"the checkpoint holds {names}, not the entries of a known model ({known}); pass a checkpoint of one of them."
    )


__all__ = [
    "BUILTIN_FAMILIES",
    "Family",
    "KeypointCount",
    "families",
    "family_names",
    "family_of",
    "family_of_checkpoint",
    "get_family",
    "register_family",
    "resolve",
    "unregister_family",
]
