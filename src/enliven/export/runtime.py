"""``ExportedMotionModel``: an exported model run by a graph runtime behind the ordinary model interface, and its
versions for each format: ``OnnxMotionModel`` (onnxruntime), ``TfliteMotionModel`` (the LiteRT interpreter,
``ai-edge-litert``: the ``tflite`` extra, no TensorFlow needed; XNNPACK on the CPU) and ``TensorflowMotionModel``
(SavedModels in TensorFlow). The LiteRT and TensorFlow graphs name their inputs ``args_0, args_1, ...`` in the
manifest's order and their outputs ``output_0, ...``; inputs a graph does not use were dropped by the converter and
are skipped.

It is a :class:`~enliven.models.base.MotionTransferModel` without parameters, so
:class:`~enliven.inference.animator.Animator` uses it unchanged: the encoder graph runs once per source, the
keypoints and generator graphs once per driving batch (or once per frame, for graphs traced for one), and motion
transfer is the inherited PyTorch code. :func:`enliven.export.cache.cached_export` exports a model on first use
into a cache folder keyed by its weights and config.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor

from enliven.config import config_from_dict
from enliven.errors import InputError
from enliven.export.flatten import Spec, flatten, unflatten
from enliven.export.manifest import CONFIG_NAME, ExportError, Manifest, require_package
from enliven.models.base import KeypointSource, MotionTransferModel, SourceEncoding
from enliven.models.factory import host_source_inputs
from enliven.types import GeneratorOutput, Keypoints, MotionMode


class ExportedMotionModel(MotionTransferModel):
    """A model written by ``enliven export``, run by a graph runtime; subclasses open the graphs
    (:meth:`_open`) and run one (:meth:`_execute`).

    Takes and returns torch tensors like the PyTorch model (outputs on the device of the inputs); ``family``,
    ``keypoint_source``, ``supported_modes`` (without ``avd``) and ``config`` are those of the exported model.

    Args:
        folder: the export folder.
        threads: the runtime's intra-op threads (default: ``torch.get_num_threads()``).
    """

    #: The ``--format`` name of the exports this class runs.
    export_format: str = ""

    def __init__(self, folder: str | Path, threads: int | None = None) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.manifest = Manifest.read(self.folder, self.export_format)
        self.family = self.manifest.family  # type: ignore[misc]
        self.keypoint_source = KeypointSource(self.manifest.keypoint_source)  # type: ignore[misc]
        self.supported_modes = tuple(MotionMode(m) for m in self.manifest.supported_modes)  # type: ignore[misc]
        document = yaml.safe_load((self.folder / CONFIG_NAME).read_text(encoding="utf-8"))
        self.config = config_from_dict(document, self.family)
        self._specs: dict[str, Spec] = self.manifest.specs
        self._threads = threads or torch.get_num_threads()
        for info in self.manifest.graphs.values():
            if not (self.folder / info.file).exists():
                raise InputError(f"the export folder {self.folder} has no {info.file}; export the model again.")
        self._open()

    def _open(self) -> None:
        """Load every graph of ``self.manifest`` (their files exist)."""
        raise NotImplementedError

    def _execute(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run one graph on arrays named as in the manifest; its outputs in the manifest's order."""
        raise NotImplementedError

    @property
    def image_size(self) -> int:
        return int(self.manifest.image_size)

    def _check_images(self, images: Tensor) -> None:
        size = self.image_size
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, size, size):
            raise ValueError(f"the exported model takes B x 3 x {size} x {size} images, got {tuple(images.shape)}")

    def _run(self, graph: str, tensors: list[Tensor], device: torch.device) -> list[Tensor]:
        info = self.manifest.graphs[graph]
        arrays = [_to_numpy(t) for t in tensors]
        step = self.manifest.batch
        batch = arrays[info.batch_from].shape[0] if info.batch_from is not None else 1
        if step is None or batch <= step:
            outputs = self._execute(graph, dict(zip(info.inputs, arrays, strict=True)))
        else:  # graphs traced for a fixed batch: run the frames in steps and join the outputs
            parts = []
            for start in range(0, batch, step):
                sliced = [a if i < info.batch_from else a[start : start + step] for i, a in enumerate(arrays)]
                parts.append(self._execute(graph, dict(zip(info.inputs, sliced, strict=True))))
            outputs = [np.concatenate(column, axis=0) for column in zip(*parts, strict=True)]
        return [torch.from_numpy(np.asarray(out)).to(device) for out in outputs]

    def _flatten(self, value: Any, spec_name: str, what: str) -> list[Tensor]:
        tensors, spec = flatten(value)
        if spec != self._specs[spec_name]:
            raise ValueError(
                f"{what} is not laid out as the exported {self.family} model's; was it made by this model?"
            )
        return tensors

    def detect_keypoints(self, image: Tensor) -> Keypoints:
        """Keypoints of ``B x 3 x H x W`` images in ``[0, 1]`` (learned keypoint source only)."""
        if "keypoints" not in self.manifest.graphs:
            raise ValueError(f"{self.family} models take face-mesh keypoints from outside; they detect none")
        self._check_images(image)
        return unflatten(self._run("keypoints", [image], image.device), self._specs["keypoints"])

    def encode_source(self, source: Tensor, keypoints: Keypoints | None = None) -> SourceEncoding:
        """Run the encoder graph on the ``1 x 3 x H x W`` source (keypoints detected when not given)."""
        self._check_images(source)
        if keypoints is None:
            keypoints = self.detect_keypoints(source)
        inputs = [
            source,
            *self._flatten(keypoints, "keypoints", "the source keypoints"),
            *self.host_source_inputs(keypoints).values(),
        ]
        return unflatten(self._run("encoder", inputs, source.device), self._specs["encoding"])

    def host_source_inputs(self, keypoints: Keypoints) -> dict[str, Tensor]:
        """As the PyTorch model's (they are decided by the config alone)."""
        return host_source_inputs(self.config, keypoints)

    def generate(self, encoding: SourceEncoding, kp_driving: Keypoints) -> GeneratorOutput:
        """Run the generator graph for ``B`` sets of (transferred) driving keypoints."""
        inputs = [
            *self._flatten(encoding, "encoding", "the source encoding"),
            *self._flatten(kp_driving, "keypoints", "the driving keypoints"),
        ]
        return unflatten(self._run("generator", inputs, kp_driving.value.device), self._specs["output"])

    def transfer_motion(
        self,
        kp_source: Keypoints,
        kp_driving: Keypoints,
        kp_reference: Keypoints | None,
        mode: MotionMode,
        scale: float = 1.0,
    ) -> Keypoints:
        """As the PyTorch model's, for the exported modes (relative, absolute)."""
        check_onnx_mode(self.supported_modes, mode)
        return super().transfer_motion(kp_source, kp_driving, kp_reference, mode, scale)


