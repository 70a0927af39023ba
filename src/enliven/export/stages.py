"""The three exported stages of a :class:`~enliven.models.base.MotionTransferModel`, as flat-tensor modules.

Each stage wraps the model's own method, so the graphs compute exactly what eager inference computes, split where
:class:`~enliven.inference.animator.Animator` splits the work:

* ``encoder``: ``source`` ``1 x 3 x H x W``, its keypoints and the model's host inputs (values no graph can
  compute, e.g. lite's triangulation of the source: ``host_source_inputs``) -> the flattened ``SourceEncoding``
  (run once);
* ``keypoints``: ``frames`` ``B x 3 x H x W`` -> the flattened ``Keypoints`` (learned keypoint source only);
* ``generator``: the flattened encoding and driving keypoints -> the flattened ``GeneratorOutput`` (per batch).

The encoder takes the source keypoints as an input (the model's ``encode_source(source, keypoints)``), so one
graph serves both keypoint sources; learned-keypoint models detect them with the keypoints graph first.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from enliven.export.flatten import Spec, flatten, leaf_names, num_tensors, unflatten
from enliven.face_mesh import NUM_FACE_MESH_POINTS
from enliven.models.base import KeypointSource, MotionTransferModel
from enliven.types import Keypoints

#: Batch of the example driving frames the graphs are traced with: more than one, so that no code path taken
#: only for a batch of one (e.g. sharing the source's batch) is baked into the graph.
TRACE_BATCH = 2


@dataclass(frozen=True)
class StageSpecs:
    """How a model's values are flattened at the graph boundaries (see :mod:`enliven.export.flatten`).

    Attributes:
        keypoints: a ``Keypoints`` value (source, driving and transferred keypoints share it).
        encoding: the family's ``SourceEncoding``.
        output: the ``GeneratorOutput``.
        host: names of the encoder's inputs after the keypoints (``host_source_inputs``), in order.
    """

    keypoints: Spec
    encoding: Spec
    output: Spec
    host: tuple[str, ...] = ()

    def names(self) -> dict[str, dict[str, list[str]]]:
        """Input and output names of each graph."""
        encoding = leaf_names(self.encoding, "encoding")
        return {
            "encoder": {
                "inputs": ["source", *leaf_names(self.keypoints, "source_keypoints"), *self.host],
                "outputs": encoding,
            },
            "keypoints": {"inputs": ["frames"], "outputs": leaf_names(self.keypoints, "keypoints")},
            "generator": {
                "inputs": [*encoding, *leaf_names(self.keypoints, "driving")],
                "outputs": leaf_names(self.output),
            },
        }

    def to_dict(self) -> dict[str, Spec]:
        return {"keypoints": self.keypoints, "encoding": self.encoding, "output": self.output}


def example_keypoints(model: MotionTransferModel, images: Tensor, generator: torch.Generator) -> Keypoints:
    """Keypoints of ``images`` as the model would be given them: detected, or random face-mesh-like points."""
    if model.keypoint_source is KeypointSource.LEARNED:
        return model.detect_keypoints(images)
    # Points spread over the middle of the frame, like a face crop's mesh.
    value = torch.rand(images.shape[0], NUM_FACE_MESH_POINTS, 2, generator=generator) * 1.2 - 0.6
    return Keypoints(value.to(images.device, images.dtype))


@torch.no_grad()
def trace_specs(model: MotionTransferModel, source: Tensor, kp_source: Keypoints, kp_driving: Keypoints) -> StageSpecs:
    """Run the model once eagerly and record how its values flatten."""
    encoding = model.encode_source(source, kp_source)
    _, kp_spec = flatten(kp_driving)
    _, encoding_spec = flatten(encoding)
    _, output_spec = flatten(model.generate(encoding, kp_driving))
    host = tuple(model.host_source_inputs(kp_source))
    return StageSpecs(keypoints=kp_spec, encoding=encoding_spec, output=output_spec, host=host)


class EncoderStage(nn.Module):
    """``(source, *source keypoint tensors, *host inputs) -> encoding tensors``."""

    def __init__(self, model: MotionTransferModel, specs: StageSpecs) -> None:
        super().__init__()
        self.model = model
        self.specs = specs
        self.num_keypoints = num_tensors(specs.keypoints)

    def forward(self, source: Tensor, *tensors: Tensor) -> tuple[Tensor, ...]:
        keypoints = unflatten(tensors[: self.num_keypoints], self.specs.keypoints)
        encoding = self.model.encode_source(source, keypoints, *tensors[self.num_keypoints :])
        return tuple(flatten(encoding)[0])


class KeypointStage(nn.Module):
    """``frames -> keypoint tensors``."""

    def __init__(self, model: MotionTransferModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: Tensor) -> tuple[Tensor, ...]:
        return tuple(flatten(self.model.detect_keypoints(frames))[0])


class GeneratorStage(nn.Module):
    """``(*encoding tensors, *driving keypoint tensors) -> generator output tensors``."""

    def __init__(self, model: MotionTransferModel, specs: StageSpecs) -> None:
        super().__init__()
        self.model = model
        self.specs = specs
        self.num_encoding = num_tensors(specs.encoding)

    def forward(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        encoding = unflatten(tensors[: self.num_encoding], self.specs.encoding)
        keypoints = unflatten(tensors[self.num_encoding :], self.specs.keypoints)
        return tuple(flatten(self.model.generate(encoding, keypoints))[0])
