"""The manifest of an exported model folder (``manifest.json``) and the export errors.

An export folder holds ``encoder.onnx``, ``generator.onnx``, ``keypoints.onnx`` (learned keypoint source only),
``config.yaml`` (the model config in the authors' format) and ``manifest.json``::

    {"format": "enliven-onnx", "format_version": 1, "family": "fomm", "image_size": 256,
     "keypoint_source": "learned", "supported_modes": ["relative", "absolute"], "opset": 17,
     "enliven_version": "0.1.0", "torch_version": "2.13.0", "metadata": {"content": "face"},
     "graphs": {"encoder": {"file": "encoder.onnx", "inputs": [...], "outputs": [...]}, ...},
     "specs": {"keypoints": {...}, "encoding": {...}, "output": {...}}}

``specs`` are the flattening specs of :mod:`enliven.export.flatten`; the graphs' inputs and outputs are the
flattened tensors in spec order.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from enliven.errors import EnlivenError, InputError

FORMAT = "enliven-onnx"
FORMAT_VERSION = 2  # 2: encoder graphs may take host inputs after the keypoints
MANIFEST_NAME = "manifest.json"
CONFIG_NAME = "config.yaml"
GRAPH_FILES = {"encoder": "encoder.onnx", "keypoints": "keypoints.onnx", "generator": "generator.onnx"}


class ExportError(EnlivenError):
    """A model cannot be exported as asked (unknown format, unsupported option, unusable output folder)."""


def require_package(name: str) -> Any:
    """Import ``onnx`` or ``onnxruntime``, or raise a user error saying how to install them."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ExportError(
            f"ONNX export and the ONNX backend need {name}; install it with: pip install 'enliven[export]'"
        ) from None


class ExportCheckError(ExportError):
    """The exported graphs do not reproduce the PyTorch model within the tolerance."""

    exit_code = 1


@dataclass(frozen=True)
class GraphInfo:
    """One graph file and its input/output names (in flattening order)."""

    file: str
    inputs: list[str]
    outputs: list[str]


@dataclass(frozen=True)
class Manifest:
    """What an export folder holds (see module docstring)."""

    family: str
    image_size: int
    keypoint_source: str
    supported_modes: list[str]
    opset: int
    enliven_version: str
    torch_version: str
    graphs: dict[str, GraphInfo]
    specs: dict[str, Any]
    metadata: dict[str, str] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        """Read ``folder/manifest.json``.

        Raises:
            InputError: no manifest, or not one this version reads.
        """
        path = Path(folder) / MANIFEST_NAME
        if not path.is_file():
            raise InputError(
                f"{folder} is not an enliven ONNX export (no {MANIFEST_NAME}); run 'enliven export' first."
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
                raise ValueError("format")
            data["graphs"] = {name: GraphInfo(**info) for name, info in data["graphs"].items()}
            return cls(**data)
        except (ValueError, TypeError, KeyError, AttributeError):
            raise InputError(
                f"{path} is not a version-{FORMAT_VERSION} enliven ONNX manifest; export the model again."
            ) from None
