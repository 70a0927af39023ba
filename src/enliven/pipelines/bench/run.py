"""``run_bench``: every model on every backend, each in a fresh process, into one :class:`BenchReport`."""

from __future__ import annotations

import pickle
import resource
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from enliven.backends import backend_names, get_backend
from enliven.errors import EnlivenError, InputError
from enliven.inference.animator import Animator
from enliven.models.base import MotionTransferModel
from enliven.pipelines.bench.results import BenchOptions, BenchReport, BenchResult, machine_info
from enliven.pipelines.bench.stages import BenchInputs, count_gflop, load_bench_model, prepare_inputs, time_stages
from enliven.weights import LoadedModel
from enliven.weights.presets import PRESETS


@dataclass(frozen=True)
class _Job:
    model: str
    backend: str
    cache_dir: Path | None
    inputs: BenchInputs
    threads: int
    warmup: int
    size: int


def _peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB.

    Linux's ``VmHWM`` first: ``ru_maxrss`` survives ``exec``, so a fresh child would report its parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux (bytes on macOS)


def _run_job(job: _Job) -> BenchResult:
    """Time one model on one backend in this process (the whole body of an isolated process)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(job.threads)
    try:
        model = load_bench_model(job.model)[0]
        if job.backend != "torch":  # converted by the parent already: taken from the backend's cache
            backend = get_backend(job.backend)
            model = backend.cached(LoadedModel(model, job.model), threads=job.threads, cache_dir=job.cache_dir).model
        animator = Animator(model, device="cpu", size=job.size)
        try:
            stages, source_ms = time_stages(animator, job.inputs, job.warmup)
        finally:
            animator.close()
    finally:
        torch.set_num_threads(threads)
    return BenchResult(job.model, job.backend, stages=stages, source_ms=source_ms, peak_rss_mib=_peak_rss_mib())


def _run_isolated(job: _Job) -> BenchResult:
    """:func:`_run_job` in a fresh Python process, so that its peak memory is its own.

    A plain subprocess rather than ``multiprocessing``: the caller's main module is not imported again, so this works
    from any script. The job and the result (or the exception) travel pickled through the pipes.
    """
    command = [sys.executable, "-c", "from enliven.pipelines.bench.run import _serve_job; _serve_job()"]
    done = subprocess.run(command, input=pickle.dumps(job), capture_output=True, check=False)
    if done.returncode != 0 or not done.stdout:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"the benchmark process exited with code {done.returncode}: {lines[-1] if lines else ''}")
    ok, value = pickle.loads(done.stdout)
    if not ok:
        raise value
    return value


def _serve_job() -> None:
    """The isolated process: a pickled job on stdin, ``(True, result)`` or ``(False, exception)`` on stdout."""
    job = pickle.loads(sys.stdin.buffer.read())
    try:
        answer: tuple[bool, object] = (True, _run_job(job))
    except Exception as err:  # noqa: BLE001 - handed to the parent, which decides
        answer = (False, err)
    try:
        payload = pickle.dumps(answer)
    except Exception:  # noqa: BLE001 - an exception that does not pickle still reports its message
        payload = pickle.dumps((False, RuntimeError(f"{type(answer[1]).__name__}: {answer[1]}")))
    sys.stdout.buffer.write(payload)
    sys.stdout.buffer.flush()


def _convert(model: MotionTransferModel, backend: str, options: BenchOptions) -> str | None:
    """Convert ``model`` for ``backend`` into its cache (first use), so that timed processes find it there; returns
    why the backend cannot run it, or ``None``."""
    try:
        runner = get_backend(backend)
        loaded = LoadedModel(model, "bench")
        runner.check_loaded(loaded, options.size)
        runner.cached(loaded, cache_dir=options.onnx_cache, threads=options.threads)
    except Exception as err:  # noqa: BLE001 - any failure of an optional backend becomes a table note
        return _reason(err)
    return None


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _check_options(options: BenchOptions) -> None:
    """Raise on a bad option before anything slow runs."""
    unknown = [b for b in options.backends if b not in backend_names()]
    if unknown:
        raise InputError(f"unknown backend {unknown[0]!r}; use one of {', '.join(backend_names())}.")
    for spec in options.models:
        if spec not in PRESETS and not Path(spec).expanduser().exists():
            raise InputError(f"{spec} is neither a model name nor a file; run 'enliven models' to list the names.")
    for path in (options.source, options.driving):
        if not path.exists():
            raise InputError(f"{path} does not exist; pass a face photo with --source and a face clip with --driving.")


def run_bench(options: BenchOptions, progress: Callable[[str], None] | None = None) -> BenchReport:
    """Benchmark every model on every backend (see the module docstring).

    Args:
        options: what to run.
        progress: called with a short line before each step (e.g. to print it).

    Raises:
        InputError: a bad input or option. CheckpointError: a model file cannot be loaded.
    """
    _check_options(options)
    say = progress or (lambda _: None)
    say(f"preparing {options.warmup + options.frames} frames at {options.size} x {options.size}")
    inputs = prepare_inputs(options.source, options.driving, options.size, options.warmup + options.frames)
    run = _run_isolated if options.isolate else _run_job
    results = []
    for spec in options.models:
        model, random_weights = load_bench_model(spec)
        gflop_frame, gflop_source = count_gflop(model, options.size)
        common = {"family": model.family, "random_weights": random_weights, "isolated": options.isolate}
        common |= {"gflop_frame": gflop_frame, "gflop_source": gflop_source}
        reasons = {}
        for backend in options.backends:
            if backend != "torch":
                say(f"{spec}: {backend} conversion (cached after the first run)")
                reasons[backend] = _convert(model, backend, options)
        del model
        for backend in options.backends:
            if reasons.get(backend) is not None:
                results.append(BenchResult(spec, backend, unavailable=reasons[backend], **common))
                continue
            say(f"{spec} on {backend}: {options.warmup} + {options.frames} frames")
            job = _Job(spec, backend, options.onnx_cache, inputs, options.threads, options.warmup, options.size)
            try:
                result = run(job)
            except EnlivenError:
                raise
            except Exception as err:  # noqa: BLE001 - an optional backend failing is a result, not a crash
                if backend == "torch":
                    raise
                result = BenchResult(spec, backend, unavailable=_reason(err))
            results.append(replace(result, **common))
    return BenchReport(machine_info(options.threads), options, tuple(results))
