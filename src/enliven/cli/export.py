"""``enliven export MODEL -o OUT_DIR --format onnx|tflite|tensorflow``: write a model as graphs, checked against
PyTorch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from enliven.cli.arguments import add_threads_argument, positive_int

RUNTIME_NAMES = {"onnx": "onnxruntime", "tflite": "LiteRT", "tensorflow": "TensorFlow"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a model to ONNX, LiteRT (tflite) or a TensorFlow SavedModel, one graph per stage",
        description="Export MODEL to OUT_DIR as graphs: encoder (source-only work), keypoints (driving keypoints; "
        "not for face-mesh models) and generator (frames), with manifest.json and config.yaml. 'enliven animate "
        "--backend onnx|tflite|tensorflow --model OUT_DIR' runs such exports. ONNX needs the 'export' extra; "
        "tflite and tensorflow the 'tensorflow' extra (running a tflite export needs only 'tflite').",
    )
    p.add_argument("model", metavar="MODEL", help="model name (see 'enliven models') or checkpoint path")
    p.add_argument(
        "-o", "--output", metavar="OUT_DIR", required=True, help="folder to write (new, empty, or an earlier export)"
    )
    p.add_argument(
        "--format",
        default="onnx",
        help="onnx (default), tflite (tflite-fp16 and tflite-int8 name its quantisations) or tensorflow",
    )
    p.add_argument("--config", default=None, help="YAML config of an authors' FOMM/TPSMM checkpoint")
    p.add_argument("--opset", type=positive_int, default=None, help="ONNX opset, 16 to 22 (default 17)")
    p.add_argument(
        "--quantize",
        choices=("float32", "float16", "int8"),
        default=None,
        help="tflite: float32 (default), float16 weights, or int8 convolutions calibrated on --calibration",
    )
    p.add_argument(
        "--calibration",
        nargs="+",
        metavar="MEDIA",
        default=None,
        help="--quantize int8: clips, photos or dataset folders (e.g. a prepared dataset's train folder) whose "
        "frames calibrate the int8 ranges (default: the bundled example clip)",
    )
    p.add_argument(
        "--check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the graphs in their runtime against PyTorch on random inputs and fail above a max abs frame "
        "difference of 1e-3 (float32; quantised exports report theirs) (default on)",
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
    backend = get_backend(args.format)
    export_format = getattr(backend, "export_format", args.format)
    if args.opset is not None and export_format != "onnx":
        raise ExportError(f"--opset is an ONNX option; leave it out for --format {args.format}.")
    if (args.quantize is not None or args.calibration) and export_format != "tflite":
        raise ExportError(
            f"--quantize and --calibration are tflite options; leave them out for --format {args.format}."
        )
    quantization = args.quantize or getattr(backend, "quantization", "float32")
    if args.calibration and quantization != "int8":
        raise ExportError("--calibration calibrates int8 exports; add --quantize int8 (or leave --calibration out).")
    output = Path(args.output).expanduser()
    check_output_folder(output)
    loaded = load_model(args.model, args.config)
    options: dict[str, object] = {"check": args.check, "metadata": loaded.metadata}
    if export_format == "onnx":
        options["opset"] = args.opset or DEFAULT_OPSET
    elif export_format == "tflite":
        options.update(quantization=quantization, calibration=args.calibration)
    result = backend.export(loaded.model, output, **options)
    if loaded.metadata.get("untrained") == "true":
        print("enliven: warning: the exported model has random weights (an untrained preset).", file=sys.stderr)
    manifest = result.manifest
    graphs = ", ".join(info.file for info in manifest.graphs.values())
    what = f"opset {manifest.opset}" if export_format == "onnx" else f"{export_format} {manifest.quantization}"
    print(f"wrote {result.folder} ({manifest.family}, {what}: {graphs})")
    if result.max_difference is not None:
        runtime = RUNTIME_NAMES[export_format]
        if manifest.quantization == "float32":
            limit = TOLERANCE
            if export_format == "tensorflow":
                from enliven.export.litert import TENSORFLOW_TOLERANCE as limit
            print(
                f"check: {runtime} matches PyTorch, max abs frame difference {result.max_difference:.1e} "
                f"(limit {limit:g})"
            )
        else:
            print(
                f"check: {runtime} {manifest.quantization} vs PyTorch float32 on the calibration frames, max abs "
                f"pixel difference {result.max_difference:.1e} (quantised: score it with 'enliven eval --model "
                f"{result.folder} --data DATASET')"
            )
    return 0
