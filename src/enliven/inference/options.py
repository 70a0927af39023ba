""":class:`AnimateOptions` (how to animate: the CLI's flags) and ``options_from_mapping``: the options from text values
(a batch file's columns, a server's form fields, JSON), with the CLI's names and one clear sentence for anything
wrong. Without torch: a batch's or a server's main process parses jobs without importing it."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from enliven.errors import InputError
from enliven.motion.edits import ExpressionEdit
from enliven.types import LandmarkKind, MotionMode


@dataclass(frozen=True)
class AnimateOptions:
    """How to animate (the CLI's flags).

    Attributes:
        model: preset name or checkpoint path (``None``: the default model); ignored when ``animate_file`` is
            given a loaded ``model=``.
        config: YAML config of an authors' checkpoint (``None``: detected).
        mode: relative, absolute or avd.
        adapt_scale: adapt the movement scale to the source (relative mode).
        find_best_frame: use the driving frame whose face landmarks (a body model: pose) best match the source as the
            reference; ``False``: the clip's first frame (with a face); ``None`` (the default): the best frame for a
            body model (:func:`wants_best_frame`), the first for the others.
        crop: crop the face (face models) or pad to a square (other models); ``False`` takes inputs as they are.
        smooth_track: crop the driving clip along a smoothed face track instead of one stable box.
        paste_back: blend the animated crop back into the full-resolution source.
        size: side of the square the model runs at (``None``: the model's own).
        device: ``auto``, ``cpu`` or ``cuda``.
        batch_size: driving frames per model call (1, the default, was the fastest per frame for enliven-lite on
            a CPU: 30 vs 36 ms at 4).
        backend: a registered backend (:func:`enliven.backends.backend_names`: ``torch``, ``onnx``); ``onnx`` runs
            onnxruntime on the CPU (exported and cached on first use; relative and absolute modes only).
        threads: CPU threads of the model's runtime and of the video encoder (``None``: leave torch's setting as it
            is, and ffmpeg's default).
        memory_budget_mb: decoded driving frames kept in memory for a single decode, at most this many MiB.
        face_worker: start a :class:`~enliven.inference.face_worker.FaceWorker` (a second process, without torch,
            that finds the faces and a face-mesh model's landmarks) when both inputs are files. It pays off when it
            starts before torch is imported, as the CLI does (which passes its own worker); once this process has
            torch and MediaPipe loaded, the worker's own imports (~1 s) cost more than they save.
        force: animate a source face of any size; by default a face model refuses a body or a scene, whose face is
            too small to animate (:func:`~enliven.inference.cropper.check_usable_face`).
        edit: expression and pose controls applied to the driving landmarks (:mod:`enliven.motion.edits`;
            models driven by face-mesh landmarks only); ``None``: none.
    """

    model: str | None = None
    config: str | Path | None = None
    mode: MotionMode = MotionMode.RELATIVE
    adapt_scale: bool = True
    find_best_frame: bool | None = None
    crop: bool = True
    smooth_track: bool = False
    paste_back: bool = False
    size: int | None = None
    device: str = "auto"
    batch_size: int = 1
    backend: str = "torch"
    threads: int | None = None
    memory_budget_mb: int = 1024
    face_worker: bool = False
    force: bool = False
    edit: ExpressionEdit | None = None


def wants_best_frame(find_best_frame: bool | None, landmarks: LandmarkKind | None) -> bool:
    """Whether a model driven by ``landmarks`` (``None``: its own keypoints) takes the best-matching driving frame as
    its reference, for the option ``find_best_frame``: as asked, and when not asked (``None``) for a body model only.

    Bodies, because relative motion takes the reference's pose as the photo's: a tai-chi clip that opens with a kick
    bends a standing photo by the kick's difference from every later pose (the body melts). On the prepared bodies'
    held-out clips, each driven by the next (``benchmarks/body_joints.py``, 100 frames a pair), the joint angles of
    enliven-body's output followed the driver's at 0.23 and 0.33 (val, test) from the best frame against -0.04 and
    0.25 from the first; ``enliven eval --find-best-frame``: 0.39 against 0.28 on TED speakers, 0.37 against 0.40 on
    the bodies' test split (the model card has the tables). Faces keep the first frame: from the best match,
    enliven-lite's mouth followed the driver's at 0.75 instead of 0.82 and its eyes at 0.33 instead of 0.49 over the
    faces' validation pairs (its card).
    """
    if find_best_frame is None:
        return landmarks is LandmarkKind.POSE
    return find_best_frame


#: What ``--model`` takes for the automatic choice (:mod:`enliven.inference.choice`); no model at all means the same.
AUTO = "auto"


def is_auto(model: object) -> bool:
    """Whether a ``--model`` value asks for the automatic choice (``auto``, or none given)."""
    return model is None or model == AUTO


#: Options a caller that does not own the machine may set (a server's clients): no file paths, devices or threads.
PUBLIC_OPTIONS = frozenset(
    {
        "model",
        "mode",
        "adapt_scale",
        "find_best_frame",
        "crop",
        "smooth_track",
        "paste_back",
        "size",
        "backend",
        "force",
        "edit",
    }
)
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def options_from_mapping(
    values: Mapping[str, object],
    *,
    base: AnimateOptions | None = None,
    allowed: Collection[str] | None = None,
) -> AnimateOptions:
    """``base`` (default :class:`AnimateOptions`) with ``values`` applied.

    Names are the fields of :class:`AnimateOptions`, also in the CLI's spelling (``paste-back``); values may be
    text (``"true"``, ``"256"``) or typed. ``no-crop``-style negations are not accepted: give ``crop=false``.

    Raises:
        InputError: an unknown or not-allowed name, or a value of the wrong kind.
    """
    fields = {f.name: f for f in dataclasses.fields(AnimateOptions)}
    permitted = set(fields) if allowed is None else set(allowed)
    changes: dict[str, object] = {}
    for raw_name, value in values.items():
        name = str(raw_name).strip().replace("-", "_")
        if name not in fields or name not in permitted:
            raise InputError(f"unknown option {raw_name!r}; the options are {', '.join(sorted(permitted))}.")
        changes[name] = _convert(name, fields[name].default, value)
    return dataclasses.replace(base or AnimateOptions(), **changes)  # type: ignore[arg-type]


def _convert(name: str, default: object, value: object) -> object:
    text = "" if value is None else str(value).strip()
    numeric = name in {"size", "threads"} or (isinstance(default, int) and not isinstance(default, bool))
    try:
        if name == "mode":
            return MotionMode(text.lower())
        if name == "edit":
            if value is None or isinstance(value, ExpressionEdit):
                return value
            if isinstance(value, Mapping):  # a serialised job's options (dataclasses.asdict)
                return ExpressionEdit(**{str(k): float(v) for k, v in value.items()})
            return ExpressionEdit.parse(text)
        if name == "find_best_frame" and text.lower() in {"", "auto"}:  # not set: the default
            return None
        if isinstance(default, bool) or name == "find_best_frame":
            if isinstance(value, bool):
                return value
            if text.lower() not in _TRUE | _FALSE:
                raise ValueError(text)
            return text.lower() in _TRUE
        if numeric:
            if text == "" and name in {"size", "threads"}:
                return None
            number = int(text)
            if number <= 0:
                raise ValueError(text)
            return number
        return text or None
    except ValueError:
        kind = (
            "relative, absolute or avd" if name == "mode" else "a positive whole number" if numeric else "true or false"
        )
        kind += ", or auto" if name == "find_best_frame" else ""
        raise InputError(f"option {name} must be {kind}, got {value!r}.") from None
