"""Evaluation: the FOMM reconstruction protocol, cross-identity animation, baselines and reports.

    >>> result = evaluate("fomm-vox", "~/enliven-data/faces", "test")      # doctest: +SKIP
    >>> write_report(result, "reports/fomm-vox")                          # doctest: +SKIP

Each report sets the model beside two baselines computed on the same clips: ``static`` (the source repeated: no model)
and ``mesh warp`` (a piecewise-affine warp along MediaPipe face-mesh landmarks: no learning). dlib and MediaPipe are
imported when an evaluation starts.
"""

from __future__ import annotations

from enliven.evaluate.baselines import MeshWarpBaseline, Method, MethodKind, ModelMethod, StaticBaseline
from enliven.evaluate.landmarks import LandmarkSet
from enliven.evaluate.protocols import EvaluationError
from enliven.evaluate.report import write_report
from enliven.evaluate.results import (
    AnimationScores,
    ClipResult,
    EvaluationOptions,
    EvaluationResult,
    MethodResult,
    Protocol,
    ReconstructionScores,
    SampleStrip,
    SkippedTask,
)
from enliven.evaluate.run import evaluate

__all__ = [
    "AnimationScores",
    "ClipResult",
    "EvaluationError",
    "EvaluationOptions",
    "EvaluationResult",
    "LandmarkSet",
    "MeshWarpBaseline",
    "Method",
    "MethodKind",
    "MethodResult",
    "ModelMethod",
    "Protocol",
    "ReconstructionScores",
    "SampleStrip",
    "SkippedTask",
    "StaticBaseline",
    "evaluate",
    "write_report",
]
