"""What ``enliven bench`` measured: options, per-stage times, results per model and backend, and the report.

:meth:`BenchReport.to_markdown` prints one table with the models and backends side by side (rows: stages);
:meth:`BenchReport.to_dict` holds every number (``enliven bench --json``).
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from enliven.examples import EXAMPLE_DRIVING, EXAMPLE_SOURCE
from enliven.io import atomic_output

BACKENDS = ("torch", "onnx")
DEFAULT_MODELS = ("enliven-lite", "fomm-vox", "tpsmm-vox")
#: The real-time goal: 30 frames per second, model plus pre- and post-processing.
TARGET_MS = 1000.0 / 30.0
DEFAULT_SOURCE = EXAMPLE_SOURCE
DEFAULT_DRIVING = EXAMPLE_DRIVING


@dataclass(frozen=True)
class BenchOptions:
    """What to benchmark (the CLI's flags).

    Attributes:
        models: preset names or model files (see :func:`load_bench_model`).
        backends: ``torch`` and/or ``onnx``.
        threads: intra-op threads of PyTorch and onnxruntime.
        frames: timed frames per model and backend.
        warmup: untimed frames before them.
        size: side of the square frames the models run at.
        source: source image; driving: driving clip (the repository's bundled assets by default).
        isolate: run each model and backend in a fresh process (separate peak memory figures).
        onnx_cache: folder of the ONNX exports (default :func:`enliven.export.onnx_cache_dir`).
    """

    models: tuple[str, ...] = DEFAULT_MODELS
    backends: tuple[str, ...] = BACKENDS
    threads: int = 2
    frames: int = 50
    warmup: int = 5
    size: int = 256
    source: Path = DEFAULT_SOURCE
    driving: Path = DEFAULT_DRIVING
    isolate: bool = True
    onnx_cache: Path | None = None


@dataclass(frozen=True)
class StageTimes:
    """Milliseconds per frame (medians over frames); ``dense_motion`` is ``None`` where the generator includes it."""

    preprocess: float
    keypoints: float
    dense_motion: float | None
    generator: float
    postprocess: float
    total: float

    @property
    def fps(self) -> float:
        return 1000.0 / self.total


@dataclass(frozen=True)
class BenchResult:
    """One model on one backend.

    Attributes:
        gflop_frame: GFLOP per frame of convolutions and matrix products (driving keypoints + generate; MediaPipe
            not counted); gflop_source: of source encoding.
        peak_rss_mib: peak resident memory of the process that ran it (shared with others unless isolated).
        unavailable: why it did not run (no timings or memory figure then).
    """

    model: str
    backend: str
    family: str | None = None
    random_weights: bool = False
    stages: StageTimes | None = None
    source_ms: float | None = None
    gflop_frame: float | None = None
    gflop_source: float | None = None
    peak_rss_mib: float | None = None
    isolated: bool = True
    unavailable: str | None = None

    @property
    def label(self) -> str:
        """The model's name (a file's name without its folder) and the backend, e.g. ``fomm-vox onnx``."""
        return f"{Path(self.model).name} {self.backend}"


@dataclass(frozen=True)
class MachineInfo:
    """Where the benchmark ran."""

    cpu: str
    cores: int
    threads: int
    torch: str
    onnxruntime: str | None
    python: str

    def describe(self) -> str:
        runtime = f", onnxruntime {self.onnxruntime}" if self.onnxruntime else ", onnxruntime not installed"
        return (
            f"{self.cpu} ({self.cores} cores), {self.threads} threads; torch {self.torch}{runtime}, "
            f"Python {self.python}"
        )


def machine_info(threads: int) -> MachineInfo:
    """The CPU model (from ``/proc/cpuinfo`` where there is one), thread count and library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import onnxruntime

        runtime: str | None = onnxruntime.__version__
    except ImportError:
        runtime = None
    return MachineInfo(cpu, os.cpu_count() or 1, threads, torch.__version__, runtime, platform.python_version())


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


@dataclass(frozen=True)
class BenchReport:
    """Everything one ``enliven bench`` run measured."""

    machine: MachineInfo
    options: BenchOptions
    results: tuple[BenchResult, ...]

    def fastest(self) -> BenchResult | None:
        """The model and backend with the lowest total per frame (``None`` when nothing ran)."""
        ran = [r for r in self.results if r.stages is not None]
        return min(ran, key=lambda r: r.stages.total) if ran else None  # type: ignore[union-attr]

    def to_dict(self) -> dict[str, Any]:
        """Every number, JSON-ready (milliseconds per frame, GFLOP, MiB)."""
        results = []
        for result in self.results:
            entry = asdict(result)
            if result.stages is not None:
                entry["stages"]["fps"] = result.stages.fps
            results.append(entry)
        options = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self.options).items()}
        return {"machine": asdict(self.machine), "options": options, "target_ms": TARGET_MS, "results": results}

    def write_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` to ``path`` (complete or not at all)."""
        with atomic_output(path) as temp:
            temp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return Path(path)

    def to_markdown(self) -> str:
        """One table (rows: stages; columns: model and backend) and the notes under it."""
        notes: list[str] = []
        header = ["ms per frame (median)"] + [r.label for r in self.results]

        def row(label: str, cell: Any) -> str:
            return "| " + " | ".join([label] + [cell(r) if r.unavailable is None else "—" for r in self.results]) + " |"

        def weights(result: BenchResult) -> str:
            if result.unavailable is None:
                return "random weights" if result.random_weights else "trained"
            notes.append(f"[{len(notes) + 1}] {result.label} unavailable: {result.unavailable}")
            return f"unavailable [{len(notes)}]"

        def stage(name: str) -> Any:
            return lambda r: _ms(getattr(r.stages, name))

        lines = [
            "| " + " | ".join(header) + " |",
            "|---" + "|---:" * len(self.results) + "|",
            "| weights | " + " | ".join(weights(r) for r in self.results) + " |",
            row("pre-processing", stage("preprocess")),
            row("driving keypoints", stage("keypoints")),
            row(
                "dense motion",
                lambda r: "in generator" if r.stages.dense_motion is None else _ms(r.stages.dense_motion),
            ),
            row("generator", stage("generator")),
            row("post-processing", stage("postprocess")),
            row("**total**", lambda r: f"**{_ms(r.stages.total)}**"),
            row("**fps**", lambda r: f"**{r.stages.fps:.1f}**"),
            row("source encoding (once)", lambda r: _ms(r.source_ms)),
            row("GFLOP per frame", lambda r: f"{r.gflop_frame:.2f}"),
            row("GFLOP source (once)", lambda r: f"{r.gflop_source:.2f}"),
            row("peak memory (MiB)", lambda r: f"{r.peak_rss_mib:.0f}"),
        ]
        opts = self.options
        lines += ["", *notes] if notes else []
        lines += [
            "",
            f"machine: {self.machine.describe()}",
            f"{opts.frames} frames after {opts.warmup} warm-up, {opts.size} x {opts.size}, batch 1; driving keypoints "
            "include motion transfer (lite: MediaPipe face mesh of each frame, not in GFLOP); GFLOP count convolutions "
            "and matrix products; peak memory: "
            + ("each model and backend in its own process." if opts.isolate else "one shared process (not isolated)."),
        ]
        best = self.fastest()
        if best is not None and best.stages is not None:
            verdict = "met" if best.stages.total <= TARGET_MS else "not met"
            lines.append(
                f"target 30 fps ({TARGET_MS:.1f} ms per frame with pre- and post-processing): fastest is "
                f"{best.label}, {_ms(best.stages.total)} ms ({best.stages.fps:.1f} fps): {verdict}."
            )
        return "\n".join(lines)
