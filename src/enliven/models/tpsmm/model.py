"""The TPSMM family behind the family-agnostic :class:`~enliven.models.base.MotionTransferModel` interface.

Attribute names are the entries of the authors' checkpoints (``kp_detector``, ``dense_motion_network``,
``inpainting_network``, ``avd_network``), so each entry loads into the attribute of the same name with
``strict=True``. The background motion predictor (``bg_predictor``) is only used in training: build it with
:func:`build_bg_predictor`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from enliven.config.tpsmm import TpsmmConfig
from enliven.models.base import MotionTransferModel, SourceEncoding
from enliven.models.tpsmm.avd import AvdNetwork
from enliven.models.tpsmm.dense_motion import DenseMotionNetwork, DenseMotionSource
from enliven.models.tpsmm.inpainting import InpaintingNetwork
from enliven.models.tpsmm.keypoints import BgMotionPredictor, TpsKeypointDetector
from enliven.types import GeneratorOutput, Keypoints, MotionMode


@dataclass(frozen=True)
class TpsmmSourceEncoding(SourceEncoding):
    """The source, its keypoints and everything the per-frame networks reuse (all batch 1).

    Attributes:
        features: inpainting encoder features, fine to coarse (``1 x C_l x H/2**l x W/2**l``).
        motion_source: the downscaled source and its keypoint heatmaps for the dense motion network.
    """

    features: tuple[Tensor, ...]
    motion_source: DenseMotionSource


class TpsmmModel(MotionTransferModel):
    """Thin-Plate Spline Motion Model (Zhao & Zhang, CVPR 2022) for inference.

    Keypoints are :class:`~enliven.types.Keypoints` with ``value`` of shape ``B x 5K x 2`` (K = ``num_tps``
    groups of 5 TPS control points) and ``jacobian=None``.

    Args:
        config: the model's configuration.
    """

    family: ClassVar[str] = "tpsmm"
    supported_modes: ClassVar[tuple[MotionMode, ...]] = (MotionMode.RELATIVE, MotionMode.ABSOLUTE, MotionMode.AVD)
    #: Checkpoint entries inference loads (each is an attribute of this module).
    checkpoint_entries: ClassVar[tuple[str, ...]] = (
        "kp_detector",
        "dense_motion_network",
        "inpainting_network",
        "avd_network",
    )

    def __init__(self, config: TpsmmConfig) -> None:
        super().__init__()
        self.config = config
        common, gen, dense, avd = config.common, config.generator, config.dense_motion, config.avd
        self.kp_detector = TpsKeypointDetector(num_tps=common.num_tps, num_channels=common.num_channels)
        self.dense_motion_network = DenseMotionNetwork(
            block_expansion=dense.block_expansion,
            num_blocks=dense.num_blocks,
            max_features=dense.max_features,
            num_tps=common.num_tps,
            num_channels=common.num_channels,
            scale_factor=dense.scale_factor,
            multi_mask=common.multi_mask,
        )
        self.inpainting_network = InpaintingNetwork(
            num_channels=common.num_channels,
            block_expansion=gen.block_expansion,
            max_features=gen.max_features,
            num_down_blocks=gen.num_down_blocks,
            multi_mask=common.multi_mask,
        )
        self.avd_network = AvdNetwork(
            num_tps=common.num_tps, id_bottle_size=avd.id_bottle_size, pose_bottle_size=avd.pose_bottle_size
        )

    def detect_keypoints(self, image: Tensor) -> Keypoints:
        """Keypoints (``B x 5K x 2``, no jacobians) of ``B x 3 x H x W`` images in ``[0, 1]``."""
        return Keypoints(self.kp_detector(image))

    def encode_source(self, source: Tensor, keypoints: Keypoints | None = None) -> TpsmmSourceEncoding:
        """Detect the source keypoints (unless given) and encode everything that does not depend on the driving
        frame."""
        keypoints = self.detect_keypoints(source) if keypoints is None else keypoints
        return TpsmmSourceEncoding(
            image=source,
            keypoints=keypoints,
            features=tuple(self.inpainting_network.encode(source)),
            motion_source=self.dense_motion_network.prepare_source(source, keypoints.value),
        )

    def generate(self, encoding: SourceEncoding, kp_driving: Keypoints) -> GeneratorOutput:
        """Animate the encoded source (batch 1) to B sets of driving keypoints; ``motion.occlusion`` has every scale."""
        if not isinstance(encoding, TpsmmSourceEncoding):
            raise TypeError(f"TpsmmModel.generate needs a TpsmmSourceEncoding, got {type(encoding).__name__}")
        motion = self.dense_motion_network(encoding.motion_source, kp_driving.value)
        return self.inpainting_network(encoding.image, list(encoding.features), motion)

    def transfer_motion(
        self,
        kp_source: Keypoints,
        kp_driving: Keypoints,
        kp_reference: Keypoints | None,
        mode: MotionMode,
        scale: float = 1.0,
    ) -> Keypoints:
        """As :meth:`MotionTransferModel.transfer_motion`, plus ``avd``: the AVD network re-poses the source
        keypoints with each driving frame's (``kp_reference`` and ``scale`` are not used)."""
        if mode is MotionMode.AVD:
            return Keypoints(self.avd_network(kp_source.value, kp_driving.value))
        return super().transfer_motion(kp_source, kp_driving, kp_reference, mode, scale)


def build_bg_predictor(config: TpsmmConfig) -> BgMotionPredictor:
    """Build the training-only background motion predictor (checkpoint entry ``bg_predictor``).

    The authors' training builds it for every config, so official checkpoints hold it even where
    ``config.common.bg`` is false (MGif); it is used only when ``bg`` is true.
    """
    return BgMotionPredictor(num_channels=config.common.num_channels)
