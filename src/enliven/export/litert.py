"""Export to LiteRT (``.tflite``: float32, float16, int8) and to TensorFlow SavedModels, with litert-torch.

    >>> export_tflite(load_model("enliven-lite").model, "lite-tflite/")                     # doctest: +SKIP
    >>> export_tflite(model, "lite-int8/", quantization="int8", calibration=[clip])         # doctest: +SKIP
    >>> export_tensorflow(model, "lite-savedmodel/")                                         # doctest: +SKIP

Both start from the same stages as the ONNX export (:mod:`enliven.export.stages`), traced by ``torch.export``:

* **tflite**: ``litert_torch.convert`` lowers each stage to StableHLO and LiteRT ops. The graphs take one driving
  frame per call (:class:`~enliven.export.runtime.ExportedMotionModel` runs a batch frame by frame). Sampling is
  traced as row gathers (:func:`enliven.geometry.litert_tracing`, which also makes TPSMM solve by elimination):
  litert-torch lowers ``grid_sample`` to one scalar ``GATHER_ND`` per value, 4-19x slower. ``float16`` stores the
  weights as float16 (computed in float32); ``int8`` runs convolutions and fully connected layers in int8
  (weights and activations, the activation ranges calibrated on ``calibration`` frames) and the rest in float:
  sampling positions in int8 would be off by up to a pixel of a 256-pixel image. Measured on enliven-lite's
  generator (2 threads): int8 20.5 ms and 0.55 MB vs float32 21.6 ms and 1.17 MB; int8 on every op fails in the
  interpreter, dynamic-range int8 is slower (25.7 ms).
* **tensorflow**: the StableHLO of each stage wrapped in a ``tf.function`` (``XlaCallModule``) and saved as a
  SavedModel with a ``serving_default`` signature (inputs ``args_0...``, outputs ``output_0...``), for TF Serving
  and TensorFlow programs. onnx2tf, the other maintained route, converts lite's encoder but not its generator.

Needs the ``tensorflow`` extra (litert-torch, ai-edge-quantizer, TensorFlow); running a ``.tflite`` export needs
only the ``tflite`` extra (``ai-edge-litert``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from enliven.export.calibration import CalibrationSample, calibration_samples
from enliven.export.exporter import (
    TOLERANCE,
    ExportResult,
    check_output_folder,
    on_cpu_in_eval_mode,
    write_export,
)
from enliven.export.manifest import QUANTIZATIONS, ExportError, GraphInfo, require_package
from enliven.export.runtime import open_export
from enliven.geometry import litert_tracing
from enliven.models.base import MotionTransferModel

#: Largest difference allowed between a SavedModel and PyTorch. XLA compiles each graph with its own fusions and
#: float kernels; on the check's random inputs (random points fold lite's triangle mesh, where a rounding difference
#: can pick another triangle) enliven-lite differs by up to 1.5e-3, on real frames by 2.3e-4 (docs/tensorflow.md).
TENSORFLOW_TOLERANCE = 5e-3
#: Calibration samples (driving frames) used for int8 when the recipe needs calibration.
CALIBRATION_FRAMES = 32


def export_tflite(
    model: MotionTransferModel,
    output: str | Path,
    *,
    quantization: str = "float32",
    calibration: Sequence[str | Path] | None = None,
    check: bool = True,
    tolerance: float = TOLERANCE,
    metadata: dict[str, str] | None = None,
) -> ExportResult:
    """Write ``model`` as LiteRT graphs (encoder, keypoints, generator) with a manifest and its config.

    Args:
        model: any family (exported on the CPU in eval mode).
        output: the folder to write (new, empty, or an earlier export, which is replaced).
        quantization: ``float32``, ``float16`` or ``int8``.
        calibration: videos, photos or prepared dataset folders for int8 calibration (default: the bundled
            example clip); see :func:`enliven.export.calibration.calibration_inputs`.
        check: run the graphs in the LiteRT interpreter against PyTorch before the folder is written: float32 on
            random inputs (both motion modes), within ``tolerance``; quantised graphs on the calibration frames,
            recording their largest difference (their accuracy is measured by ``enliven eval``).
        tolerance: largest allowed absolute frame difference of a float32 check.
        metadata: stored in the manifest.

    Raises:
        ExportError: a bad option or output folder, or a missing converter. ExportCheckError: the check failed.
    """
    if quantization not in QUANTIZATIONS:
        raise ExportError(f"--quantize {quantization} is not one of {', '.join(QUANTIZATIONS)}.")
    output = Path(output).expanduser()
    check_output_folder(output)
    litert_torch = _converter()
    if check:
        require_package("ai_edge_litert")
    if quantization != "float32":
        require_package("ai_edge_quantizer")

    def write_graph(stage: nn.Module, inputs: tuple[Tensor, ...], path: Path, info: GraphInfo) -> None:
        with _quiet(), litert_tracing(), torch.no_grad():
            edge = litert_torch.convert(stage.eval(), inputs)
            edge.export(str(path))

    quantised = quantization != "float32"
    with on_cpu_in_eval_mode(model):
        # Real frames: int8 ranges are calibrated on them, and quantised graphs are checked on them (random inputs
        # fall outside the calibrated ranges).
        samples = list(calibration_samples(model, calibration, CALIBRATION_FRAMES)) if quantised else []

        def finish(folder: Path, graphs: dict[str, GraphInfo], inputs: dict[str, tuple[Tensor, ...]]) -> None:
            feeds = _calibration_feeds(samples, model, graphs) if quantization == "int8" else {}
            for name, info in graphs.items():
                _quantize(folder / info.file, quantization, feeds.get(name, []))
            if check:
                difference[0] = frame_difference(model, open_export(folder, threads=1), samples)

        difference: list[float | None] = [None]
        result = write_export(
            model,
            output,
            export_format="tflite",
            write_graph=write_graph,
            batch=1,
            check=check and not quantised,
            tolerance=tolerance,
            metadata=metadata,
            quantization=quantization,
            finish=finish if quantised else None,
        )
    return result if not quantised else replace(result, max_difference=difference[0])


def export_tensorflow(
    model: MotionTransferModel,
    output: str | Path,
    *,
    check: bool = True,
    tolerance: float = TENSORFLOW_TOLERANCE,
    metadata: dict[str, str] | None = None,
) -> ExportResult:
    """Write ``model`` as TensorFlow SavedModels (one folder per graph) with a manifest and its config.

    Args and errors as :func:`export_tflite` (float32 only).
    """
    output = Path(output).expanduser()
    check_output_folder(output)
    _converter()
    tf = require_package("tensorflow")

    def write_graph(stage: nn.Module, inputs: tuple[Tensor, ...], path: Path, info: GraphInfo) -> None:
        from litert_torch.backend import tf_integration
        from litert_torch.backend.export import exported_program_to_mlir

        with _quiet(), litert_tracing(), torch.no_grad():
            program = torch.export.export(stage.eval(), inputs).run_decompositions()
            function = tf_integration.mlir_to_tf_function(exported_program_to_mlir(program))
        module = tf.Module()
        module.graph = function

        @tf.function(input_signature=function.input_signature, autograph=False)
        def serving(*args: object) -> dict[str, object]:
            return {f"output_{i}": value for i, value in enumerate(module.graph(*args))}

        module.serving = serving
        with _quiet():
            tf.saved_model.save(module, str(path), signatures={"serving_default": serving})

    with on_cpu_in_eval_mode(model):
        return write_export(
            model,
            output,
            export_format="tensorflow",
            write_graph=write_graph,
            batch=1,
            check=check,
            tolerance=tolerance,
            metadata=metadata,
        )


def _converter():
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")  # its progress lines would fill our output
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up notes
    with _quiet():  # its imports log warnings about optional kernels
        return require_package("litert_torch")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the converters' warnings, log lines and prints (the check after export tells whether the graphs are
    right)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            with contextlib.redirect_stderr(io.StringIO()):  # the quantiser's progress bars
                yield
    finally:
        logging.disable(previous)


def _quantize(path: Path, quantization: str, feeds: list[dict[str, np.ndarray]]) -> None:
    """Rewrite the float32 graph at ``path`` quantised (see the module docstring)."""
    from ai_edge_quantizer import algorithm_manager, qtyping, quantizer, recipe_manager

    int8_operations = (
        qtyping.TFLOperationName.CONV_2D,
        qtyping.TFLOperationName.DEPTHWISE_CONV_2D,
        qtyping.TFLOperationName.FULLY_CONNECTED,
    )

    manager = recipe_manager.RecipeManager()
    if quantization == "float16":
        manager.add_weight_only_config(
            regex=".*",
            operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
            num_bits=16,
            algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING,
        )
    else:
        for operation in int8_operations:
            manager.add_static_config(regex=".*", operation_name=operation, activation_num_bits=8, weight_num_bits=8)
    chosen = manager.get_quantization_recipe()
    with _quiet():
        engine = quantizer.Quantizer(str(path))
        engine.load_quantization_recipe(chosen)
        calibration = engine.calibrate({"serving_default": feeds}) if engine.need_calibration else None
        result = engine.quantize(calibration, enable_progress_bar=False, enable_progress_report=False)
    if result.quantized_model is None:
        raise ExportError(f"ai-edge-quantizer left {path.name} unquantised; please report this model.")
    path.write_bytes(bytes(result.quantized_model))


def _calibration_feeds(
    samples: list[CalibrationSample], model: MotionTransferModel, graphs: dict[str, GraphInfo]
) -> dict[str, list[dict[str, np.ndarray]]]:
    """Per graph, the signature inputs (``args_i``) of the calibration samples, computed by PyTorch."""
    feeds: dict[str, list[dict[str, np.ndarray]]] = {name: [] for name in graphs}
    for sample in samples:
        values = sample.graph_inputs(model)
        for name in graphs:
            arrays = [t.detach().cpu().numpy() for t in values[name]]
            # int64 inputs (lite's triangles) are int32 in the graphs.
            named = {f"args_{i}": a.astype(np.int32) if a.dtype == np.int64 else a for i, a in enumerate(arrays)}
            feeds[name].append(named)
    return feeds


@torch.no_grad()
def frame_difference(
    model: MotionTransferModel, exported: MotionTransferModel, samples: list[CalibrationSample]
) -> float:
    """Largest absolute difference of the predicted frames of ``model`` and ``exported`` on real samples."""
    worst = 0.0
    for sample in samples:
        frames = []
        for candidate in (model, exported):
            encoding = candidate.encode_source(sample.source, sample.kp_source)
            frames.append(candidate.generate(encoding, sample.kp_driving).prediction)
        worst = max(worst, float((frames[0] - frames[1]).abs().max()))
    return worst
