"""Argument types shared by the sub-commands (argparse turns their errors into a usage message)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from enliven.inference import AnimateOptions
    from enliven.motion.edits import ExpressionEdit


def positive_int(text: str) -> int:
    """A whole number of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A number greater than 0."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}")
    return value


#: ``--size`` bounds. The networks halve the image 4 times (lite: a motion grid at a quarter of the size, halved twice
#: more by its dense motion network), so other sizes fail inside the model on mismatched tensor shapes. The authors'
#: FOMM/TPSMM models halve their quarter-size motion input 5 times and so need a multiple of 128, which depends on
#: the model and is not checked here. Above 1024 a frame takes seconds on a CPU, and it is no sharper than its source.
MODEL_SIZE_MULTIPLE = 16
MIN_MODEL_SIZE = 64
MAX_MODEL_SIZE = 1024


def model_size(text: str) -> int:
    """A side for the square the model runs at: a multiple of :data:`MODEL_SIZE_MULTIPLE` in
    ``[MIN_MODEL_SIZE, MAX_MODEL_SIZE]``."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value % MODEL_SIZE_MULTIPLE or not MIN_MODEL_SIZE <= value <= MAX_MODEL_SIZE:
        raise argparse.ArgumentTypeError(
            f"expected a multiple of {MODEL_SIZE_MULTIPLE} between {MIN_MODEL_SIZE} and {MAX_MODEL_SIZE} "
            f"(e.g. 256), got {text!r}"
        )
    return value


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device auto|cpu|cuda`` (``auto``: CUDA when available), the same for every command that runs a model."""
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the model runs (default auto)"
    )


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: CPU threads for the model (``None`` when not given: the command picks its default)."""
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        metavar="N",
        help="CPU threads for the model (default: 1 per 2 cores, see README 'Threads')",
    )


def add_animation_options(p: argparse.ArgumentParser) -> None:
    """The flags of :class:`~enliven.inference.AnimateOptions` (``enliven animate``, ``enliven batch``)."""
    from enliven.backends import backend_names

    p.add_argument(
        "--model",
        default=None,
        help="auto (the default: the face model for a face, the body model for a person, else the generic model; one "
        "line says which and why), a model name (see 'enliven models') or a checkpoint path",
    )
    p.add_argument("--config", default=None, help="YAML config of an authors' FOMM/TPSMM checkpoint")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--relative",
        dest="mode",
        action="store_const",
        const="relative",
        help="move the source by the driving motion relative to a reference frame (default)",
    )
    mode.add_argument(
        "--absolute", dest="mode", action="store_const", const="absolute", help="use the driving keypoints as they are"
    )
    mode.add_argument(
        "--avd", dest="mode", action="store_const", const="avd", help="TPSMM's animation-via-disentanglement network"
    )
    p.set_defaults(mode="relative")
    p.add_argument(
        "--adapt-scale",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="scale the movement to the source's proportions (relative mode; default on)",
    )
    p.add_argument(
        "--find-best-frame",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="take as reference the driving frame whose face (a body model: whose pose) best matches the source; "
        "--no-find-best-frame: the clip's first (default: the best frame for a body model, the first for a face's)",
    )
    p.add_argument(
        "--crop",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="crop the face (face models) or pad to a square (others); --no-crop takes inputs as they "
        "are, resized to the model's size (default on)",
    )
    p.add_argument(
        "--smooth-track",
        action="store_true",
        help="follow the driving face with a smoothed track instead of one stable box",
    )
    p.add_argument(
        "--paste-back", action="store_true", help="blend the animation back into the full-resolution source photo"
    )
    p.add_argument(
        "--size", type=model_size, default=None, help="side of the square the model runs at (multiple of 16)"
    )
    add_device_argument(p)
    add_threads_argument(p)
    p.add_argument("--batch-size", type=positive_int, default=1, help="driving frames per model call (default 1)")
    p.add_argument(
        "--backend",
        choices=backend_names(),
        default="torch",
        help="run the model with PyTorch, or exported on the CPU (cached on first use; relative and absolute "
        "modes): onnx (onnxruntime, the 'export' extra), tflite, tflite-fp16, tflite-int8 (LiteRT, the 'tflite' "
        "extra; converting needs 'tensorflow') or tensorflow (a SavedModel) (default torch)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="animate the source's face even when it is too small a part of the image (a body or a scene), "
        "which a face model refuses by default",
    )
    p.add_argument(
        "--edit",
        type=expression_edit,
        default=None,
        metavar="EDITS",
        help="expression and pose controls on the motion, e.g. smile=0.6,yaw=15 (names: yaw, pitch, roll in "
        "degrees; mouth, smile, blink, brows in [-1, 1]; expression, head: scales of the motion, 1 = as is); "
        "face-mesh models (enliven-lite)",
    )


def expression_edit(text: str) -> ExpressionEdit:
    """``--edit``'s value (argparse reports the sentence as the option's error)."""
    from enliven.errors import InputError
    from enliven.motion.edits import ExpressionEdit

    try:
        return ExpressionEdit.parse(text)
    except InputError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def options_from_args(args: argparse.Namespace) -> AnimateOptions:
    """The :class:`~enliven.inference.AnimateOptions` that :func:`add_animation_options`' flags describe."""
    from enliven.inference import AnimateOptions
    from enliven.types import MotionMode

    return AnimateOptions(
        model=args.model,
        config=args.config,
        mode=MotionMode(args.mode),
        adapt_scale=args.adapt_scale,
        find_best_frame=args.find_best_frame,
        crop=args.crop,
        smooth_track=args.smooth_track,
        paste_back=args.paste_back,
        size=args.size,
        device=args.device,
        batch_size=args.batch_size,
        backend=args.backend,
        threads=args.threads,
        force=args.force,
        edit=args.edit,
    )
