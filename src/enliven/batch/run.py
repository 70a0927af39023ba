"""``run_batch``: many jobs, each model loaded once per worker, on local processes or a Ray cluster.

Every job runs :func:`~enliven.inference.animate_file` (the library's one pipeline) in :func:`run_job`, which never
raises: a bad job comes back as a failed :class:`JobResult` with its error in one sentence, and the batch goes on.
Results are appended to ``results.jsonl`` in the output folder as they arrive (:class:`ResultsManifest`); a rerun
skips the jobs recorded there as done whose output file is present (jobs are named by a hash of their inputs'
contents and options). Outputs appear complete or not at all (``animate_file`` writes a temporary file, then renames).

Workers: ``workers=1`` runs in this process; more start that many local processes (spawned; the CPU's threads, the
model's and the video encoder's, shared among them unless ``threads`` says how many each takes). With workers, this
process never imports torch or MediaPipe: it would cost the batch seconds before the first worker starts.
``ray_address`` sends each job to a Ray cluster as a task (one CPU each; a task whose worker dies is retried by Ray, up
to three times). Each worker keeps the driving keypoints (:class:`~enliven.inference.driving_cache.DrivingCache`):
a clip that many photos share is decoded and tracked once per worker (:mod:`enliven.batch.local` hands a worker the
next job of the clip it just animated).
"""

from __future__ import annotations

import functools
import json
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from enliven.batch.jobs import BatchJob
from enliven.errors import EnlivenError, InputError
from enliven.inference.options import is_auto

RESULTS_FILE = "results.jsonl"


@dataclass(frozen=True)
class JobResult:
    """What became of one job (a line of ``results.jsonl``)."""

    key: str
    source: str
    driving: str
    output: str
    status: str  #: ``done`` or ``failed``
    error: str | None = None
    frames: int = 0
    seconds: float = 0.0
    worker: str = ""
    model: str = ""  #: the model that ran it (``auto``'s choice for the photo, or the one the job named)


@dataclass(frozen=True)
class BatchSummary:
    """A batch run: the results of the jobs run now, and how many were skipped as already done."""

    results: tuple[JobResult, ...]
    skipped: int
    seconds: float

    @property
    def done(self) -> int:
        return sum(r.status == "done" for r in self.results)

    @property
    def failed(self) -> int:
        return sum(r.status == "failed" for r in self.results)


class ResultsManifest:
    """``results.jsonl``: one JSON line per finished job, appended (and flushed to disk) as each one ends. A line
    cut short by a crash is ignored when read."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / RESULTS_FILE

    def read(self) -> list[JobResult]:
        if not self.path.is_file():
            return []
        results = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                results.append(JobResult(**json.loads(line)))
            except (json.JSONDecodeError, TypeError):
                continue  # a partial last line from an interrupted run
        return results

    def done_keys(self) -> set[str]:
        """Keys of jobs recorded as done whose output is still there."""
        folder = self.path.parent
        return {r.key for r in self.read() if r.status == "done" and (folder / r.output).is_file()}

    def append(self, result: JobResult) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(asdict(result)) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


# -- one job, in whatever process runs it ---------------------------------------------------------------------------
_MODELS: dict[tuple, object] = {}  # this process's loaded models (a worker loads each once)


@functools.cache
def _driving_cache():  # noqa: ANN202 - a DrivingCache, imported late (as _chooser)
    """This process's driving keypoints: a clip that many jobs share is decoded and tracked once per worker."""
    from enliven.inference.driving_cache import DrivingCache

    return DrivingCache()


@functools.cache
def _chooser():  # noqa: ANN202 - a ModelChooser, imported late (the main process of a batch does not load MediaPipe)
    """This process's chooser for ``--model auto`` (its detectors made once)."""
    from enliven.inference.choice import ModelChooser

    return ModelChooser()


