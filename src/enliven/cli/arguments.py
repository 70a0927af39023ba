"""Argument types shared by the sub-commands (argparse turns their errors into a usage message)."""

from __future__ import annotations

import argparse


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
