"""Flatten nested dataclasses of tensors (a family's ``SourceEncoding``, ``Keypoints``, ``GeneratorOutput``) into a
flat tuple of tensors plus a JSON-serialisable spec, and back.

ONNX graphs take and return flat lists of tensors; the spec records where each tensor sits in the structure so
that any family's dataclasses (present or future) cross the graph boundary without per-family code.

A spec is a tree of tagged dicts:

* ``{"kind": "tensor", "index": i}``: the ``i``-th flat tensor. A tensor object reached twice (e.g. the source
  keypoints stored both in the encoding and in its motion inputs) is flattened once and shares its index.
* ``{"kind": "none"}``; ``{"kind": "value", "value": v}`` for a plain ``int``/``float``/``bool``/``str``.
* ``{"kind": "tuple" | "list", "items": [...]}``; ``{"kind": "dict", "items": {key: ...}}`` (string keys).
* ``{"kind": "dataclass", "type": "module:QualName", "fields": {name: ...}}``; only dataclasses defined in the
  ``enliven`` package are rebuilt, so a spec read from disk cannot make us import arbitrary code.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from torch import Tensor

Spec = dict[str, Any]

#: Only dataclasses of these packages are rebuilt by :func:`unflatten`.
_TRUSTED_PACKAGE = "enliven"


def flatten(value: Any) -> tuple[list[Tensor], Spec]:
    """Return the distinct tensors of ``value`` (in first-reached order) and the spec that rebuilds it.

    Raises:
        TypeError: ``value`` holds something other than tensors, dataclasses, tuples, lists, string-keyed dicts,
            ``None`` and plain scalars.
    """
    tensors: list[Tensor] = []
    seen: dict[int, int] = {}

    def visit(item: Any) -> Spec:
        if isinstance(item, Tensor):
            if id(item) not in seen:
                seen[id(item)] = len(tensors)
                tensors.append(item)
            return {"kind": "tensor", "index": seen[id(item)]}
        if item is None:
            return {"kind": "none"}
        if isinstance(item, (bool, int, float, str)):
            return {"kind": "value", "value": item}
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            cls = type(item)
            fields = {f.name: visit(getattr(item, f.name)) for f in dataclasses.fields(item)}
            return {"kind": "dataclass", "type": f"{cls.__module__}:{cls.__qualname__}", "fields": fields}
        if isinstance(item, (tuple, list)):
            return {"kind": type(item).__name__, "items": [visit(x) for x in item]}
        if isinstance(item, dict) and all(isinstance(k, str) for k in item):
            return {"kind": "dict", "items": {k: visit(v) for k, v in item.items()}}
        raise TypeError(f"cannot flatten a {type(item).__name__} for export")

    return tensors, visit(value)


def unflatten(tensors: list[Tensor] | tuple[Tensor, ...], spec: Spec) -> Any:
    """Rebuild the value :func:`flatten` took apart (tensors shared by index are the same object again)."""

    def build(node: Spec) -> Any:
        kind = node["kind"]
        if kind == "tensor":
            return tensors[node["index"]]
        if kind == "none":
            return None
        if kind == "value":
            return node["value"]
        if kind in ("tuple", "list"):
            items = [build(x) for x in node["items"]]
            return tuple(items) if kind == "tuple" else items
        if kind == "dict":
            return {k: build(v) for k, v in node["items"].items()}
        if kind == "dataclass":
            return _make_dataclass(_resolve(node["type"]), {k: build(v) for k, v in node["fields"].items()})
        raise ValueError(f"unknown spec kind {kind!r}")

    return build(spec)


def num_tensors(spec: Spec) -> int:
    """How many flat tensors ``spec`` takes."""
    return len(leaf_names(spec))


def leaf_names(spec: Spec, prefix: str = "") -> list[str]:
    """A readable name per flat tensor, from its first path in the structure: ``prefix.features.0``, ...

    Args:
        spec: from :func:`flatten`.
        prefix: the name of the whole value (``""``: none, then the paths start at the first field).
    """
    names: dict[int, str] = {}

    def walk(node: Spec, path: str) -> None:
        kind = node["kind"]
        if kind == "tensor":
            names.setdefault(node["index"], path or "value")
        elif kind in ("tuple", "list"):
            for i, item in enumerate(node["items"]):
                walk(item, f"{path}.{i}" if path else str(i))
        elif kind in ("dict", "dataclass"):
            children = node["items"] if kind == "dict" else node["fields"]
            for key, item in children.items():
                walk(item, f"{path}.{key}" if path else key)

    walk(spec, prefix)
    return [names[i] for i in range(len(names))]


def _resolve(qualified: str) -> type:
    module_name, _, qualname = qualified.partition(":")
    if module_name.split(".")[0] != _TRUSTED_PACKAGE:
        raise ValueError(f"refusing to rebuild {qualified}: only enliven dataclasses can be rebuilt")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and dataclasses.is_dataclass(obj)):
        raise ValueError(f"{qualified} is not a dataclass")
    return obj


def _make_dataclass(cls: type, values: dict[str, Any]) -> Any:
    init = {f.name for f in dataclasses.fields(cls) if f.init}
    instance = cls(**{k: v for k, v in values.items() if k in init})
    for key, value in values.items():
        if key not in init:  # fields computed in __post_init__: restore what was flattened
            object.__setattr__(instance, key, value)
    return instance
