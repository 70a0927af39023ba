"""Random access to the frames of a clip, whatever its storage (frame folder, video, gif, png strip).

Frames come back as ``H x W x 3`` RGB ``uint8`` arrays: grayscale, RGBA and 16-bit images are converted on the way
in. Frame files of a folder are taken in natural order (``frame2.png`` before ``frame10.png``; the same as FOMM's
plain sort for zero-padded names). Decoding uses OpenCV (Pillow for gifs, which OpenCV's image codecs do not
animate). A reader keeps small per-process caches (folder listings, frame counts), so give each DataLoader worker
its own copy, which is what pickling the dataset into the workers does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from enliven.data.layout import FRAME_EXTENSIONS, ClipKind, ClipRef
from enliven.errors import InputError
from enliven.io import natural_key

# Seek instead of decoding forward when the next wanted frame is this far ahead; below it, grabbing is cheaper.
_SEEK_DISTANCE = 48
# Folder listings kept per process: VoxCeleb has ~20k clips of hundreds of frames, too many to keep them all.
_MAX_LISTINGS = 4096


def decode_image(path: Path) -> np.ndarray:
    """Read one image file as ``H x W x 3`` RGB uint8 (gray, RGBA and 16-bit converted).

    Raises:
        InputError: the file is missing or not a decodable image.
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)  # via bytes: OpenCV's own file open breaks on some non-ASCII paths
    except OSError as err:
        raise InputError(f"Cannot read the frame {path} ({err.strerror}); check the file or re-run prepare.") from err
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise InputError(f"The frame {path} is not a readable image; delete the clip or re-run prepare.")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _to_rgb(frame: np.ndarray) -> np.ndarray:
    """Pillow/OpenCV array of any channel layout or depth to RGB uint8."""
    if frame.dtype == np.uint16:
        frame = (frame >> 8).astype(np.uint8)
    elif frame.dtype != np.uint8:
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return np.ascontiguousarray(frame[..., :3])
    if frame.shape[2] == 1:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    return frame


