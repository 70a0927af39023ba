"""Finding the clips to prepare: folders of videos, folders of frames and manifest CSVs.

A *clip source* is one input video file or one folder of frames, with what is known about it (dataset,
licence, content, identity hints). Nothing here decodes media; :mod:`enliven.prepare.frames` does.
"""

from __future__ import annotations

import csv
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from enliven.errors import InputError

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".gif", ".m4v"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})

# Manifest `kind` values that each --kind reads by default ("any" reads every row).
DEFAULT_MANIFEST_KINDS = {"faces": ("faces",), "bodies": ("bodies",), "any": ()}

# Identity hints found in names and descriptions: VoxCeleb speaker ids and MEAD actor codes.
_HINT_PATTERNS = (
    re.compile(r"(?<![A-Za-z0-9])(id\d{5})(?!\d)"),
    re.compile(r"\bactor ([A-Z]\d{3})\b"),
)


@dataclass(frozen=True)
class ClipSource:
    """One input clip and what its manifest or folder says about it.

    Attributes:
        key: stable unique id of the input (its resolved path), used to resume.
        path: the video file or frame folder.
        frame_folder: whether ``path`` is a folder of frames.
        name: ASCII-safe clip name, unique among the inputs of a run.
        origin: the path as the manifest or folder lists it (relative to the CSV or the input folder).
        source: dataset or repository it comes from (manifest ``source``, else the input folder's name).
        group: the fallback identity group used when no face identifies the clip (source, or parent folder).
        split_hint: manifest split (``train``, ``val``, ``test``, ``extra``) or ``None``.
        identity_hint: explicit identity (manifest ``identity`` column, a VoxCeleb id or MEAD actor code).
        action: content description, "" when unknown.
        labels: short labels (manifest kind, realness, role; sub-folder names for folder inputs).
        license: licence text, "" when unknown.
    """

    key: str
    path: Path
    frame_folder: bool
    name: str
    origin: str
    source: str
    group: str
    split_hint: str | None = None
    identity_hint: str | None = None
    action: str = ""
    labels: tuple[str, ...] = ()
    license: str = ""


def safe_name(text: str) -> str:
    """An ASCII file name made of ``[A-Za-z0-9._-]``; non-ASCII text gets a short hash so names stay distinct."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", folded).strip("._-") or "clip"
    if folded != text or cleaned == "clip":
        cleaned = f"{cleaned}_{hashlib.sha1(text.encode()).hexdigest()[:6]}"
    return cleaned[:80]


def find_identity_hint(*texts: str) -> str | None:
    """The first VoxCeleb id (``id01234``) or MEAD actor code (``actor M030``) in the texts, if any."""
    for text in texts:
        for pattern in _HINT_PATTERNS:
            match = pattern.search(text)
            if match:
                return match.group(1)
    return None


def _is_frame_sequence(images: Sequence[Path]) -> bool:
    """Whether image names differ only in their digits (``000001.png``, ``frame_02.jpg``): a clip, not stills."""
    if len(images) < 2:
        return len(images) == 1 and images[0].stem.isdigit()
    patterns = {re.sub(r"\d+", "#", p.stem) for p in images}
    return len(patterns) == 1 and "#" in next(iter(patterns))


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, in natural order (``2.png`` before ``10.png``)."""

    def natural(p: Path) -> list[object]:
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]

    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS), key=natural)


def _scan_folder(root: Path) -> Iterable[ClipSource]:
    """Videos anywhere under ``root``, frame folders (numbered images), and single images (kept to be reported)."""
    base = root.name or "input"
    for folder in sorted([root, *(p for p in root.rglob("*") if p.is_dir())]):
        if any(part.startswith(".") for part in folder.relative_to(root).parts):
            continue
        rel_parts = folder.relative_to(root).parts
        labels = tuple(rel_parts)
        group = "/".join((base, *rel_parts))
        hint = find_identity_hint(str(folder.relative_to(root)))
        images = list_images(folder)
        if folder != root and _is_frame_sequence(images):
            origin = str(folder.relative_to(root))
            parent_group = "/".join((base, *rel_parts[:-1]))
            yield _source(folder, True, base, origin, parent_group, hint, labels[:-1])
            continue
        files = sorted(p for p in folder.iterdir() if p.is_file())
        for path in files:
            suffix = path.suffix.lower()
            if suffix in VIDEO_EXTENSIONS or suffix in IMAGE_EXTENSIONS:
                origin = str(path.relative_to(root))
                yield _source(path, False, base, origin, group, hint or find_identity_hint(path.stem), labels)


