"""Probing media files and reading still images.

Images come back as ``H x W x 3`` ``uint8`` RGB numpy arrays whatever the file held (grayscale, palette,
alpha, 16-bit, CMYK), turned upright by their EXIF orientation. Transparent pixels are composited over
white, the background a viewer shows them on.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from enliven.errors import InputError
from enliven.io.ffmpeg import StreamReport, count_video_packets, describe_streams

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif", ".mpg", ".mpeg", ".m4v"})

MediaKind = Literal["image", "video", "frames"]

# EXIF orientations 5-8 include a quarter turn, which swaps width and height.
_EXIF_ORIENTATION = 0x0112
_QUARTER_TURNS = frozenset({5, 6, 7, 8})


@dataclass(frozen=True)
class MediaInfo:
    """What a media path holds.

    Attributes:
        kind: ``"image"`` (one still), ``"video"`` (a video or animated GIF) or ``"frames"`` (a folder of images).
        width, height: frame size in pixels as read (after EXIF orientation or video rotation metadata).
        fps: average frame rate for videos; ``None`` for images and frame folders, which carry no timing.
        num_frames: number of frames; exact for images and folders. For videos it is the number of video
            packets (counted without decoding), which equals the decoded frame count for almost every file; an
            mp4 edit list can hide a frame or two from the decoder, and a damaged file decodes fewer frames.
            ``None`` if unknown.
        duration: video length in seconds (``num_frames / fps`` when both are known); ``None`` for stills.
        has_audio: the file has an audio stream.
        path: the probed path.
    """

    kind: MediaKind
    width: int
    height: int
    fps: float | None
    num_frames: int | None
    duration: float | None
    has_audio: bool
    path: Path

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``."""
        return self.width, self.height


def natural_key(name: str) -> list:
    """Sort key putting ``frame2.png`` before ``frame10.png`` (digit runs compare as numbers, case ignored)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_frame_files(folder: Path) -> list[Path]:
    """The image files directly inside ``folder`` (hidden files skipped), in natural order."""
    files = [
        entry
        for entry in folder.iterdir()
        if entry.suffix.lower() in IMAGE_SUFFIXES and not entry.name.startswith(".") and entry.is_file()
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def _supported_list() -> str:
    return ", ".join(sorted(s.lstrip(".") for s in IMAGE_SUFFIXES | VIDEO_SUFFIXES))


def resolve_input(path: str | os.PathLike) -> Path:
    """Check that ``path`` exists and is an image, a video or a folder; return it as a :class:`Path`.

    Raises:
        InputError: the path is missing, an empty file, or has an unsupported extension.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"{path} does not exist; check the path and try again.")
    if path.is_dir():
        return path
    if path.suffix.lower() not in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
        raise InputError(
            f"{path} has an unsupported extension '{path.suffix}'; use one of: {_supported_list()}, "
            "or a folder of frames."
        )
    if path.stat().st_size == 0:
        raise InputError(f"{path} is an empty file (0 bytes); replace it with a complete copy.")
    return path


def probe(path: str | os.PathLike) -> MediaInfo:
    """Describe an image, a video (or animated GIF) or a folder of frames without decoding it.

    Raises:
        InputError: the path is missing, unsupported, empty, unreadable, or holds no video frames.
    """
    return probe_streams(path)[0]


def probe_streams(path: str | os.PathLike) -> tuple[MediaInfo, StreamReport | None]:
    """:func:`probe`, also returning ffmpeg's stream report for videos (``None`` for images and folders)."""
    path = resolve_input(path)
    if path.is_dir():
        return _probe_folder(path), None
    if path.suffix.lower() in IMAGE_SUFFIXES:
        width, height = image_size(path)
        return MediaInfo("image", width, height, None, 1, None, False, path), None
    stat = path.stat()
    info, report = _probe_video(path.resolve(), stat.st_size, stat.st_mtime_ns)
    return dataclasses.replace(info, path=path), report


@functools.lru_cache(maxsize=256)
def _probe_video(path: Path, size: int, mtime_ns: int) -> tuple[MediaInfo, StreamReport]:
    """A video's description, remembered per path, size and modification time: a clip is probed by the reader, the
    writer (for its audio) and the pipeline, and a batch reads the same clips for many photos (two ffmpeg runs each
    time). Errors are not remembered."""
    report = describe_streams(path)
    return _video_info(path, report), report