class ClipReader:
    """Reads chosen frames of clips; one reader per process (its caches are not shared)."""

    def __init__(self) -> None:
        self._listings: dict[Path, tuple[str, ...]] = {}  # frame file names, most recent last
        self._counts: dict[Path, int] = {}

    def num_frames(self, clip: ClipRef) -> int:
        """Number of frames of ``clip`` (from its metadata when recorded, else counted once and cached).

        Raises:
            InputError: the clip cannot be opened or holds no frame.
        """
        if clip.kind is ClipKind.FRAMES:
            return len(self._frame_names(clip))
        if clip.path not in self._counts:
            self._counts[clip.path] = clip.num_frames or self._count(clip)
        count = self._counts[clip.path]
        if count <= 0:
            raise InputError(f"The clip {clip.path} has no frames; delete it or re-run prepare.")
        return count

    def read(self, clip: ClipRef, indices: Sequence[int]) -> list[np.ndarray]:
        """The frames at ``indices`` (any order, repeats allowed) as ``H x W x 3`` RGB uint8 arrays.

        Raises:
            InputError: the clip is missing, corrupt or shorter than an index.
        """
        try:
            if clip.kind is ClipKind.FRAMES:
                names = self._frame_names(clip)
                return [decode_image(clip.path / names[i]) for i in indices]
            if clip.kind is ClipKind.VIDEO:
                return self._read_video(clip, indices)
            frames = self.read_all(clip)
            return [frames[i] for i in indices]
        except IndexError as err:
            raise InputError(f"The clip {clip.path} is shorter than its recorded length; re-run prepare.") from err
        except (OSError, cv2.error, UnidentifiedImageError, ValueError) as err:
            raise InputError(f"Cannot decode the clip {clip.path} ({err}); delete it or re-run prepare.") from err

    def read_all(self, clip: ClipRef) -> list[np.ndarray]:
        """Every frame of ``clip`` in order (for evaluation and previews; training reads two at a time)."""
        if clip.kind is ClipKind.FRAMES:
            return self.read(clip, range(len(self._frame_names(clip))))
        if clip.kind is ClipKind.VIDEO:
            return self._decode_video(clip, None)
        if clip.kind is ClipKind.GIF:
            return self._decode_gif(clip.path)
        return self._decode_strip(clip.path)

    # -- storage kinds -------------------------------------------------------------------------------------------

    def _frame_names(self, clip: ClipRef) -> tuple[str, ...]:
        names = self._listings.pop(clip.path, None)
        if names is None:
            try:
                frames = (p.name for p in clip.path.iterdir() if p.suffix.lower() in FRAME_EXTENSIONS)
                names = tuple(sorted(frames, key=natural_key))
            except OSError as err:
                raise InputError(f"Cannot list the frame folder {clip.path} ({err.strerror}).") from err
            if not names:
                raise InputError(f"The frame folder {clip.path} holds no png/jpg frames; delete it or re-run prepare.")
            if len(self._listings) >= _MAX_LISTINGS:
                del self._listings[next(iter(self._listings))]  # the least recently used
        self._listings[clip.path] = names
        return names

    def _count(self, clip: ClipRef) -> int:
        if clip.kind is ClipKind.VIDEO:
            capture = _open_video(clip.path)
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            capture.release()
            return count if count > 0 else len(self._decode_video(clip, None))
        if clip.kind is ClipKind.GIF:
            try:
                with Image.open(clip.path) as image:
                    return int(getattr(image, "n_frames", 1))
            except (OSError, UnidentifiedImageError) as err:
                raise InputError(f"The gif {clip.path} is not readable ({err}); delete it or re-run prepare.") from err
        return len(self._decode_strip(clip.path))

    def _read_video(self, clip: ClipRef, indices: Sequence[int]) -> list[np.ndarray]:
        wanted = sorted(set(indices))
        decoded = self._decode_video(clip, wanted)
        by_index = dict(zip(wanted, decoded, strict=True))
        return [by_index[i] for i in indices]

    def _decode_video(self, clip: ClipRef, wanted: list[int] | None) -> list[np.ndarray]:
        """Decode the sorted frame indices ``wanted`` (all frames when ``None``), seeking over long gaps.

        A container that reports more frames than it holds gives its last frame for the missing indices, and its
        true length is remembered, so the next sample stays inside it.
        """
        capture = _open_video(clip.path)
        frames: list[np.ndarray] = []
        position, last = 0, None
        try:
            targets = iter(wanted) if wanted is not None else None
            target = next(targets, None) if targets is not None else 0
            while target is not None:
                if target - position > _SEEK_DISTANCE:
                    capture.set(cv2.CAP_PROP_POS_FRAMES, target)
                    position = target
                if not capture.grab():
                    break
                if position == target:
                    ok, frame = capture.retrieve()
                    if not ok:
                        break
                    last = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if frame.ndim == 3 else _to_rgb(frame)
                    frames.append(last)
                    target = next(targets, None) if targets is not None else target + 1
                position += 1
        finally:
            capture.release()
        if last is None:
            raise InputError(f"The video {clip.path} has no decodable frames; delete it or re-run prepare.")
        if wanted is not None and len(frames) < len(wanted):
            # The container over-reported its length (rare): count the real frames once.
            self._counts[clip.path] = len(self._decode_video(clip, None))
            frames.extend([last] * (len(wanted) - len(frames)))
        return frames

    @staticmethod
    def _decode_gif(path: Path) -> list[np.ndarray]:
        frames = []
        try:
            with Image.open(path) as image:
                for i in range(int(getattr(image, "n_frames", 1))):
                    image.seek(i)
                    frames.append(np.asarray(image.convert("RGB")))
        except (OSError, EOFError, UnidentifiedImageError) as err:
            if not frames:
                raise InputError(f"The gif {path} is not readable ({err}); delete it or re-run prepare.") from err
        return frames

    @staticmethod
    def _decode_strip(path: Path) -> list[np.ndarray]:
        image = decode_image(path)
        height, width = image.shape[:2]
        if width % height:
            raise InputError(
                f"The png strip {path} is {width}x{height}, not a row of square frames; crop it to a multiple "
                "of its height."
            )
        return [image[:, i * height : (i + 1) * height] for i in range(width // height)]


def _open_video(path: Path) -> cv2.VideoCapture:
    if not path.is_file():
        raise InputError(f"The video {path} does not exist; re-run prepare.")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise InputError(f"The video {path} cannot be opened; delete it or re-run prepare.")
    return capture
