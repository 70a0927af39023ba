"""The server's worker processes: each claims the oldest queued job from the :class:`~enliven.server.store.JobStore`,
runs :func:`~enliven.inference.animate_file` (its models loaded once and kept), and records how it ended.

Workers are child processes of the server that die with it (Linux's parent-death signal, and a check of the parent
process every second elsewhere): after a SIGKILL of the server, no orphan finishes a job that the restarted server
queues again, so no job runs twice at once. A job's video is written to a temporary file and renamed
(``animate_file``), so a result is whole or absent.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import replace
from multiprocessing import get_context
from multiprocessing.process import BaseProcess
from pathlib import Path

from enliven.server.config import ServerConfig
from enliven.server.store import Job, JobStore

logger = logging.getLogger(__name__)

#: Seconds between two looks at the queue when it is empty, and between two writes of a job's progress.
POLL_SECONDS = 0.2
PROGRESS_SECONDS = 0.5
#: Workers run at a lower CPU priority than the API process (and its one-frame animation).
WORKER_NICENESS = 10


class WorkerPool:
    """``config.workers`` worker processes kept running: one that exits (after ``config.jobs_per_worker`` jobs, which
    bounds the memory a long-lived process gathers, or after a crash) is replaced within a second."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._context = get_context("spawn")  # no state inherited from the server
        self._processes: list[BaseProcess] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="enliven-worker-pool", daemon=True)
        self.started = 0

    def start(self) -> WorkerPool:
        self._processes = [self._spawn(index) for index in range(self.config.workers)]
        self._thread.start()
        return self

    def _spawn(self, index: int) -> BaseProcess:
        process = self._context.Process(
            target=worker_main, args=(self.config, index, os.getpid()), name=f"enliven-worker-{index}", daemon=True
        )
        process.start()
        self.started += 1
        return process

    def _supervise(self) -> None:
        while not self._stop.wait(1.0):
            for index, process in enumerate(self._processes):
                if not process.is_alive():
                    process.join(0)
                    self._processes[index] = self._spawn(index)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            process.join(timeout)
            if process.is_alive():
                process.kill()


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass


class _StoreCancel:
    """``is_set()`` asks the store whether the job was cancelled (at most once every half second)."""

    def __init__(self, store: JobStore, job_id: str, parent: int) -> None:
        self.store, self.job_id, self.parent = store, job_id, parent
        self._checked, self._set = 0.0, False

    def is_set(self) -> bool:
        now = time.monotonic()
        if not self._set and now - self._checked > PROGRESS_SECONDS:
            self._checked = now
            if os.getppid() != self.parent:  # the server is gone: stop, the restarted server runs it again
                os._exit(1)
            self._set = self.store.cancel_requested(self.job_id)
        return self._set


def worker_main(config: ServerConfig, index: int, parent: int) -> None:
    """A worker's loop (see the module docstring): ``config.jobs_per_worker`` jobs, or until the server stops it or
    dies."""
    _die_with_parent()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    os.nice(WORKER_NICENESS)  # the API answers first: status calls stay fast while every core renders
    from enliven.inference import set_threads
    from enliven.inference.allocator import keep_freed_memory

    keep_freed_memory()
    set_threads(config.threads_per_worker)
    store = JobStore(config.database)
    models: dict[tuple, object] = {}
    for _ in range(config.jobs_per_worker):  # then this process ends and the pool starts a fresh one
        while (job := store.claim()) is None:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(POLL_SECONDS)
        run_one(job, store, config, models, parent)


def run_one(job: Job, store: JobStore, config: ServerConfig, models: dict[tuple, object], parent: int) -> None:
    """Run a claimed job and record its end (done, failed with one sentence, or cancelled)."""
    from enliven.errors import EnlivenError
    from enliven.inference import Cancelled, animate_file, load_for_options
    from enliven.inference.options import options_from_mapping

    output = config.results_dir / f"{job.id}.mp4"
    last = 0.0

    def progress(done: int, total: int | None) -> None:
        nonlocal last
        if total and time.monotonic() - last > PROGRESS_SECONDS:
            last = time.monotonic()
            store.progress(job.id, done / total)

    try:
        # the worker's share of the cores: the model's and the encoder's threads (clients cannot set threads)
        options = replace(options_from_mapping(job.options), threads=config.threads_per_worker)
        key = (options.model, options.backend, options.size)
        if key not in models:
            models[key] = load_for_options(options)[0]
        animate_file(
            Path(job.source),
            Path(job.driving),
            output,
            options,
            model=models[key],  # type: ignore[arg-type]
            on_progress=progress,
            cancel=_StoreCancel(store, job.id, parent),
        )
        store.finish(job.id, "done", output=str(output))
    except Cancelled:
        store.finish(job.id, "cancelled", error="cancelled by a DELETE request")
    except EnlivenError as error:
        store.finish(job.id, "failed", error=str(error))
    except Exception as error:  # recorded, and the worker goes on with the next job
        logger.exception("job %s failed", job.id)
        store.finish(job.id, "failed", error=f"internal error ({type(error).__name__}); the server's log has details")
    shutil.rmtree(config.jobs_dir / job.id, ignore_errors=True)  # the inputs: the job has ended