def _source(
    path: Path,
    frame_folder: bool,
    source: str,
    origin: str,
    group: str,
    hint: str | None,
    labels: tuple[str, ...],
) -> ClipSource:
    stem = (Path(origin) if frame_folder else Path(origin).with_suffix("")).as_posix().replace("/", "_")
    return ClipSource(
        key=str(path.resolve()),
        path=path,
        frame_folder=frame_folder,
        name=safe_name(stem),
        origin=origin,
        source=source,
        group=group,
        identity_hint=hint,
        labels=labels,
    )


def read_manifest(csv_path: Path, kinds: Sequence[str] = ()) -> list[ClipSource]:
    """Clip sources listed in a manifest CSV (one row per file or frame folder, paths relative to the CSV).

    Columns: ``file`` (or ``path``) is required; ``kind``, ``source``, ``role``, ``split``, ``content``,
    ``license``, ``realness``, ``identity`` and ``labels`` (``;``-separated) are used when present.

    Args:
        csv_path: the manifest.
        kinds: keep only rows whose ``kind`` is one of these (all rows when empty).

    Raises:
        InputError: if the file cannot be read as a CSV with a ``file`` column.
    """
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"Cannot read the manifest {csv_path} ({err}); pass a readable UTF-8 CSV file.") from err
    if rows and "file" not in rows[0] and "path" not in rows[0]:
        raise InputError(f"The manifest {csv_path} has no 'file' column; add one with paths relative to the CSV.")
    root = csv_path.parent
    clips = []
    for row in rows:
        rel = (row.get("file") or row.get("path") or "").strip()
        kind = (row.get("kind") or "").strip()
        if not rel or (kinds and kind not in kinds):
            continue
        path = root / rel
        source = (row.get("source") or "").strip() or Path(rel).parts[0]
        content = (row.get("content") or "").strip()
        labels = [v for v in (kind, (row.get("realness") or "").strip(), (row.get("role") or "").strip()) if v]
        labels += [v.strip() for v in (row.get("labels") or "").split(";") if v.strip()]
        hint = (row.get("identity") or "").strip() or find_identity_hint(rel, content)
        clips.append(
            ClipSource(
                key=str(path.resolve()),
                path=path,
                frame_folder=rel.endswith("/") or path.is_dir(),
                name=safe_name(f"{source}_{Path(rel.rstrip('/')).stem}"),
                origin=rel,
                source=source,
                group=f"{kind}/{source}" if kind else source,
                split_hint=(row.get("split") or "").strip().lower() or None,
                identity_hint=hint,
                action=content,
                labels=tuple(labels),
                license=(row.get("license") or "").strip(),
            )
        )
    return clips


def discover_clips(inputs: Sequence[Path], kinds: Sequence[str] = ()) -> list[ClipSource]:
    """All clip sources of the inputs (folders, video files, frame folders, manifest CSVs), names made unique.

    Args:
        inputs: paths given on the command line.
        kinds: manifest ``kind`` values to keep (every row when empty); folders are not filtered.

    Raises:
        InputError: if an input does not exist or is of an unsupported type.
    """
    found: list[ClipSource] = []
    for item in inputs:
        path = Path(item).expanduser()
        if not path.exists():
            raise InputError(f"The input {path} does not exist; pass folders of videos, videos or manifest CSVs.")
        if path.is_file() and path.suffix.lower() == ".csv":
            found.extend(read_manifest(path, kinds))
        elif path.is_dir():
            images = list_images(path)
            if _is_frame_sequence(images) and not any(p.is_dir() for p in path.iterdir()):
                found.append(_source(path, True, path.name, path.name, path.name, find_identity_hint(path.name), ()))
            else:
                found.extend(_scan_folder(path))
        elif path.suffix.lower() in VIDEO_EXTENSIONS | IMAGE_EXTENSIONS:
            parent = path.parent.name or "input"
            found.append(_source(path, False, parent, path.name, parent, find_identity_hint(path.stem), ()))
        else:
            raise InputError(
                f"The input {path} is not a folder, video or manifest CSV; pass one of those "
                f"(videos: {', '.join(sorted(VIDEO_EXTENSIONS))})."
            )
    return _unique(found)


def _unique(clips: list[ClipSource]) -> list[ClipSource]:
    """Drop repeated inputs (same file listed twice) and make names unique with a hash of the input path."""
    seen: dict[str, ClipSource] = {}
    for clip in clips:
        seen.setdefault(clip.key, clip)
    counts: dict[str, int] = {}
    for clip in seen.values():
        counts[clip.name] = counts.get(clip.name, 0) + 1
    out = []
    for clip in seen.values():
        if counts[clip.name] > 1:
            digest = hashlib.sha1(clip.key.encode()).hexdigest()[:6]
            clip = ClipSource(**{**clip.__dict__, "name": f"{clip.name}_{digest}"})
        out.append(clip)
    return out
