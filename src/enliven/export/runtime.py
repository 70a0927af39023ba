"""``OnnxMotionModel``: an exported model run by onnxruntime behind the ordinary model interface.

It is a :class:`~enliven.models.base.MotionTransferModel` without parameters, so
:class:`~enliven.inference.animator.Animator` uses it unchanged: the encoder graph runs once per source, the
keypoints and generator graphs once per driving batch, and motion transfer is the inherited PyTorch code.
:func:`enliven.export.cache.load_onnx_model` exports a model on first use into a cache folder keyed by its weights
and config.
"""

from __future__ import annotations

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


class OnnxMotionModel(MotionTransferModel):
    """A model exported by :func:`~enliven.export.export_onnx`, run with onnxruntime on the CPU.

    Takes and returns torch tensors like the PyTorch model (outputs on the device of the inputs); ``family``,
    ``keypoint_source``, ``supported_modes`` (without ``avd``) and ``config`` are those of the exported model.

    Args:
        folder: the export folder.
        threads: onnxruntime intra-op threads (default: ``torch.get_num_threads()``).
    """

    def __init__(self, folder: str | Path, threads: int | None = None) -> None:
        super().__init__()
        ort = require_package("onnxruntime")
        self.folder = Path(folder)
        self.manifest = Manifest.read(self.folder)
        self.family = self.manifest.family  # type: ignore[misc]
        self.keypoint_source = KeypointSource(self.manifest.keypoint_source)  # type: ignore[misc]
        self.supported_modes = tuple(MotionMode(m) for m in self.manifest.supported_modes)  # type: ignore[misc]
        document = yaml.safe_load((self.folder / CONFIG_NAME).read_text(encoding="utf-8"))
        self.config = config_from_dict(document, self.family)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        # Idle threads must sleep, not spin: every frame, PyTorch and MediaPipe work runs between the graphs, and
        # spinning threads would take their cores (measured: 61 -> 15 ms for the work after a graph run).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.inter_op_num_threads = 1
        self._sessions = {
            name: _session(ort, self.folder / info.file, options) for name, info in self.manifest.graphs.items()
        }
        self._specs: dict[str, Spec] = self.manifest.specs

    @property
    def image_size(self) -> int:
        return int(self.manifest.image_size)

    def _check_images(self, images: Tensor) -> None:
        size = self.image_size
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, size, size):
            raise ValueError(f"the exported model takes B x 3 x {size} x {size} images, got {tuple(images.shape)}")

    def _run(self, graph: str, tensors: list[Tensor], device: torch.device) -> list[Tensor]:
        info = self.manifest.graphs[graph]
        session = self._sessions[graph]
        wanted = {i.name for i in session.get_inputs()}  # the exporter drops inputs a graph does not use
        feeds = {name: _to_numpy(t) for name, t in zip(info.inputs, tensors, strict=True) if name in wanted}
        outputs = session.run(info.outputs, feeds)
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
        if "keypoints" not in self._sessions:
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


def check_onnx_mode(supported: tuple[MotionMode, ...], mode: MotionMode) -> None:
    """Raise a user error when ``mode`` is not one the ONNX backend runs.

    Raises:
        ExportError: e.g. ``avd``, whose network is not exported.
    """
    if mode not in supported:
        names = " or ".join(m.value for m in supported)
        raise ExportError(
            f"the ONNX backend runs only {names} motion, not {mode.value}; use --backend torch for {mode.value}."
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
