"""A prepared dataset packed as compressed video, to carry it to another machine (``enliven data pack``).

``enliven prepare`` writes a clip as a folder of PNG frames by default: exact, but about 60 kB a 256 px frame (the
faces dataset is 1.5 GB). A training machine reached by copying files (a lent GPU machine takes 64 MiB a call) gets
the same dataset as one H.264 mp4 per clip (x264 CRF 18, the writers' ``high`` quality), ``metadata.json`` with the
clips' new paths, and the landmark sidecars in half precision (float16: at most 1/16 px off inside a 256 px frame,
well under MediaPipe's own frame-to-frame jitter; half the size, which the sidecars need: the faces dataset's train
split packs to 15 MB of video and 28 MB of landmarks). Every reader of the FOMM layout (training, ``enliven eval``)
takes it as it is. Clips that are already videos, gifs or strips are copied as they are.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from enliven.data.layout import METADATA_FILE, ClipKind, ClipRef, find_clips, read_metadata_document, split_names
from enliven.data.pairs import landmarks_path
from enliven.data.readers import ClipReader
from enliven.errors import InputError, OutputError
from enliven.io import atomic_output
from enliven.io.writers import open_writer
from enliven.types import LandmarkKind

#: Frame rate given to a packed clip whose metadata records none (it only labels the file: training reads frames).
DEFAULT_FPS = 25.0


@dataclass(frozen=True)
class PackSummary:
    """What :func:`pack_dataset` wrote.

    Attributes:
        output: the packed dataset's folder.
        clips: clips packed, over every split.
        frames: their frames.
        bytes_in: size of the clips and sidecars read (bytes).
        bytes_out: size of the packed folder (bytes).
    """

    output: Path
    clips: int
    frames: int
    bytes_in: int
    bytes_out: int


def pack_dataset(
    root: str | Path, output: str | Path, splits: tuple[str, ...] | None = None, progress: bool = True
) -> PackSummary:
    """Write the dataset at ``root`` to the new folder ``output`` with each frame-folder clip as an mp4.

    Args:
        root: a FOMM-layout dataset (``enliven prepare``'s output).
        output: a folder that does not exist yet (or is empty); written whole or not at all.
        splits: the split folders to pack (default: all of them).
        progress: show a progress bar over the clips.

    Raises:
        InputError: ``root`` is not a dataset, has no split folders, or lacks a split asked for; a frame is unreadable.
        OutputError: ``output`` exists and is not empty, or lies inside ``root``.
    """
    root, output = Path(root).expanduser().resolve(), Path(output).expanduser().resolve()
    present = split_names(root) if root.is_dir() else []
    if not present:
        raise InputError(f"{root} has no split folders (train, val, test); give the folder 'enliven prepare' wrote.")
    chosen = tuple(splits or present)
    missing = [split for split in chosen if split not in present]
    if missing:
        raise InputError(f"{root} has no '{missing[0]}' split (it has {', '.join(present)}); choose one of those.")
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise OutputError(f"{output} already exists and is not empty; give a new folder for the packed dataset.")
    if output == root or root in output.parents:
        raise OutputError(f"{output} lies inside the dataset {root}; give a folder outside it.")

    clips = [clip for split in chosen for clip in find_clips(root, split)]
    metadata = read_metadata_document(root)
    reader, frames, bytes_in = ClipReader(), 0, 0
    with atomic_output(output, is_dir=True) as temp:
        for clip in tqdm(clips, desc="packing", unit="clip", disable=not progress):
            folder = temp / clip.split
            folder.mkdir(exist_ok=True)
            entry = metadata.get("clips", {}).get(_metadata_key(metadata, clip))
            fps = float((entry or {}).get("fps") or DEFAULT_FPS)
            packed, count, read = _pack_clip(clip, folder, reader, fps)
            frames += count
            bytes_in += read
            if entry is not None:
                entry["path"] = f"{clip.split}/{packed.name}"
        if metadata:
            (temp / METADATA_FILE).write_text(json.dumps(metadata, indent=1), encoding="utf-8")
        bytes_out = sum(path.stat().st_size for path in temp.rglob("*") if path.is_file())
    return PackSummary(output, len(clips), frames, bytes_in, bytes_out)


def _pack_clip(clip: ClipRef, folder: Path, reader: ClipReader, fps: float) -> tuple[Path, int, int]:
    """One clip and its sidecars into ``folder`` (a frame folder as an mp4 at ``fps``): the packed clip's path, its
    frame count, the bytes read."""
    if clip.kind is ClipKind.FRAMES:
        target = folder / f"{clip.name}.mp4"
        count = reader.num_frames(clip)
        with open_writer(target, fps=fps, quality="high") as writer:
            for start in range(0, count, 64):  # a chunk at a time: a long clip's frames need not fit in memory
                for frame in reader.read(clip, range(start, min(start + 64, count))):
                    writer.write(frame)
        read = sum(path.stat().st_size for path in clip.path.iterdir() if path.is_file())
    else:
        target = folder / clip.name
        shutil.copy2(clip.path, target)
        count, read = reader.num_frames(clip), clip.path.stat().st_size
    kind = ClipKind.VIDEO if clip.kind is ClipKind.FRAMES else clip.kind
    packed = ClipRef(target.name, target, kind, clip.identity, clip.split, count)
    for landmarks in LandmarkKind:
        sidecar = landmarks_path(clip, landmarks)
        if sidecar.is_file():
            np.save(landmarks_path(packed, landmarks), np.load(sidecar).astype(np.float16))
            read += sidecar.stat().st_size
    return target, count, read


def _metadata_key(metadata: dict, clip: ClipRef) -> str | None:
    """The key of ``clip``'s entry in ``metadata.json`` (by its name, or by the path the entry records)."""
    entries = metadata.get("clips", {})
    if clip.name in entries:
        return clip.name
    rel = f"{clip.split}/{clip.name}"
    return next((key for key, entry in entries.items() if isinstance(entry, dict) and entry.get("path") == rel), None)