def run_job(job: dict[str, object], output_dir: str, threads: int | None = None) -> dict[str, object]:
    """Run one job (:meth:`BatchJob.to_dict`) and return its :class:`JobResult` as a dict; never raises."""
    from enliven.inference import animate_file, load_for_options, set_threads
    from enliven.inference.driving import read_source

    started = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        batch_job = BatchJob.from_dict(job)
        key, name = batch_job.key, batch_job.output_name
    except EnlivenError as error:
        return asdict(JobResult("", str(job.get("source")), str(job.get("driving")), "", "failed", str(error)))
    try:
        options = batch_job.options
        if is_auto(options.model) and options.config is None:  # the model for this job's photo
            options, _ = _chooser().resolve(options, read_source(Path(batch_job.source)))
        if threads is not None:  # the worker's share of the cores: the model's and the encoder's threads
            set_threads(threads)
            options = replace(options, threads=threads)
        cache_key = (options.model, str(options.config), options.backend, options.size, options.device)
        if cache_key not in _MODELS:
            _MODELS[cache_key] = load_for_options(options)[0]
        result = animate_file(
            batch_job.source,
            batch_job.driving,
            Path(output_dir) / name,
            options,
            model=_MODELS[cache_key],
            driving_cache=_driving_cache(),
        )
        outcome = JobResult(
            key,
            str(batch_job.source),
            str(batch_job.driving),
            name,
            "done",
            None,
            result.frames,
            model=str(options.model),
        )
    except EnlivenError as error:
        outcome = JobResult(key, str(batch_job.source), str(batch_job.driving), name, "failed", str(error))
    except Exception as error:  # one bad job never stops the batch; its error is recorded
        message = f"{type(error).__name__}: {error}"
        outcome = JobResult(key, str(batch_job.source), str(batch_job.driving), name, "failed", message)
    seconds = time.perf_counter() - started
    return asdict(JobResult(**{**asdict(outcome), "seconds": round(seconds, 3), "worker": worker}))


def _init_worker(threads: int) -> None:
    """A local worker's start: its share of the cores, and the imports every job needs (torch, MediaPipe), made
    while the batch's first jobs are handed out."""
    import atexit

    from enliven.inference.allocator import keep_freed_memory
    from enliven.inference.quick_exit import skip_final_collection
    from enliven.inference.threads import set_threads

    atexit.register(skip_final_collection)  # the pool's end waits for its workers' exit
    keep_freed_memory()
    set_threads(threads)
    import enliven.inference.animate  # noqa: F401


# -- the batch --------------------------------------------------------------------------------------------------------
def run_batch(
    jobs: Iterable[BatchJob],
    output_dir: str | Path,
    *,
    workers: int = 1,
    ray_address: str | None = None,
    threads: int | None = None,
    on_result: Callable[[JobResult, int, int], None] | None = None,
) -> BatchSummary:
    """Run ``jobs`` into ``output_dir`` (see the module docstring); ``on_result(result, done, total)`` after each.

    ``threads``: the model's CPU threads in each local worker (``None``: one worker takes
    :func:`~enliven.inference.threads.default_threads`, several share the cores evenly).

    Raises:
        InputError: ``workers`` below 1, or the output folder cannot be made.
    """
    if workers < 1:
        raise InputError(f"--workers must be 1 or more, got {workers}.")
    started = time.perf_counter()
    folder = Path(output_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot make the output folder {folder} ({error.strerror}).") from None
    manifest = ResultsManifest(folder)
    finished = manifest.done_keys()
    unique: dict[str, BatchJob] = {}
    for job in jobs:
        unique.setdefault(job.key, job)  # the same job twice runs once
    todo = [job for key, job in unique.items() if key not in finished]
    skipped = len(unique) - len(todo)
    results: list[JobResult] = []

    def record(values: dict[str, object]) -> None:
        result = JobResult(**values)  # type: ignore[arg-type]
        manifest.append(result)
        results.append(result)
        if on_result is not None:
            on_result(result, len(results), len(todo))

    if not todo:
        pass
    elif ray_address is not None:
        from enliven.batch.ray_runner import run_on_ray

        run_on_ray([job.to_dict() for job in todo], str(folder), ray_address, workers, record, run_job)
    elif workers == 1:
        from enliven.inference.threads import set_threads

        set_threads(threads)
        for job in sorted(todo, key=lambda job: str(job.driving)):  # a clip's jobs in a row: its keypoints stay cached
            record(run_job(job.to_dict(), str(folder)))
    else:
        from enliven.batch.local import run_on_processes

        share = threads or max(1, (os.cpu_count() or 1) // workers)
        jobs_as_dicts = [job.to_dict() for job in todo]
        run_on_processes(jobs_as_dicts, str(folder), workers, share, record, run_job, _init_worker)
    return BatchSummary(tuple(results), skipped, time.perf_counter() - started)
