"""What a prepared dataset records: per-input results (to resume) and ``metadata.json`` (to train).

``OUT/metadata.json`` (read by :mod:`enliven.data`)::

    {"version": 1, "size": 256, "kind": "faces",
     "clips": {"<clip>": {"split", "identity", "origin", "source", "labels", "action", "fps", "num_frames",
                          "crop_box": [x0, y0, x1, y1], "license", "path": "train/<clip>",
                          "origin_frames": [start, stop]}}}

``crop_box`` is in pixels of the source frames (see :mod:`enliven.preprocess.boxes`); ``origin_frames`` are
the indices of the clip's first and one-past-last frames in the source (after ``--fps`` resampling).
``OUT/.prepare/state.json`` keeps one :class:`ClipResult` per input, written after every finished input, so an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from enliven.errors import OutputError
from enliven.io import atomic_output
from enliven.prepare.sources import ClipSource

METADATA_VERSION = 1
STATE_VERSION = 2  # 2: ten frames' identity descriptors, compared frame by frame


@dataclass(frozen=True)
class ShotRecord:
    """One output clip cut from an input.

    Attributes:
        clip: output clip name (unique in the dataset).
        filename: its folder name (PNG frames) or ``<clip>.mp4``.
        start, stop: frame range in the input (``stop`` exclusive).
        num_frames: frames written.
        crop_box: ``(x0, y0, x1, y1)`` crop in source pixels.
        fps: frame rate.
    """

    clip: str
    filename: str
    start: int
    stop: int
    num_frames: int
    crop_box: tuple[float, float, float, float]
    fps: float


@dataclass(frozen=True)
class ClipResult:
    """The outcome of preparing one input.

    Attributes:
        key: the input's :attr:`ClipSource.key`.
        source: what the input is (kept so a later run can place its clips without the original inputs).
        shots: output clips written (empty if the input was skipped).
        reason: why the whole input was skipped, ``None`` if some clips were written.
        dropped: reasons for shots left out of a kept input (e.g. ``"frames 250-299: frozen"``).
        embeddings: face descriptors (128 floats each) from a few of its frames.
    """

    key: str
    source: ClipSource
    shots: tuple[ShotRecord, ...] = ()
    reason: str | None = None
    dropped: tuple[str, ...] = ()
    embeddings: tuple[tuple[float, ...], ...] = ()

    @property
    def num_frames(self) -> int:
        return sum(s.num_frames for s in self.shots)

    @property
    def finished(self) -> bool:
        """Whether a later run may reuse this result (an unexpected failure is retried instead)."""
        return self.reason is None or not self.reason.startswith("failed")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["source"]["path"] = str(self.source.path.resolve())
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClipResult:
        src = dict(data["source"])
        src["path"] = Path(src["path"])
        src["labels"] = tuple(src.get("labels", ()))
        shots = tuple(ShotRecord(**{**s, "crop_box": tuple(s["crop_box"])}) for s in data.get("shots", ()))
        return cls(
            key=data["key"],
            source=ClipSource(**src),
            shots=shots,
            reason=data.get("reason"),
            dropped=tuple(data.get("dropped", ())),
            embeddings=tuple(tuple(e) for e in data.get("embeddings", ())),
        )


@dataclass
class PrepareState:
    """Results so far of every input prepared into one output folder, and the settings they were made with."""

    settings: dict[str, Any]
    results: dict[str, ClipResult] = field(default_factory=dict)

    @staticmethod
    def path(out: Path) -> Path:
        return out / ".prepare" / "state.json"

    @classmethod
    def load(cls, out: Path, settings: dict[str, Any]) -> PrepareState:
        """The state of ``out``, or a fresh one.

        Raises:
            OutputError: ``out`` holds a dataset made with other settings (kind, size, fps, ...).
        """
        path = cls.path(out)
        if not path.exists():
            return cls(settings)
        try:
            data = json.loads(path.read_text())
            results = {k: ClipResult.from_json(v) for k, v in data["results"].items()}
            stored = data["settings"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise OutputError(
                f"The resume file {path} is unreadable ({err}); delete the folder {out} or choose another output."
            ) from err
        if data.get("version", 1) != STATE_VERSION:
            raise OutputError(
                f"{out} was prepared by an earlier version of enliven prepare, whose identities are not comparable "
                "with this one's (descriptors of 3 frames a clip, compared by their means); prepare into another "
                "folder, or delete this one to start again."
            )
        if stored != settings:
            changed = ", ".join(
                f"{k} {stored.get(k)!r} -> {settings.get(k)!r}" for k in settings if stored.get(k) != settings[k]
            )
            raise OutputError(
                f"{out} holds a dataset prepared with other settings ({changed}); use another output folder or "
                "run with the same settings to resume."
            )
        return cls(stored, results)

    def save(self, out: Path) -> None:
        """Write the state atomically."""
        data = {
            "version": STATE_VERSION,
            "settings": self.settings,
            "results": {k: r.to_json() for k, r in self.results.items()},
        }
        write_json(self.path(out), data)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False))


def clip_metadata(result: ClipResult, shot: ShotRecord, split: str, identity: str) -> dict[str, Any]:
    """The ``metadata.json`` entry of one output clip."""
    src = result.source
    return {
        "split": split,
        "identity": identity,
        "origin": src.origin,
        "source": src.source,
        "labels": list(src.labels),
        "action": src.action,
        "fps": shot.fps,
        "num_frames": shot.num_frames,
        "crop_box": [round(v, 2) for v in shot.crop_box],
        "license": src.license,
        "path": f"{split}/{shot.filename}",
        "origin_frames": [shot.start, shot.stop],
    }


def write_metadata(out: Path, kind: str, size: int, clips: dict[str, dict[str, Any]]) -> None:
    """Write ``OUT/metadata.json`` atomically, clips sorted by name."""
    data = {"version": METADATA_VERSION, "size": size, "kind": kind, "clips": dict(sorted(clips.items()))}
    write_json(out / "metadata.json", data)
