"""The manifest of an exported model folder (``manifest.json``) and the export errors.

An ONNX export folder holds ``encoder.onnx``, ``generator.onnx``, ``keypoints.onnx`` (learned keypoint source only),
``config.yaml`` (the model config in the authors' format) and ``manifest.json``; a LiteRT export the same graphs as
``.tflite`` files, a TensorFlow export one SavedModel folder per graph (``FORMATS``)::

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
#: ``--format`` name -> (the manifest's ``format``, the graph files' suffix; empty: a SavedModel folder).
FORMATS = {"onnx": (FORMAT, ".onnx"), "tflite": ("enliven-tflite", ".tflite"), "tensorflow": ("enliven-tensorflow", "")}
DISPLAY_NAMES = {"onnx": "ONNX", "tflite": "LiteRT", "tensorflow": "TensorFlow"}
GRAPH_NAMES = ("encoder", "keypoints", "generator")
GRAPH_FILES = {name: f"{name}.onnx" for name in GRAPH_NAMES}
#: What ``quantization`` a manifest may name: float32 graphs, float16 weights, int8 (see ``enliven.export.litert``).
QUANTIZATIONS = ("float32", "float16", "int8")


def graph_files(export_format: str) -> dict[str, str]:
    """The graph file (or folder) names of an export format (a key of ``FORMATS``)."""
    suffix = FORMATS[export_format][1]
    return {name: name + suffix for name in GRAPH_NAMES}


def format_name(manifest_format: str) -> str:
    """The ``--format`` name of a manifest's ``format`` value (``enliven-tflite`` -> ``tflite``)."""
    return next(name for name, (value, _) in FORMATS.items() if value == manifest_format)


def is_export_folder(path: object) -> bool:
    """Whether ``path`` (any value) names a folder written by ``enliven export``."""
    return isinstance(path, str | Path) and (Path(path).expanduser() / MANIFEST_NAME).is_file()


class ExportError(EnlivenError):
    """A model cannot be exported as asked (unknown format, unsupported option, unusable output folder)."""


#: The extra that installs each package the exports need.
PACKAGE_EXTRAS = {
    "onnx": ("ONNX export and the ONNX backend", "export"),
    "onnxruntime": ("ONNX export and the ONNX backend", "export"),
    "ai_edge_litert": ("The LiteRT (tflite) backend", "tflite"),
    "litert_torch": ("Export to LiteRT and TensorFlow", "tensorflow"),
    "ai_edge_quantizer": ("float16 and int8 LiteRT exports", "tensorflow"),
    "tensorflow": ("The TensorFlow SavedModel export and backend", "tensorflow"),
}


def require_package(name: str) -> Any:
    """Import a package an export or backend needs, or raise a user error saying how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        what, extra = PACKAGE_EXTRAS.get(name.split(".")[0], ("This export", "export"))
        raise ExportError(f"{what} needs {name}; install it with: pip install 'enliven[{extra}]'") from None


class ExportCheckError(ExportError):
    """The exported graphs do not reproduce the PyTorch model within the tolerance."""

    exit_code = 1


@dataclass(frozen=True)
class GraphInfo:
    """One graph file and its input/output names (in flattening order)."""

    file: str
    inputs: list[str]
    outputs: list[str]
    #: The inputs from this index on, and every output, have the batch axis (``None``: no batched input).
    batch_from: int | None = None


@dataclass(frozen=True)
class Manifest:
    """What an export folder holds (see module docstring)."""

    family: str
    image_size: int
    keypoint_source: str
    supported_modes: list[str]
    opset: int | None  # ONNX only
    enliven_version: str
    torch_version: str
    graphs: dict[str, GraphInfo]
    specs: dict[str, Any]
    metadata: dict[str, str] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    quantization: str = "float32"
    #: Driving frames per generator call the graphs were traced for (``None``: any; LiteRT graphs take one).
    batch: int | None = None

    @property
    def export_format(self) -> str:
        """The ``--format`` name: ``onnx``, ``tflite`` or ``tensorflow``."""
        return format_name(self.format)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def read(cls, folder: Path, export_format: str | None = None) -> Manifest:
        """Read ``folder/manifest.json`` (of the given ``--format`` name; ``None``: any).

        Raises:
            InputError: no manifest, or not one this version reads.
        """
        path = Path(folder) / MANIFEST_NAME
        what = f"enliven {DISPLAY_NAMES[export_format]} export" if export_format else "enliven export"
        if not path.is_file():
            raise InputError(f"{folder} is not an {what} (no {MANIFEST_NAME}); run 'enliven export' first.")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            known = [value for value, _ in FORMATS.values()]
            wanted = [FORMATS[export_format][0]] if export_format else known
            if data.get("format") in known and data.get("format") not in wanted:
                actual = format_name(data["format"])
                raise InputError(
                    f"{folder} is an enliven {DISPLAY_NAMES[actual]} export, which --backend {export_format} does not "
                    f"run; use --backend {actual}."
                )
            if data.get("format") not in wanted or data.get("format_version") != FORMAT_VERSION:
                raise ValueError("format")
            if data.get("quantization", "float32") not in QUANTIZATIONS:
                raise ValueError("quantization")
            data["graphs"] = {name: GraphInfo(**info) for name, info in data["graphs"].items()}
            return cls(**data)
        except (ValueError, TypeError, KeyError, AttributeError):
            raise InputError(
                f"{path} is not a version-{FORMAT_VERSION} {what} manifest; export the model again."
            ) from None
