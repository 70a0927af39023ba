"""``options_from_mapping``: :class:`~enliven.inference.AnimateOptions` from text values (a batch file's columns, a
server's form fields, JSON), with the CLI's names and one clear sentence for anything wrong."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping

from enliven.errors import InputError
from enliven.inference.animate import AnimateOptions
from enliven.motion.edits import ExpressionEdit
from enliven.types import MotionMode

#: Options a caller that does not own the machine may set (a server's clients): no file paths, devices or threads.
PUBLIC_OPTIONS = frozenset(
    {
        "model",
        "mode",
        "adapt_scale",
        "find_best_frame",
        "crop",
        "smooth_track",
        "paste_back",
        "size",
        "backend",
        "force",
        "edit",
    }
)
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def options_from_mapping(
    values: Mapping[str, object],
    *,
    base: AnimateOptions | None = None,
    allowed: Collection[str] | None = None,
) -> AnimateOptions:
    """``base`` (default :class:`AnimateOptions`) with ``values`` applied.

    Names are the fields of :class:`AnimateOptions`, also in the CLI's spelling (``paste-back``); values may be
    text (``"true"``, ``"256"``) or typed. ``no-crop``-style negations are not accepted: give ``crop=false``.

    Raises:
        InputError: an unknown or not-allowed name, or a value of the wrong kind.
    """
    fields = {f.name: f for f in dataclasses.fields(AnimateOptions)}
    permitted = set(fields) if allowed is None else set(allowed)
    changes: dict[str, object] = {}
    for raw_name, value in values.items():
        name = str(raw_name).strip().replace("-", "_")
        if name not in fields or name not in permitted:
            raise InputError(f"unknown option {raw_name!r}; the options are {', '.join(sorted(permitted))}.")
        changes[name] = _convert(name, fields[name].default, value)
    return dataclasses.replace(base or AnimateOptions(), **changes)  # type: ignore[arg-type]


def _convert(name: str, default: object, value: object) -> object:
    text = "" if value is None else str(value).strip()
    numeric = name in {"size", "threads"} or (isinstance(default, int) and not isinstance(default, bool))
    try:
        if name == "mode":
            return MotionMode(text.lower())
        if name == "edit":
            if value is None or isinstance(value, ExpressionEdit):
                return value
            if isinstance(value, Mapping):  # a serialised job's options (dataclasses.asdict)
                return ExpressionEdit(**{str(k): float(v) for k, v in value.items()})
            return ExpressionEdit.parse(text)
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            if text.lower() not in _TRUE | _FALSE:
                raise ValueError(text)
            return text.lower() in _TRUE
        if numeric:
            if text == "" and name in {"size", "threads"}:
                return None
            number = int(text)
            if number <= 0:
                raise ValueError(text)
            return number
        return text or None
    except ValueError:
        kind = (
            "relative, absolute or avd" if name == "mode" else "a positive whole number" if numeric else "true or false"
        )
        raise InputError(f"option {name} must be {kind}, got {value!r}.") from None
