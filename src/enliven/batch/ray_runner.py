"""Batch jobs as Ray tasks: each job is one task (one CPU) running :func:`~enliven.batch.run.run_job`, whose process
keeps the models it loaded for the next task it gets. Ray retries a task whose worker process dies (up to three
times); a job's own error is a result, not an exception, so it is never retried.

``address``: ``local`` starts a Ray instance in this process with ``workers`` CPUs; anything else is passed to
``ray.init`` (``auto``: the cluster this machine belongs to; ``HOST:PORT``: a head node). On a real cluster the job
files and the output folder must be on storage every node sees under the same path.
"""

from __future__ import annotations

from collections.abc import Callable

from enliven.errors import InputError
from enliven.preprocess import MissingDependencyError


def run_on_ray(
    jobs: list[dict[str, object]],
    output_dir: str,
    address: str,
    workers: int,
    record: Callable[[dict[str, object]], None],
    run_job: Callable[[dict[str, object], str, int | None], dict[str, object]],
) -> None:
    """Run ``jobs`` (:meth:`~enliven.batch.jobs.BatchJob.to_dict`) as Ray tasks of ``run_job``
    (:func:`enliven.batch.run.run_job`, importable by every worker); ``record`` each result dict as it arrives."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("--ray needs Ray: pip install 'enliven[ray]'.") from None
    started_here = False
    if not ray.is_initialized():
        try:
            if address == "local":
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise InputError(
                f"cannot reach the Ray cluster at {address} ({error}); start one with 'ray start'."
            ) from None
        started_here = True
    task = ray.remote(num_cpus=1, max_retries=3)(run_job)
    try:
        pending = {task.remote(job, output_dir, 1): job for job in jobs}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                job = pending.pop(ref)
                try:
                    record(ray.get(ref))
                except ray.exceptions.RayError as error:  # the task's retries are spent (its workers kept dying)
                    reason = f"Ray could not run it: {type(error).__name__}"
                    record({"key": "", "source": str(job["source"]), "driving": str(job["driving"]), "output": "",
                            "status": "failed", "error": reason})  # fmt: skip
    finally:
        if started_here:
            ray.shutdown()
