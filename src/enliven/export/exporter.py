"""``export_onnx``: a :class:`~enliven.models.base.MotionTransferModel` in, a folder of ONNX graphs out.

The graphs are traced with PyTorch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``): it
needs nothing beyond ``onnx`` and handles every op of the families (``grid_sample`` from opset 16, the TPS solve
through :func:`~enliven.models.tpsmm.tps.gauss_jordan_solve`). The folder appears only complete and checked.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch import Tensor, nn

from enliven import __version__
from enliven.export.flatten import flatten
from enliven.export.manifest import (
    CONFIG_NAME,
    GRAPH_FILES,
    MANIFEST_NAME,
    ExportCheckError,
    ExportError,
    GraphInfo,
    Manifest,
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
    device = next(iter(model.parameters()), torch.empty(0)).device
    training = model.training
    try:
        return _export_onnx(model.to("cpu").eval(), output, opset, check, tolerance, metadata)
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
    generator = torch.Generator().manual_seed(0)
    size = model.image_size
    source = torch.rand(1, 3, size, size, generator=generator)
    frames = torch.rand(TRACE_BATCH, 3, size, size, generator=generator)
    with torch.no_grad():
        kp_source = example_keypoints(model, source, generator)
        kp_driving = example_keypoints(model, frames, generator)
    specs = trace_specs(model, source, kp_source, kp_driving)
    names = specs.names()
    learned = model.keypoint_source is KeypointSource.LEARNED
    graphs = {
        name: GraphInfo(GRAPH_FILES[name], **names[name])
        for name in ("encoder", "keypoints", "generator")
        if learned or name != "keypoints"
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
    )
    try:
        with atomic_output(output, is_dir=True) as folder:
            encoder_inputs = (source, *flatten(kp_source)[0], *model.host_source_inputs(kp_source).values())
            _trace(EncoderStage(model, specs), encoder_inputs, folder, graphs["encoder"], opset, batch_from=None)
            if learned:
                _trace(KeypointStage(model), (frames,), folder, graphs["keypoints"], opset, batch_from=0)
            with torch.no_grad():
                encoding = flatten(model.encode_source(source, kp_source))[0]
            generator_inputs = (*encoding, *flatten(kp_driving)[0])
            _trace(GeneratorStage(model, specs), generator_inputs, folder, graphs["generator"], opset, len(encoding))
            (folder / CONFIG_NAME).write_text(yaml.safe_dump(model.config.to_yaml_dict(), sort_keys=False))
            (folder / MANIFEST_NAME).write_text(manifest.to_json())
            difference = compare_with_torch(model, folder) if check else None
            if difference is not None and not difference <= tolerance:
                raise ExportCheckError(
                    f"the exported graphs differ from the PyTorch model by up to {difference:.2e} (more than "
                    f"{tolerance:g}); nothing was written, please report this model and --opset {opset}."
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


def _trace(
    stage: nn.Module, inputs: tuple[Tensor, ...], folder: Path, info: GraphInfo, opset: int, batch_from: int | None
) -> None:
    """Export one stage to ``folder / info.file``.

    ``batch_from``: the inputs from this index on, and all outputs, have a dynamic batch axis (``None``: none).
    """
    dynamic: dict[str, dict[int, str]] = {}
    if batch_from is not None:
        for name in [*info.inputs[batch_from:], *info.outputs]:
            dynamic[name] = {0: "batch"}
    stage.eval()  # the exporter restores the stage's (and so the model's) training flag afterwards
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter warns that it is deprecated, and the tracer about Python-side shape checks;
        # the check after export is what tells whether the graphs are right.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            stage,
            inputs,
            str(folder / info.file),
            dynamo=False,
            opset_version=opset,
            input_names=info.inputs,
            output_names=info.outputs,
            dynamic_axes=dynamic,
            do_constant_folding=True,
        )
