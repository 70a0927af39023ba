"""``JobStore``: the server's jobs in SQLite (WAL), shared by the API process and the worker processes.

A job is ``queued`` when accepted, ``running`` once a worker claimed it (one transaction: no two workers take the
same job), then ``done``, ``failed`` or ``cancelled``. A server that stops for any reason (SIGKILL included) loses
nothing: at start, jobs left ``running`` by workers that died with it are queued again (:meth:`JobStore.recover`),
and accepted jobs are on disk from the moment ``POST /v1/jobs`` answered.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL_STATES = ("done", "failed", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    progress REAL NOT NULL DEFAULT 0,
    error TEXT,
    source TEXT NOT NULL,
    driving TEXT NOT NULL,
    options TEXT NOT NULL,
    output TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    cancel INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, created);
"""


@dataclass(frozen=True)
class Job:
    """A job as stored (see the module docstring for the states)."""

    id: str
    state: str
    created: float
    started: float | None
    finished: float | None
    progress: float
    error: str | None
    source: str
    driving: str
    options: dict
    output: str | None
    attempts: int
    cancel: bool

    def public(self) -> dict[str, object]:
        """What a client sees: no server paths."""
        return {
            "id": self.id,
            "state": self.state,
            "progress": round(self.progress, 3),
            "error": self.error,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "attempts": self.attempts,
            "options": self.options,
        }


class JobStore:
    """The jobs table in ``path`` (one connection per thread; safe across processes)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        with self._connect() as connection:
            connection.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.row_factory = sqlite3.Row
            self._local.connection = connection
        return connection

    # -- the API's side ------------------------------------------------------------------------------------------
    def new_id(self) -> str:
        return uuid.uuid4().hex

    def add(self, job_id: str, source: str, driving: str, options: dict) -> Job:
        """Accept a job (its files already in place)."""
        connection = self._connect()
        connection.execute(
            "INSERT INTO jobs (id, state, created, source, driving, options) VALUES (?, 'queued', ?, ?, ?, ?)",
            (job_id, time.time(), source, driving, json.dumps(options)),
        )
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> Job | None:
        row = self._connect().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _job(row)

    def list(self, state: str | None = None, limit: int = 100) -> list[Job]:
        if state is None:
            rows = self._connect().execute("SELECT * FROM jobs ORDER BY created DESC LIMIT ?", (limit,))
        else:
            rows = self._connect().execute(
                "SELECT * FROM jobs WHERE state = ? ORDER BY created DESC LIMIT ?", (state, limit)
            )
        return [_job(row) for row in rows.fetchall()]

    def counts(self) -> dict[str, int]:
        rows = self._connect().execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        return {state: 0 for state in STATES} | {row[0]: row[1] for row in rows}

    def cancel(self, job_id: str) -> Job | None:
        """A queued job is cancelled at once; a running one is asked to stop (its worker ends it as cancelled)."""
        connection = self._connect()
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute(
                "UPDATE jobs SET state = 'cancelled', finished = ? WHERE id = ? AND state = 'queued'",
                (time.time(), job_id),
            )
            connection.execute("UPDATE jobs SET cancel = 1 WHERE id = ? AND state = 'running'", (job_id,))
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return self.get(job_id)

    def recover(self) -> int:
        """Queue again the jobs left running by a server that stopped; how many."""
        cursor = self._connect().execute("UPDATE jobs SET state = 'queued', progress = 0 WHERE state = 'running'")
        return cursor.rowcount

    # -- the workers' side ---------------------------------------------------------------------------------------
    def claim(self) -> Job | None:
        """The oldest queued job, now running (``None``: nothing queued)."""
        connection = self._connect()
        connection.execute("BEGIN IMMEDIATE")
        try:
            row = connection.execute("SELECT id FROM jobs WHERE state = 'queued' ORDER BY created LIMIT 1").fetchone()
            if row is not None:
                connection.execute(
                    "UPDATE jobs SET state = 'running', started = ?, attempts = attempts + 1, progress = 0 "
                    "WHERE id = ?",
                    (time.time(), row[0]),
                )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return None if row is None else self.get(row[0])

    def progress(self, job_id: str, fraction: float) -> None:
        self._connect().execute("UPDATE jobs SET progress = ? WHERE id = ? AND state = 'running'", (fraction, job_id))

    def cancel_requested(self, job_id: str) -> bool:
        row = self._connect().execute("SELECT cancel FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row[0])

    def finish(self, job_id: str, state: str, *, output: str | None = None, error: str | None = None) -> None:
        if state not in FINAL_STATES:
            raise ValueError(f"a job ends as one of {FINAL_STATES}, not {state!r}")
        self._connect().execute(
            "UPDATE jobs SET state = ?, finished = ?, output = ?, error = ?, progress = CASE WHEN ? = 'done' "
            "THEN 1 ELSE progress END WHERE id = ?",
            (state, time.time(), output, error, state, job_id),
        )


def _job(row: sqlite3.Row) -> Job:
    values = dict(row)
    values["options"] = json.loads(values["options"])
    values["cancel"] = bool(values["cancel"])
    return Job(**values)
