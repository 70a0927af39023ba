"""Face-motion clips from a prepared dataset's landmark files, labelled, for the motion VAE and its evaluation.

``enliven prepare --kind faces`` writes ``<split>/<clip>.mp4.face_mesh.npy`` (``T x 468 x 2`` pixel landmarks) and
``metadata.json`` (each clip's frame rate); no frame is read here. Clips are labelled by name patterns
(:class:`~enliven.config.motion.MotionDataConfig`), made :class:`~enliven.motion.sequence.FaceMotion` relative to
the person's neutral clip where the dataset has one (MEAD) or to the clip's own mean, and resampled to the model's
frame rate.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from enliven.config.motion import MotionDataConfig
from enliven.errors import InputError
from enliven.face_mesh import LANDMARKS_SUFFIX
from enliven.motion.sequence import FaceMotion

logger = logging.getLogger(__name__)

#: Frame rate assumed for a clip the dataset's metadata does not list.
DEFAULT_FPS = 25.0


@dataclass(frozen=True)
class MotionClip:
    """One clip's motion: its name, label (``None``: unlabelled) and :class:`FaceMotion`."""

    name: str
    label: str | None
    motion: FaceMotion


def clip_label(name: str, data: MotionDataConfig) -> str | None:
    """The first label whose pattern is found in ``name``, or ``None``."""
    return next((label for label, pattern in data.labels if re.search(pattern, name)), None)


def load_motion_clips(root: str | Path, split: str, data: MotionDataConfig, fps: float) -> list[MotionClip]:
    """Every clip of ``root/split`` with a landmark file, as labelled motion at ``fps``.

    Raises:
        InputError: the split has no landmark files (the sentence says how to make them).
    """
    root = Path(root).expanduser()
    files = sorted((root / split).glob(f"*{LANDMARKS_SUFFIX}"))
    if not files:
        raise InputError(
            f"no face-mesh landmark files in {root / split}; prepare the dataset with 'enliven prepare --kind faces' "
            f"(or add them with 'enliven data landmarks {root}')."
        )
    rates = _frame_rates(root)
    raw = {}
    for path in files:
        name = path.name[: -len(LANDMARKS_SUFFIX)]
        name = name.rsplit(".", 1)[0] if "." in name else name  # "<clip>.mp4" -> "<clip>"
        landmarks = np.load(path)
        if np.isnan(landmarks).reshape(len(landmarks), -1).any(axis=1).all():
            logger.info("motion data: %s has no face; left out", name)
            continue
        raw[name] = landmarks
    neutrals = _neutral_expressions(raw, data)
    clips = []
    for name, landmarks in raw.items():
        motion = FaceMotion.from_landmarks(landmarks, rates.get(name, DEFAULT_FPS), neutrals.get(_identity(name, data)))
        clips.append(MotionClip(name, clip_label(name, data), motion.resampled(fps)))
    return clips


def _identity(name: str, data: MotionDataConfig) -> str | None:
    if not data.identity_pattern:
        return None
    match = re.search(data.identity_pattern, name)
    return match.group("identity") if match and "identity" in match.groupdict() else None


def _neutral_expressions(raw: dict[str, np.ndarray], data: MotionDataConfig) -> dict[str, np.ndarray]:
    """Identity -> neutral expression, from each identity's clips labelled ``neutral_label``."""
    neutrals: dict[str, list[np.ndarray]] = {}
    for name, landmarks in raw.items():
        identity = _identity(name, data)
        if identity is not None and clip_label(name, data) == data.neutral_label:
            neutrals.setdefault(identity, []).append(FaceMotion.neutral_of(landmarks))
    return {identity: np.mean(found, axis=0) for identity, found in neutrals.items()}


def _frame_rates(root: Path) -> dict[str, float]:
    path = root / "metadata.json"
    if not path.is_file():
        logger.warning("motion data: %s has no metadata.json; clips are taken as %g fps", root, DEFAULT_FPS)
        return {}
    clips = json.loads(path.read_text(encoding="utf-8")).get("clips", {})
    return {name: float(info["fps"]) for name, info in clips.items() if info.get("fps")}
