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


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device auto|cpu|cuda`` (``auto``: CUDA when available), the same for every command that runs a model."""
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the model runs (default auto)"
    )
