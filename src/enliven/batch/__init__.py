"""Batch runs: many (photo, driving clip, options) jobs from a CSV/JSONL file or two folders, each model loaded once
per worker, on local processes or a Ray cluster, resumable, with a results manifest (``enliven batch``)."""

from enliven.batch.jobs import BatchJob, pair_jobs, read_jobs
from enliven.batch.run import BatchSummary, JobResult, ResultsManifest, run_batch, run_job

__all__ = ["BatchJob", "BatchSummary", "JobResult", "ResultsManifest", "pair_jobs", "read_jobs", "run_batch", "run_job"]
