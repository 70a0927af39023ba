"""``export_onnx``: a :class:`~enliven.models.base.MotionTransferModel` in, a folder of ONNX graphs out.

The graphs are traced with PyTorch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``): it
needs nothing beyond ``onnx`` and handles every op of the families (``grid_sample`` from opset 16, the TPS solve
through :func:`~enliven.models.tpsmm.tps.gauss_jordan_solve`). The folder appears only complete and checked.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch import Tensor, nn

from enliven import __version__
from enliven.errors import InputError
from enliven.export.flatten import flatten
from enliven.export.manifest import (
    CONFIG_NAME,
    FORMATS,
    MANIFEST_NAME,
    ExportCheckError,
    ExportError,
    GraphInfo,
    Manifest,
    graph_files,
    require_package,
)
from enliven.export.stages import (
    TRACE_BATCH,
    EncoderStage,
    GeneratorStage,
    KeypointStage,
    example_keypoints,
    trace_specs,
)
from enliven.export.verify import compare_with_torch
from enliven.io import atomic_output
from enliven.models.base import KeypointSource, MotionTransferModel
from enliven.types import MotionMode

#: Default ONNX opset (``grid_sample`` needs 16; 17 is the oldest the ONNX runtimes we test all optimise well).
DEFAULT_OPSET = 17
MIN_OPSET = 16
#: The newest opset the TorchScript exporter of torch 2.13 writes.
MAX_OPSET = 22
#: Largest allowed difference between ONNX and PyTorch frames (values in ``[0, 1]``).
TOLERANCE = 1e-3
#: Modes the exported graphs run (``avd`` needs TPSMM's AVD network, which is not exported).
EXPORTED_MODES = (MotionMode.RELATIVE, MotionMode.ABSOLUTE)


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote.

    Attributes:
        folder: the export folder.
        manifest: its manifest.
        max_difference: largest absolute difference between ONNX and PyTorch frames in the check, or ``None``
            when the check was skipped.
    """

    folder: Path
    manifest: Manifest
    max_difference: float | None


def export_onnx(
    model: MotionTransferModel,
    output: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    tolerance: float = TOLERANCE,
    metadata: dict[str, str] | None = None,
) -> ExportResult:
    """Write ``model`` as ONNX graphs (encoder, keypoints, generator) with a manifest and its config.

    Args:
        model: the model (any family; exported on the CPU in eval mode, its weights as they are).
        output: the folder to write; it must not exist, be empty, or be an earlier export (which is replaced).
        opset: ONNX opset, 16 to 22.
        check: run the graphs in onnxruntime against PyTorch on a random source and driving batch (both motion
            modes) before the folder is written.
        tolerance: largest allowed absolute frame difference of the check.
        metadata: stored in the manifest (e.g. the model's ``content``: ``face`` or ``other``).

    Raises:
        ExportError: a bad opset or output folder. ExportCheckError: the check found a larger difference.
    """
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(
            f"--opset {opset} is not supported: use {MIN_OPSET} to {MAX_OPSET} (grid_sample needs {MIN_OPSET})."
        )
    output = Path(output).expanduser()
    check_output_folder(output)
    require_package("onnx")
    if check:
        require_package("onnxruntime")
    with on_cpu_in_eval_mode(model):
        return _export_onnx(model, output, opset, check, tolerance, metadata)


@contextlib.contextmanager
def on_cpu_in_eval_mode(model: MotionTransferModel) -> Iterator[None]:
    """Move ``model`` to the CPU in eval mode for an export; its device and training flag are restored after.

    Raises:
        InputError: a model no export takes yet (a body model: MediaPipe's pose and person mask feed it).
    """
    if model.keypoint_source is KeypointSource.POSE or getattr(model, "needs_plate", False):
        raise InputError(
            "body models (enliven-body) cannot be exported yet: their inputs (MediaPipe's pose and the background "
            "plate painted from its person mask) have no exported form; run them with --backend torch."
        )
    device = next(iter(model.parameters()), torch.empty(0)).device
    training = model.training
    model.to("cpu").eval()
    try:
        yield
    finally:
        model.to(device).train(training)


def _export_onnx(
    model: MotionTransferModel,
    output: Path,
    opset: int,
    check: bool,
    tolerance: float,
    metadata: dict[str, str] | None,
) -> ExportResult:
    def write_graph(stage: nn.Module, inputs: tuple[Tensor, ...], path: Path, info: GraphInfo) -> None:
        _trace(stage, inputs, path, info, opset)

    return write_export(
        model,
        output,
        export_format="onnx",
        write_graph=write_graph,
        batch=None,
        check=check,
        tolerance=tolerance,
        metadata=metadata,
        opset=opset,
    )


#: Writes one stage's graph: ``(stage, example inputs, path, info)``.
GraphWriter = Callable[[nn.Module, tuple[Tensor, ...], Path, GraphInfo], None]


