"""Finding the clips of a FOMM-layout dataset and their identities.

Layout (as written by ``enliven prepare`` and by the FOMM authors' preparation scripts, so VoxCeleb, TaiChiHD,
MGif and Fashion work unchanged)::

    ROOT/metadata.json            optional, written by ``enliven prepare``
    ROOT/train/<clip>/            a folder of frames (png/jpg; VoxCeleb's folders are named ``<clip>.mp4``)
    ROOT/train/<clip>.mp4|.mov    a video (also .avi, .mkv, .webm)
    ROOT/train/<clip>.gif         an animated gif
    ROOT/train/<clip>.png|.jpg    a strip: the frames side by side in one image, each frame as wide as it is tall
    ROOT/test/...                 the same for the test split (and any other split folder, e.g. ``val``)

When ROOT has no ``train`` folder, every clip sits directly in ROOT and the split is drawn at random as FOMM does
(80 % train, 20 % test, seeded), except that whole identities are assigned to one split, so that an identity never
straddles two splits.

Identities come from ``metadata.json`` when it names the clip, else from FOMM's convention: the clip name up to the
first ``#`` (VoxCeleb's ``id10001#7w0IBEWc9Qw#000993#001143.mp4`` belongs to ``id10001``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np

from enliven.errors import InputError
from enliven.types import LandmarkKind

log = logging.getLogger(__name__)

FRAME_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg"})
GIF_EXTENSIONS = frozenset({".gif"})
STRIP_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg"})
METADATA_FILE = "metadata.json"
METADATA_VERSION = 1
# Fraction of identities held out when ROOT has no split folders (FOMM: test_size=0.2).
RANDOM_TEST_FRACTION = 0.2


class ClipKind(StrEnum):
    """How a clip's frames are stored."""

    FRAMES = "frames"  # a folder of image files, sorted by name
    VIDEO = "video"  # a video file decoded with OpenCV
    GIF = "gif"  # an animated gif decoded with Pillow
    STRIP = "strip"  # one image holding the frames side by side


@dataclass(frozen=True)
class ClipRef:
    """One clip of a dataset.

    Attributes:
        name: the clip's folder or file name as stored (e.g. ``id10001#abc#0001#0100.mp4`` or ``walk01.gif``).
        path: absolute path of the folder or file.
        kind: how the frames are stored.
        identity: who or what the clip shows; clips of one identity never straddle two splits.
        split: the split the clip belongs to (``train``, ``val``, ``test`` ...).
        num_frames: frame count recorded in ``metadata.json``, or ``None`` (then the reader counts).
    """

    name: str
    path: Path
    kind: ClipKind
    identity: str
    split: str
    num_frames: int | None = None


@dataclass(frozen=True)
class ClipInfo:
    """What ``metadata.json`` says about one clip (only the fields the data loaders use)."""

    identity: str
    split: str | None
    num_frames: int | None


def fomm_identity(name: str) -> str:
    """FOMM's identity convention: the clip name up to the first ``#`` (without extension if there is none)."""
    if "#" in name:
        return name.split("#", 1)[0]
    return Path(name).stem if Path(name).suffix else name


def clip_kind(path: Path) -> ClipKind | None:
    """The kind of clip stored at ``path``, or ``None`` when it is not a clip (metadata, notes, hidden files)."""
    if path.name.startswith("."):
        return None
    if path.is_dir():
        return ClipKind.FRAMES
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return ClipKind.VIDEO
    if suffix in GIF_EXTENSIONS:
        return ClipKind.GIF
    if suffix in STRIP_EXTENSIONS:
        return ClipKind.STRIP
    return None


def read_metadata_document(root: Path) -> dict:
    """``ROOT/metadata.json`` as written (``{"version", "kind", "clips": {key: entry}, ...}``), or ``{}`` if absent.

    Raises:
        InputError: the file exists but is not valid JSON of the expected version.
    """
    path = root / METADATA_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path} is not readable JSON ({err}); fix or delete it to use FOMM's identities.") from err
    if not isinstance(data, dict) or not isinstance(data.get("clips"), dict):
        raise InputError(f"{path} has no 'clips' mapping; rewrite it with 'enliven prepare' or delete it.")
    if data.get("version", METADATA_VERSION) != METADATA_VERSION:
        raise InputError(
            f"{path} has version {data.get('version')!r}, this enliven reads version {METADATA_VERSION}; "
            "re-run 'enliven prepare'."
        )
    return data


