"""Thin-Plate Spline Motion Model (TPSMM; Zhao & Zhang, CVPR 2022), compatible with the authors' checkpoints."""

from enliven.models.tpsmm.avd import AvdNetwork
from enliven.models.tpsmm.dense_motion import DenseMotionNetwork, DenseMotionSource
from enliven.models.tpsmm.inpainting import InpaintingNetwork
from enliven.models.tpsmm.keypoints import BgMotionPredictor, TpsKeypointDetector
from enliven.models.tpsmm.model import TpsmmModel, TpsmmSourceEncoding, build_bg_predictor
from enliven.models.tpsmm.tps import ThinPlateSpline

__all__ = [
    "AvdNetwork",
    "BgMotionPredictor",
    "DenseMotionNetwork",
    "DenseMotionSource",
    "InpaintingNetwork",
    "ThinPlateSpline",
    "TpsKeypointDetector",
    "TpsmmModel",
    "TpsmmSourceEncoding",
    "build_bg_predictor",
]
