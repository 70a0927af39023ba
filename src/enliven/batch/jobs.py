"""Batch jobs: what to animate (a source, a driving clip, options), read from a CSV or JSONL file or made for every
pair of two folders, each named by a content hash so that a rerun knows what is already done."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from enliven.errors import InputError
from enliven.inference import AnimateOptions
from enliven.inference.options import options_from_mapping
from enliven.io.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES

#: Columns (CSV) or keys (JSONL) that are not options.
_JOB_KEYS = {"source", "driving", "output"}


@dataclass(frozen=True)
class BatchJob:
    """One animation to make.

    Attributes:
        source: the photo (or a video's first frame).
        driving: the driving clip.
        options: how to animate it.
        output: the file name to write in the output folder (default: ``<source>-<driving>-<key>.mp4``).
    """

    source: Path
    driving: Path
    options: AnimateOptions
    output: str | None = None

    @property
    def key(self) -> str:
        """A hash of the two files' contents and the options: the same job has the same key wherever it runs."""
        digest = hashlib.sha256()
        for path in (self.source, self.driving):  # a missing file is named by its path: the job fails when run
            digest.update((file_digest(path) if path.is_file() else f"missing {path}").encode())
        options = {k: str(v) for k, v in dataclasses.asdict(self.options).items() if k not in {"threads", "device"}}
        digest.update(json.dumps(options, sort_keys=True).encode())
        return digest.hexdigest()[:16]

    @property
    def output_name(self) -> str:
        if self.output:
            return self.output
        return f"{self.source.stem}-{self.driving.stem}-{self.key[:8]}.mp4"

    def to_dict(self) -> dict[str, object]:
        """Plain values (for a worker process or a Ray task)."""
        options = {k: (v.value if hasattr(v, "value") else v) for k, v in dataclasses.asdict(self.options).items()}
        return {"source": str(self.source), "driving": str(self.driving), "options": options, "output": self.output}

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> BatchJob:
        options = options_from_mapping({k: v for k, v in dict(values["options"]).items() if v is not None})  # type: ignore[arg-type]
        return cls(Path(str(values["source"])), Path(str(values["driving"])), options, values.get("output"))  # type: ignore[arg-type]


@lru_cache(maxsize=4096)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (remembered per path, size and modification time)."""
    try:
        stat = path.stat()
    except OSError:
        raise InputError(f"{path} does not exist or cannot be read; check the path.") from None
    return _digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def read_jobs(path: str | Path, base: AnimateOptions | None = None) -> list[BatchJob]:
    """Jobs from a CSV (a header with ``source``, ``driving``, optionally ``output`` and option columns) or JSONL
    file (one object a line, the same keys, or options under ``"options"``). Relative paths are relative to the
    file's folder; ``base`` holds the options the rows do not set.

    Raises:
        InputError: unreadable file, a missing column, an unknown option (with the row's number).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"the jobs file {path} does not exist; give a .csv or .jsonl file.")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    elif suffix in {".jsonl", ".ndjson"}:
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise InputError(f"{path} line {number} is not JSON ({error.msg}).") from None
                if not isinstance(row, dict):
                    raise InputError(f"{path} line {number} must be a JSON object.")
                rows.append({**row.pop("options", {}), **row})
    else:
        raise InputError(f"the jobs file {path} must be .csv or .jsonl, not {suffix or 'without a suffix'}.")
    return [_job(row, path.parent, base, f"{path.name} row {n}") for n, row in enumerate(rows, 1)]


def _job(row: Mapping[str, object], folder: Path, base: AnimateOptions | None, where: str) -> BatchJob:
    missing = [key for key in ("source", "driving") if not str(row.get(key) or "").strip()]
    if missing:
        raise InputError(f"{where} has no {' or '.join(missing)}; every job needs a source and a driving clip.")
    options = {k: v for k, v in row.items() if k not in _JOB_KEYS and v not in (None, "")}
    try:
        parsed = options_from_mapping(options, base=base)
    except InputError as error:
        raise InputError(f"{where}: {error}") from None
    source, driving = (folder / str(row[key]).strip() for key in ("source", "driving"))
    output = str(row.get("output") or "").strip() or None
    if output is not None and Path(output).name != output:
        raise InputError(f"{where}: output must be a file name, not a path ({output!r}).")
    return BatchJob(source, driving, parsed, output)


def pair_jobs(sources: str | Path, drivings: str | Path, options: AnimateOptions | None = None) -> list[BatchJob]:
    """Every photo of ``sources`` with every clip of ``drivings`` (sorted by name).

    Raises:
        InputError: a folder is missing or holds no photos / clips.
    """
    photos = _files(Path(sources), IMAGE_SUFFIXES, "photos")
    clips = _files(Path(drivings), VIDEO_SUFFIXES, "driving clips")
    return [BatchJob(photo, clip, options or AnimateOptions()) for photo in photos for clip in clips]


def _files(folder: Path, suffixes: Iterable[str], what: str) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder; give a folder of {what}.")
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in set(suffixes))
    if not found:
        raise InputError(f"{folder} holds no {what} ({', '.join(sorted(suffixes))}).")
    return found
