"""Validation helpers shared by the config modules that read the authors' YAML dicts.

Every helper names the full dotted key path (e.g. ``model_params.generator_params.max_features``) in the
one-sentence :class:`~enliven.errors.ConfigError` it raises, so the user can find the offending line of the file.
``parent`` arguments are the dotted path of the mapping a key is read from (``""`` at the top level).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from enliven.errors import ConfigError

#: Default of the getters for a key that must be present.
REQUIRED: Any = object()

#: Image size of a config without ``dataset_params.frame_shape`` (all published models are 256x256).
DEFAULT_IMAGE_SIZE = 256


def key_path(parent: str, key: str) -> str:
    """The dotted path of ``key`` inside the mapping at ``parent``."""
    return f"{parent}.{key}" if parent else key


def section(data: Mapping[str, Any], key: str, parent: str = "") -> Mapping[str, Any]:
    """The mapping under ``key``; raises if it is absent or not a mapping."""
    path = key_path(parent, key)
    if key not in data:
        raise ConfigError(f"the config has no '{path}' section; add it (see the authors' YAML configs).")
    value = data[key]
    if not isinstance(value, Mapping):
        raise ConfigError(f"'{path}' must be a mapping, got {type(value).__name__}; fix the config.")
    return value


def check_keys(
    data: Mapping[str, Any], path: str, required: tuple[str, ...] = (), optional: tuple[str, ...] = ()
) -> None:
    """Raise on a key of the mapping at ``path`` that is neither required nor optional, or a missing required key.

    Unknown keys are reported first: a misspelt key then names the typo rather than the key it was meant to be.
    """
    allowed = {*required, *optional}
    for key in data:
        if key not in allowed:
            raise ConfigError(
                f"the config has an unknown key '{key_path(path, key)}'; remove it"
                f" (allowed: {', '.join(sorted(allowed))})."
            )
    for key in required:
        if key not in data:
            raise _missing(key_path(path, key))


def is_int(value: Any) -> bool:
    """An integer, and not a bool (YAML ``true`` is not a size)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An int or float, and not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def checked(value: Any, path: str, check: Callable[[Any], bool], expected: str) -> Any:
    """Return ``value`` if ``check(value)``, else raise saying the key at ``path`` must be ``expected``."""
    if not check(value):
        raise ConfigError(f"'{path}' must be {expected}, got {value!r}; fix the config.")
    return value


def as_int(value: Any, path: str, minimum: int = 0) -> int:
    """``value`` checked to be an integer >= ``minimum``."""
    expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    return checked(value, path, lambda v: is_int(v) and v >= minimum, expected)


def as_number(value: Any, path: str, low: float | None = None, high: float | None = None) -> float:
    """``value`` checked to be a number in ``(low, high]`` (an open bound where ``None``), returned as written."""
    if low is None and high is None:
        expected = "a number"
    elif high is None:
        expected = "a positive number" if low == 0 else f"a number > {low}"
    elif low is None:
        expected = f"a number <= {high}"
    else:
        expected = f"a number in ({low}, {high}]"
    return checked(value, path, lambda v: _in_range(v, low, high), expected)


def as_bool(value: Any, path: str) -> bool:
    """``value`` checked to be ``true`` or ``false``."""
    return checked(value, path, lambda v: isinstance(v, bool), "true or false")


def get_int(data: Mapping[str, Any], key: str, parent: str, default: Any = REQUIRED, minimum: int = 0) -> int:
    """``data[key]`` checked by :func:`as_int`, or ``default`` when absent (required unless given)."""
    return _get(data, key, parent, default, lambda v, p: as_int(v, p, minimum))


def get_number(
    data: Mapping[str, Any],
    key: str,
    parent: str,
    default: Any = REQUIRED,
    low: float | None = None,
    high: float | None = None,
) -> float:
    """``data[key]`` checked by :func:`as_number`, or ``default`` when absent (required unless given)."""
    return _get(data, key, parent, default, lambda v, p: as_number(v, p, low, high))


def get_bool(data: Mapping[str, Any], key: str, parent: str, default: Any = REQUIRED) -> bool:
    """``data[key]`` checked by :func:`as_bool`, or ``default`` when absent (required unless given)."""
    return _get(data, key, parent, default, as_bool)


def get_list(
    data: Mapping[str, Any],
    key: str,
    parent: str,
    item: Callable[[Any], bool],
    expected: str,
    default: Any = REQUIRED,
) -> tuple[Any, ...]:
    """``data[key]`` as a tuple, checked to be a list whose items all pass ``item``; ``expected`` names the items."""

    def validate(value: Any, path: str) -> tuple[Any, ...]:
        is_list = isinstance(value, list | tuple) and all(item(x) for x in value)
        return tuple(checked(value, path, lambda _: is_list, f"a list of {expected}"))

    return _get(data, key, parent, default, validate)


def image_size(data: Mapping[str, Any]) -> int:
    """The square frame side ``dataset_params.frame_shape[0]`` of a whole YAML dict, 256 when not given."""
    dataset = data.get("dataset_params")
    if dataset is None:
        return DEFAULT_IMAGE_SIZE
    if not isinstance(dataset, Mapping):
        raise ConfigError(f"'dataset_params' must be a mapping, got {type(dataset).__name__}; fix the config.")
    shape = dataset.get("frame_shape")
    if shape is None:
        return DEFAULT_IMAGE_SIZE
    path = "dataset_params.frame_shape"
    checked(
        shape,
        path,
        lambda s: isinstance(s, list | tuple) and len(s) >= 2 and all(is_int(v) and v > 0 for v in s),
        "a list of positive integers like [256, 256, 3]",
    )
    checked(shape, path, lambda s: s[0] == s[1], "square (enliven works on square frames)")
    return shape[0]


def _missing(path: str) -> ConfigError:
    return ConfigError(f"the config is missing '{path}'; add it (see the authors' YAML configs).")


def _in_range(value: Any, low: float | None, high: float | None) -> bool:
    return is_number(value) and (low is None or value > low) and (high is None or value <= high)


def _get(data: Mapping[str, Any], key: str, parent: str, default: Any, validate: Callable[[Any, str], Any]) -> Any:
    path = key_path(parent, key)
    if key not in data:
        if default is REQUIRED:
            raise _missing(path)
        return default
    return validate(data[key], path)
