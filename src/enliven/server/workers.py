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
import time
from multiprocessing import get_context
from multiprocessing.process import BaseProcess
from pathlib import Path

from enliven.server.config import ServerConfig
from enliven.server.store import Job, JobStore

logger = logging.getLogger(__name__)

#: Seconds between two looks at the queue when it is empty, and between two writes of a job's progress.
POLL_SECONDS = 0.2
PROGRESS_SECONDS = 0.5


def start_workers(config: ServerConfig) -> list[BaseProcess]:
    """Start ``config.workers`` worker processes (spawned: no state inherited from the server)."""
    context = get_context("spawn")
    processes = []
    for index in range(config.workers):
        process = context.Process(
            target=worker_main, args=(config, index, os.getpid()), name=f"enliven-worker-{index}", daemon=True
        )
        process.start()
        processes.append(process)
    return processes


def stop_workers(processes: list[BaseProcess], timeout: float = 5.0) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
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
    """A worker's loop (see the module docstring); runs until the server stops it or dies."""
    _die_with_parent()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    from enliven.inference import set_threads
    from enliven.inference.allocator import keep_freed_memory

    keep_freed_memory()
    set_threads(config.threads_per_worker)
    store = JobStore(config.database)
    models: dict[tuple, object] = {}
    while True:
        if os.getppid() != parent:
            os._exit(1)
        job = store.claim()
        if job is None:
            time.sleep(POLL_SECONDS)
            continue
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
        options = options_from_mapping(job.options)
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
