"""Batch jobs on local worker processes, a job at a time per worker, with clip affinity.

Each worker keeps the driving keypoints of the clips it has animated
(:class:`~enliven.inference.driving_cache.DrivingCache`), so the next job is chosen for the worker that just became
free: another job with the clip it just animated when one is left, else a clip no other worker holds (the one with
the most jobs left). Exactly ``workers`` jobs are in flight, so the job submitted when a worker finishes is the one
that worker runs next. A studio's photos x clips batch thus tracks every clip about once, not once per worker.

A worker process that dies (a crash in a decoder or a native library, the kernel's OOM killer) takes the pool with
it: the jobs that were running become suspects and run again in a new pool, one at a time; a suspect whose worker
dies again, alone, is recorded as failed, and the others go on, so one poisonous input never stops the batch.
Results that came in before the pool broke are kept, and a job the broken pool refused waits for the next pool.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context

JobDict = dict[str, object]
#: ``run_job(job, output_dir, threads) -> result dict`` (:func:`enliven.batch.run.run_job`), importable by workers.
JobRunner = Callable[[JobDict, str, int | None], JobDict]


class ClipQueues:
    """Jobs waiting, grouped by driving clip (in the order given, clip by clip)."""

    def __init__(self, jobs: list[JobDict]) -> None:
        self._groups: dict[str, deque[JobDict]] = {}
        for job in jobs:
            self._groups.setdefault(str(job["driving"]), deque()).append(job)

    def __len__(self) -> int:
        return sum(len(group) for group in self._groups.values())

    def take(self, last_clip: str | None, busy: set[str]) -> JobDict | None:
        """The next job for a worker that last animated ``last_clip`` while other workers animate the ``busy``
        clips; ``None`` when none is left."""
        if last_clip is not None and self._groups.get(last_clip):
            return self._groups[last_clip].popleft()
        left = [clip for clip, group in self._groups.items() if group]
        if not left:
            return None
        free = [clip for clip in left if clip not in busy] or left
        return self._groups[max(free, key=lambda clip: len(self._groups[clip]))].popleft()

    def put_back(self, job: JobDict) -> None:
        self._groups.setdefault(str(job["driving"]), deque()).appendleft(job)


def run_on_processes(
    jobs: list[JobDict],
    output_dir: str,
    workers: int,
    threads: int,
    record: Callable[[JobDict], None],
    run_job: JobRunner,
    initializer: Callable[[int], None] | None = None,
) -> None:
    """Run ``jobs`` (:meth:`~enliven.batch.jobs.BatchJob.to_dict`) on ``workers`` spawned processes (no inherited
    torch or MediaPipe threads and locks), each with ``threads`` model threads, and ``record`` every result dict as
    it arrives (see the module docstring). ``initializer(threads)`` runs once in each worker as it starts."""
    queues = ClipQueues(jobs)
    suspects: deque[JobDict] = deque()  # running when a worker died: rerun alone, so that a second death names one
    suspected: set[int] = set()  # ids of the jobs ever suspected
    context = get_context("spawn")
    while len(queues) or suspects:
        initargs = (threads,) if initializer is not None else ()
        with ProcessPoolExecutor(workers, mp_context=context, initializer=initializer, initargs=initargs) as pool:
            running: dict[Future, JobDict] = {}
            submit = functools.partial(
                _submit, pool, running, queues, suspects, workers, (run_job, output_dir, threads)
            )
            submit(None)
            try:
                while running:
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        result = future.result()  # raises BrokenProcessPool if a worker died
                        job = running.pop(future)
                        record(result)
                        submit(str(job["driving"]))
            except BrokenProcessPool:
                for future, job in running.items():
                    if future.done() and not future.cancelled() and future.exception() is None:
                        record(future.result())  # it finished before the pool broke: keep its result
                    elif id(job) in suspected:  # it ran alone: its worker died again
                        record(_died(job))
                    else:
                        suspected.add(id(job))
                        suspects.append(job)


def _submit(
    pool: ProcessPoolExecutor,
    running: dict[Future, JobDict],
    queues: ClipQueues,
    suspects: deque[JobDict],
    workers: int,
    call: tuple[JobRunner, str, int],
    last_clip: str | None,
) -> None:
    """Submit jobs until every worker has one (the first for the worker that finished ``last_clip``); a suspect
    runs alone."""
    run_job, output_dir, threads = call
    if suspects:  # a suspect runs alone, and nothing starts beside it
        if not running:
            suspect = suspects.popleft()
            try:
                running[pool.submit(run_job, suspect, output_dir, threads)] = suspect
            except BrokenProcessPool:
                suspects.appendleft(suspect)
                raise
        return
    while len(running) < workers:
        job = queues.take(last_clip, {str(j["driving"]) for j in running.values()})
        if job is None:
            return
        try:
            running[pool.submit(run_job, job, output_dir, threads)] = job
        except BrokenProcessPool:  # a worker died while other results came in: the job waits for the next pool
            queues.put_back(job)
            raise
        last_clip = None


def _died(job: JobDict) -> JobDict:
    """The failed result of a job whose worker process died each time it ran."""
    return {
        "key": "",
        "source": str(job["source"]),
        "driving": str(job["driving"]),
        "output": "",
        "status": "failed",
        "error": "the worker process died while running this job (twice, the second time alone); nothing was written.",
    }
