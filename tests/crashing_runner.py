"""A job runner for the batch tests whose worker process dies on a job named "poison" (as a decoder crash or the
OOM killer would end it); imported by spawned workers, so it needs nothing beyond the standard library."""

from __future__ import annotations

import os
import time


def run(job: dict[str, object], output_dir: str, threads: int | None) -> dict[str, object]:
    if "poison" in str(job["source"]):
        os._exit(3)
    time.sleep(0.3)  # still running when the poisoned job's worker dies
    return {"key": str(job["source"]), "source": str(job["source"]), "driving": str(job["driving"]), "output": "",
            "status": "done", "worker": str(os.getpid())}  # fmt: skip