def _probe_folder(folder: Path) -> MediaInfo:
    files = list_frame_files(folder)
    if not files:
        exts = ", ".join(sorted(s.lstrip(".") for s in IMAGE_SUFFIXES))
        raise InputError(f"The folder {folder} contains no image frames ({exts}); point to a folder of frames.")
    width, height = image_size(files[0])
    return MediaInfo("frames", width, height, None, len(files), None, False, folder)


def _video_info(path: Path, report: StreamReport) -> MediaInfo:
    if not report.has_video:
        raise InputError(f"{path} has no video stream; use a video file with picture, not audio only.")
    if report.width <= 0 or report.height <= 0:
        raise InputError(f"{path} reports an invalid frame size; re-encode it (for example to H.264 mp4).")
    num_frames = count_video_packets(path)
    if num_frames is None and report.duration is not None and report.fps:
        num_frames = round(report.duration * report.fps)
    if num_frames == 0:
        raise InputError(
            f"{path} contains no video frames (it may be truncated); use a complete video with at least one frame."
        )
    duration = num_frames / report.fps if num_frames and report.fps else report.duration
    return MediaInfo("video", report.width, report.height, report.fps, num_frames, duration, report.has_audio, path)


def _open_image(path: Path) -> Image.Image:
    try:
        return Image.open(path)
    except FileNotFoundError as err:
        raise InputError(f"{path} does not exist; check the path and try again.") from err
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        raise InputError(f"Cannot read the image {path} ({err}); check that it is a complete, valid image.") from err


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image as :func:`read_image` returns it, read from the header only."""
    with _open_image(path) as image:
        width, height = image.size
        try:
            orientation = image.getexif().get(_EXIF_ORIENTATION)
        except Exception:  # a broken EXIF block is ignored, as read_image's exif_transpose ignores it
            orientation = None
    return (height, width) if orientation in _QUARTER_TURNS else (width, height)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as ``H x W x 3`` ``uint8`` RGB.

    Grayscale, palette, 16-bit and CMYK images are converted; alpha (RGBA, LA, transparent palettes) is
    composited over white; the EXIF orientation is applied, so the array is upright as a viewer shows it.

    Raises:
        InputError: the file is missing, not an image, truncated or corrupt.
    """
    path = resolve_input(path)
    if path.is_dir() or path.suffix.lower() not in IMAGE_SUFFIXES:
        exts = ", ".join(sorted(s.lstrip(".") for s in IMAGE_SUFFIXES))
        raise InputError(f"{path} is not an image file; use one of: {exts}.")
    with _open_image(path) as image:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # PIL warns about odd EXIF/ICC chunks it then ignores
                image.load()
                upright = ImageOps.exif_transpose(image) or image
                return pil_to_rgb(upright)
        except (OSError, ValueError, SyntaxError) as err:
            raise InputError(
                f"Cannot decode the image {path} ({err}); it looks truncated or corrupt, replace it with a "
                "complete copy."
            ) from err


def pil_to_rgb(image: Image.Image) -> np.ndarray:
    """Convert a loaded PIL image of any mode to ``H x W x 3`` ``uint8`` RGB (alpha composited over white)."""
    mode = image.mode
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        return _high_depth_gray_to_rgb(np.asarray(image))
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("PA", "LA", "La", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        return composite_over_white(np.asarray(image))
    return np.asarray(image.convert("RGB")).copy()


def _high_depth_gray_to_rgb(values: np.ndarray) -> np.ndarray:
    # 16-bit PNG/TIFF grayscale opens as I;16 or I (0..65535); float ("F") images are taken as 0..1.
    scale = 255.0 if values.dtype.kind == "f" else 255.0 / 65535.0
    gray = np.clip(np.rint(values.astype(np.float32) * scale), 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def composite_over_white(rgba: np.ndarray) -> np.ndarray:
    """``H x W x 4`` ``uint8`` RGBA to ``H x W x 3`` RGB, transparent areas turning white."""
    alpha = rgba[:, :, 3:4].astype(np.float32) / 255.0
    rgb = rgba[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