def load_metadata(root: Path) -> dict[str, ClipInfo]:
    """Read ``ROOT/metadata.json`` into clip infos keyed by every name a clip may be found under.

    A clip is keyed by its metadata key, by its ``path`` relative to ROOT, and by the last part of that path, so a
    clip written as ``train/abc.mp4`` or ``train/abc/`` is found whether the key carries the extension or not.

    Raises:
        InputError: the file exists but is not valid JSON of the expected version.
    """
    data = read_metadata_document(root)
    if not data:
        return {}
    infos: dict[str, ClipInfo] = {}
    for key, entry in data["clips"].items():
        if not isinstance(entry, dict):
            continue
        frames = entry.get("num_frames")
        info = ClipInfo(
            identity=str(entry.get("identity") or fomm_identity(key)),
            split=entry.get("split"),
            num_frames=int(frames) if isinstance(frames, int) and frames > 0 else None,
        )
        names = {key}
        if isinstance(entry.get("path"), str):
            rel = entry["path"].strip("/")
            names.update({rel, Path(rel).name})
        for name in names:
            infos.setdefault(name, info)
    return infos


def _lookup(infos: dict[str, ClipInfo], rel: str, name: str) -> ClipInfo | None:
    for key in (rel, name, str(Path(rel).with_suffix("")), Path(name).stem):
        if key in infos:
            return infos[key]
    return None


def _scan_folder(folder: Path, root: Path, split: str, infos: dict[str, ClipInfo]) -> list[ClipRef]:
    clips = []
    for path in sorted(folder.iterdir()):
        kind = clip_kind(path)
        if kind is None:
            sidecar = any(path.name.endswith(kind.suffix) for kind in LandmarkKind)
            known = path.name == METADATA_FILE or sidecar  # our own files
            if not known and not path.name.startswith("."):
                log.warning("skipping %s: not a clip (a frame folder, video, gif or png strip)", path)
            continue
        rel = path.relative_to(root).as_posix()
        info = _lookup(infos, rel, path.name)
        clips.append(
            ClipRef(
                name=path.name,
                path=path.resolve(),
                kind=kind,
                identity=info.identity if info else fomm_identity(path.name),
                split=split,
                num_frames=info.num_frames if info else None,
            )
        )
    return clips


def split_names(root: Path) -> list[str]:
    """The split folders of ``root`` (in the order train, val, test), or ``[]`` when clips sit directly in ``root``.
    Any one of them makes a split layout: ``enliven prepare`` writes no folder for an empty split."""
    order = ("train", "val", "test")
    return [name for name in order if (root / name).is_dir()]


def _random_split(clips: Sequence[ClipRef], seed: int) -> dict[str, str]:
    """Identity -> split for a dataset without split folders; seeded, whole identities to one side."""
    identities = sorted({c.identity for c in clips})
    order = np.random.default_rng(seed).permutation(len(identities))
    # At least one identity on each side when there are two or more.
    num_test = max(1, round(RANDOM_TEST_FRACTION * len(identities))) if len(identities) > 1 else 0
    test = {identities[i] for i in order[:num_test]}
    return {ident: ("test" if ident in test else "train") for ident in identities}


def find_clips(root: str | Path, split: str = "train", seed: int = 0) -> list[ClipRef]:
    """All clips of one split of a FOMM-layout dataset, sorted by name.

    Args:
        root: the dataset folder.
        split: ``train``, ``val``, ``test`` (a split folder of ``root``); for a dataset without split folders only
            ``train`` and ``test`` exist (drawn at random, see the module docstring).
        seed: seed of that random split.

    Raises:
        InputError: ``root`` or the split is missing, or holds no clip.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"The dataset folder {root} does not exist; give the folder 'enliven prepare' wrote.")
    infos = load_metadata(root)
    splits = split_names(root)
    if splits:
        if split not in splits:
            raise InputError(f"{root} has no '{split}' split (it has {', '.join(splits)}); choose one of those.")
        clips = _scan_folder(root / split, root, split, infos)
    else:
        if split not in ("train", "test"):
            raise InputError(f"{root} has no split folders, so only 'train' and 'test' exist; choose one of those.")
        everything = _scan_folder(root, root, split, infos)
        assignment = _random_split(everything, seed)
        clips = [c for c in everything if assignment[c.identity] == split]
    if not clips:
        raise InputError(
            f"No clips found in the '{split}' split of {root}; expected frame folders, videos, gifs or png strips."
        )
    return clips


def group_by_identity(clips: Sequence[ClipRef]) -> dict[str, list[ClipRef]]:
    """Clips grouped by identity; identities in sorted order, clips in their given order."""
    groups: dict[str, list[ClipRef]] = {}
    for clip in clips:
        groups.setdefault(clip.identity, []).append(clip)
    return dict(sorted(groups.items()))
