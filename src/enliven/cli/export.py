"""``enliven export MODEL -o OUT_DIR --format onnx``: write a model as ONNX graphs, checked against PyTorch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from enliven.cli.arguments import add_threads_argument, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a model to ONNX (one graph per stage) for onnxruntime",
        description="Export MODEL to OUT_DIR as ONNX graphs: encoder.onnx (source-only work), keypoints.onnx "
        "(driving keypoints; not for face-mesh models) and generator.onnx (frames), with manifest.json and "
        "config.yaml. 'enliven animate --backend onnx' runs such exports. Needs the 'export' extra.",
    )
    p.add_argument("model", metavar="MODEL", help="model name (see 'enliven models') or checkpoint path")
    p.add_argument(
        "-o", "--output", metavar="OUT_DIR", required=True, help="folder to write (new, empty, or an earlier export)"
    )
    p.add_argument(
        "--format", default="onnx", help="export format: a backend that writes files, 'onnx' (default) or 'torch'"
    )
    p.add_argument("--config", default=None, help="YAML config of an authors' FOMM/TPSMM checkpoint")
    p.add_argument("--opset", type=positive_int, default=None, help="ONNX opset, 16 to 22 (default 17)")
    p.add_argument(
        "--check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the graphs in onnxruntime against PyTorch on random inputs and fail above a max abs frame "
        "difference of 1e-3 (default on)",
    )
    add_threads_argument(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from enliven.backends import backend_names, get_backend
    from enliven.export import DEFAULT_OPSET, TOLERANCE, ExportError, check_output_folder
    from enliven.weights import load_model

    formats = [name for name in backend_names() if name != "torch"]  # torch's files are releases
    if args.format not in formats:
        raise ExportError(
            f"unknown export format {args.format!r}; the supported formats are {', '.join(formats)} "
            "('enliven release' writes PyTorch release files)."
        )
    output = Path(args.output).expanduser()
    check_output_folder(output)
    loaded = load_model(args.model, args.config)
    opset = args.opset or DEFAULT_OPSET
    result = get_backend(args.format).export(
        loaded.model, output, opset=opset, check=args.check, metadata=loaded.metadata
    )
    if loaded.metadata.get("untrained") == "true":
        print("enliven: warning: the exported model has random weights (an untrained preset).", file=sys.stderr)
    graphs = ", ".join(info.file for info in result.manifest.graphs.values())
    print(f"wrote {result.folder} ({result.manifest.family}, opset {opset}: {graphs})")
    if result.max_difference is not None:
        print(
            f"check: onnxruntime matches PyTorch, max abs frame difference {result.max_difference:.1e} "
            f"(limit {TOLERANCE:g})"
        )
    return 0
