"""The ``enliven`` command line.

Each sub-command lives in its own module of this package and exposes ``register(subparsers)``, which adds
its parser and sets ``handler`` (a function taking the parsed arguments and returning an exit code). The
commands parse into typed values, make one library call and print one clear sentence on bad input.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from enliven.errors import EnlivenError

# Sub-command modules, imported when the parser is built; each keeps its heavy imports inside its handler.
COMMAND_MODULES = (
    "animate",
    "live",
    "models",
    "prepare",
    "data",
    "train",
    "release",
    "eval",
    "tune",
    "export",
    "bench",
    "batch",
    "serve",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="enliven", description="Bring a still image to life.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"enliven.cli.{name}")
        module.register(subparsers)
    return parser


def _version() -> str:
    from enliven import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 on success)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from enliven.inference.allocator import keep_freed_memory

        keep_freed_memory()  # before the first large tensor: see its module
        # A command may start work that needs no torch (animate: its face worker) before torch is imported.
        before_torch = getattr(args, "before_torch", None)
        with before_torch(args) if before_torch is not None else contextlib.nullcontext():
            # every command that runs a model has --threads (batch sets them where its workers run)
            if "threads" in vars(args) and not getattr(args, "threads_set_by_handler", False):
                from enliven.inference.threads import set_threads

                set_threads(args.threads)  # imports torch
            return int(args.handler(args) or 0)
    except EnlivenError as err:
        print(f"enliven: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("enliven: interrupted; no output was written.", file=sys.stderr)
        return 130


def run() -> NoReturn:
    """The ``enliven`` program: :func:`main`, then exit without the garbage collector's last pass over torch's and
    MediaPipe's objects (:mod:`enliven.inference.quick_exit`)."""
    code = main()
    from enliven.inference.quick_exit import skip_final_collection

    skip_final_collection()
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