class OnnxMotionModel(ExportedMotionModel):
    """A model exported by :func:`~enliven.export.export_onnx`, run with onnxruntime on the CPU (see
    :class:`ExportedMotionModel`)."""

    export_format = "onnx"

    def _open(self) -> None:
        ort = require_package("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self._threads
        # Idle threads must sleep, not spin: every frame, PyTorch and MediaPipe work runs between the graphs, and
        # spinning threads would take their cores (measured: 61 -> 15 ms for the work after a graph run).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.inter_op_num_threads = 1
        self._sessions = {
            name: _session(ort, self.folder / info.file, options) for name, info in self.manifest.graphs.items()
        }
        # The exporter drops inputs a graph does not use.
        self._wanted = {name: {i.name for i in s.get_inputs()} for name, s in self._sessions.items()}

    def _execute(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        wanted = self._wanted[graph]
        return self._sessions[graph].run(
            self.manifest.graphs[graph].outputs, {k: v for k, v in feeds.items() if k in wanted}
        )


def _index(name: str) -> int:
    """``args_3`` / ``output_3`` -> 3."""
    return int(name.rsplit("_", 1)[1])


class TfliteMotionModel(ExportedMotionModel):
    """A LiteRT export run by the LiteRT interpreter on the CPU (see :class:`ExportedMotionModel`)."""

    export_format = "tflite"

    def _open(self) -> None:
        litert = require_package("ai_edge_litert.interpreter")
        self._runners = {}
        self._input_types: dict[str, dict[int, np.dtype]] = {}
        self._keep = []  # the interpreters must outlive their signature runners
        for name, info in self.manifest.graphs.items():
            path = self.folder / info.file
            try:
                interpreter = litert.Interpreter(model_path=str(path), num_threads=self._threads)
                runner = interpreter.get_signature_runner()
            except (ValueError, RuntimeError) as err:
                raise InputError(f"LiteRT cannot load {path} ({err}); export the model again.") from None
            self._keep.append(interpreter)
            self._runners[name] = runner
            details = runner.get_input_details()
            self._input_types[name] = {_index(key): np.dtype(value["dtype"]) for key, value in details.items()}

    def _execute(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        info = self.manifest.graphs[graph]
        types = self._input_types[graph]
        arrays = list(feeds.values())
        # int64 inputs (e.g. lite's triangles) are int32 in the graphs.
        named = {f"args_{i}": np.ascontiguousarray(arrays[i], dtype=dtype) for i, dtype in types.items()}
        outputs = self._runners[graph](**named)
        ordered = [outputs[key] for key in sorted(outputs, key=_index)]
        if len(ordered) != len(info.outputs):
            raise InputError(f"{self.folder / info.file} does not match its manifest; export the model again.")
        return ordered


class TensorflowMotionModel(ExportedMotionModel):
    """A SavedModel export run by TensorFlow on the CPU (see :class:`ExportedMotionModel`)."""

    export_format = "tensorflow"

    def _open(self) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up notes
        tf = require_package("tensorflow")
        try:
            tf.config.threading.set_intra_op_parallelism_threads(self._threads)
        except RuntimeError:  # TensorFlow is running already: its thread count is fixed for the process
            pass
        self._tf = tf
        self._signatures = {}
        self._input_types: dict[str, dict[int, object]] = {}
        for name, info in self.manifest.graphs.items():
            path = self.folder / info.file
            try:
                signature = tf.saved_model.load(str(path)).signatures["serving_default"]
            except (OSError, ValueError, KeyError) as err:
                raise InputError(f"TensorFlow cannot load {path} ({err}); export the model again.") from None
            self._signatures[name] = signature
            specs = signature.structured_input_signature[1]
            self._input_types[name] = {_index(key): spec.dtype.as_numpy_dtype for key, spec in specs.items()}

    def _execute(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        arrays = list(feeds.values())
        named = {
            f"args_{i}": self._tf.constant(np.asarray(arrays[i], dtype=dtype))
            for i, dtype in self._input_types[graph].items()
        }
        outputs = self._signatures[graph](**named)
        return [outputs[key].numpy() for key in sorted(outputs, key=_index)]


#: ``--format`` name -> the class that runs its exports.
RUNTIMES: dict[str, type[ExportedMotionModel]] = {
    "onnx": OnnxMotionModel,
    "tflite": TfliteMotionModel,
    "tensorflow": TensorflowMotionModel,
}


def open_export(folder: str | Path, threads: int | None = None) -> ExportedMotionModel:
    """Open an export folder of any format with its runtime (onnxruntime, LiteRT or TensorFlow)."""
    return RUNTIMES[Manifest.read(Path(folder)).export_format](folder, threads=threads)


def check_onnx_mode(supported: tuple[MotionMode, ...], mode: MotionMode) -> None:
    """Raise a user error when ``mode`` is not one the exported graphs run.

    Raises:
        ExportError: e.g. ``avd``, whose network is not exported.
    """
    if mode not in supported:
        names = " or ".join(m.value for m in supported)
        raise ExportError(
            f"exported models run only {names} motion, not {mode.value}; use --backend torch for {mode.value}."
        )


def _session(ort: Any, path: Path, options: Any) -> Any:
    if not path.is_file():
        raise InputError(f"the export folder {path.parent} has no {path.name}; export the model again.")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own exception types for damaged files
        raise InputError(f"onnxruntime cannot load {path} ({type(err).__name__}); export the model again.") from None


def _to_numpy(tensor: Tensor) -> np.ndarray:
    tensor = tensor.detach().to("cpu")
    if tensor.is_floating_point():
        tensor = tensor.float()
    return np.ascontiguousarray(tensor.numpy())
