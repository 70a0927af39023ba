"""``ServerConfig``: what ``enliven serve`` is told (validated once, at start)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from enliven.errors import InputError


@dataclass(frozen=True)
class ServerConfig:
    """The REST server's settings.

    Attributes:
        data_dir: where the job database, the accepted inputs and the results live (kept across restarts).
        inputs_dir: a folder whose files jobs may name instead of uploading them (``None``: uploads only).
        token: clients must send ``Authorization: Bearer <token>`` (``None``: no authentication; bind to
            localhost then).
        workers: worker processes running jobs (each loads its models once).
        max_upload_mb: the largest request body taken (larger ones get 413 before they are stored).
        max_video_seconds: the longest driving clip taken.
        model: the model jobs use when they name none (``None``: ``auto``, chosen for each job's photo), and
            ``/v1/animate-frame`` uses (``None``: the default face model).
        frame_sessions: cached sources for ``/v1/animate-frame`` (least recently used ones are dropped).
        jobs_per_worker: a worker process ends after this many jobs and a fresh one takes its place (the memory a
            long-lived process gathers stays bounded).
        live_avatars: photos (or folders of them) for the live page at ``/live/`` (empty: no live page); needs the
            live extra.
    """

    data_dir: Path
    inputs_dir: Path | None = None
    token: str | None = None
    workers: int = 1
    max_upload_mb: int = 200
    max_video_seconds: float = 120.0
    model: str | None = None
    frame_sessions: int = 8
    jobs_per_worker: int = 50
    live_avatars: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        object.__setattr__(self, "live_avatars", tuple(Path(p) for p in self.live_avatars))
        for path in self.live_avatars:
            if not path.exists():
                raise InputError(f"--live {path} does not exist; give photos or a folder of them.")
        if self.inputs_dir is not None:
            object.__setattr__(self, "inputs_dir", Path(self.inputs_dir))
            if not self.inputs_dir.is_dir():
                raise InputError(f"--inputs {self.inputs_dir} is not a folder; give an existing folder.")
        if (
            self.workers < 1
            or self.max_upload_mb < 1
            or self.max_video_seconds <= 0
            or self.frame_sessions < 1
            or self.jobs_per_worker < 1
        ):
            raise InputError(
                "--workers, --max-upload-mb, --max-video-seconds, --jobs-per-worker and sessions must be positive."
            )
        if self.token is not None and len(self.token) < 8:
            raise InputError("--token must be at least 8 characters long.")

    @property
    def database(self) -> Path:
        return self.data_dir / "jobs.sqlite"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def results_dir(self) -> Path:
        return self.data_dir / "results"

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 2**20

    @property
    def threads_per_worker(self) -> int:
        return max(1, (os.cpu_count() or 1) // self.workers)

    def make_dirs(self) -> None:
        for folder in (self.data_dir, self.jobs_dir, self.results_dir):
            folder.mkdir(parents=True, exist_ok=True)