def write_export(
    model: MotionTransferModel,
    output: Path,
    *,
    export_format: str,
    write_graph: GraphWriter,
    batch: int | None,
    check: bool,
    tolerance: float | None,
    metadata: dict[str, str] | None,
    opset: int | None = None,
    quantization: str = "float32",
    finish: Callable[[Path, dict[str, GraphInfo], dict[str, tuple[Tensor, ...]]], None] | None = None,
) -> ExportResult:
    """Write an export folder of any format: trace inputs, manifest, config, graphs (``write_graph``), check.

    Shared by :func:`export_onnx` and :mod:`enliven.export.litert`; the folder appears only complete and checked.

    Args:
        model: a CPU model in eval mode.
        output: the folder (checked by :func:`check_output_folder`).
        export_format: a key of :data:`~enliven.export.manifest.FORMATS`.
        write_graph: writes one graph.
        batch: the driving batch the graphs take (``None``: any; traced with :data:`TRACE_BATCH`).
        check: compare the written graphs with PyTorch (:func:`~enliven.export.verify.compare_with_torch`).
        tolerance: fail the check above this difference (``None``: measure only, e.g. quantised graphs).
        metadata: stored in the manifest.
        opset: ONNX opset (ONNX only).
        quantization: recorded in the manifest.
        finish: called with the folder, graphs and their example inputs once the graphs, config and manifest are
            written (e.g. to quantise the graphs).
    """
    generator = torch.Generator().manual_seed(0)
    size = model.image_size
    source = torch.rand(1, 3, size, size, generator=generator)
    frames = torch.rand(batch or TRACE_BATCH, 3, size, size, generator=generator)
    with torch.no_grad():
        kp_source = example_keypoints(model, source, generator)
        kp_driving = example_keypoints(model, frames, generator)
    specs = trace_specs(model, source, kp_source, kp_driving)
    names = specs.names()
    learned = model.keypoint_source is KeypointSource.LEARNED
    files = graph_files(export_format)
    with torch.no_grad():
        encoding = flatten(model.encode_source(source, kp_source))[0]
    inputs = {
        "encoder": (source, *flatten(kp_source)[0], *model.host_source_inputs(kp_source).values()),
        "keypoints": (frames,),
        "generator": (*encoding, *flatten(kp_driving)[0]),
    }
    batch_from = {"encoder": None, "keypoints": 0, "generator": len(encoding)}
    graphs = {
        name: GraphInfo(files[name], **names[name], batch_from=batch_from[name])
        for name in ("encoder", "keypoints", "generator")
        if learned or name != "keypoints"
    }
    stages = {
        "encoder": EncoderStage(model, specs),
        "keypoints": KeypointStage(model),
        "generator": GeneratorStage(model, specs),
    }
    manifest = Manifest(
        family=model.family,
        image_size=size,
        keypoint_source=str(model.keypoint_source),
        supported_modes=[m.value for m in model.supported_modes if m in EXPORTED_MODES],
        opset=opset,
        enliven_version=__version__,
        torch_version=torch.__version__.split("+")[0],
        graphs=graphs,
        specs=specs.to_dict(),
        metadata=dict(metadata or {}),
        format=FORMATS[export_format][0],
        quantization=quantization,
        batch=batch,
    )
    try:
        with atomic_output(output, is_dir=True) as folder:
            for name, info in graphs.items():
                write_graph(stages[name], inputs[name], folder / info.file, info)
            (folder / CONFIG_NAME).write_text(yaml.safe_dump(model.config.to_yaml_dict(), sort_keys=False))
            (folder / MANIFEST_NAME).write_text(manifest.to_json())
            if finish is not None:
                finish(folder, graphs, {name: inputs[name] for name in graphs})
            difference = compare_with_torch(model, folder) if check else None
            if difference is not None and tolerance is not None and not difference <= tolerance:
                raise ExportCheckError(
                    f"the exported graphs differ from the PyTorch model by up to {difference:.2e} (more than "
                    f"{tolerance:g}); nothing was written, please report this model and --format {export_format}."
                )
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ExportError(f"cannot write the export folder {output} ({reason}); choose a writable folder.") from None
    return ExportResult(output, manifest, difference)


def check_output_folder(output: Path) -> None:
    """Raise :class:`ExportError` unless ``output`` can become an export folder (new, empty or an earlier export)."""
    if output.exists() and not output.is_dir():
        raise ExportError(f"{output} is a file; pass a folder path to export into.")
    if output.is_dir() and any(output.iterdir()) and not (output / MANIFEST_NAME).is_file():
        raise ExportError(
            f"{output} is a non-empty folder that is not an enliven export; choose a new or empty folder."
        )
    parent = output.parent
    if not parent.is_dir():
        raise ExportError(f"the folder {parent} does not exist; create it or choose another output path.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(f"the folder {parent} is not writable; choose another output path.")


def _trace(stage: nn.Module, inputs: tuple[Tensor, ...], path: Path, info: GraphInfo, opset: int) -> None:
    """Export one stage to ``path`` (the batched inputs, from ``info.batch_from`` on, and all outputs have a dynamic
    batch axis)."""
    dynamic: dict[str, dict[int, str]] = {}
    if info.batch_from is not None:
        for name in [*info.inputs[info.batch_from :], *info.outputs]:
            dynamic[name] = {0: "batch"}
    stage.eval()  # the exporter restores the stage's (and so the model's) training flag afterwards
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter warns that it is deprecated, and the tracer about Python-side shape checks;
        # the check after export is what tells whether the graphs are right.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            stage,
            inputs,
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=info.inputs,
            output_names=info.outputs,
            dynamic_axes=dynamic,
            do_constant_folding=True,
        )
