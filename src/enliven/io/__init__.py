"""Media input and output: probing, reading images and videos, writing videos atomically.

Frames are ``H x W x 3`` ``uint8`` RGB numpy arrays everywhere. Videos go through the FFmpeg binary of
``imageio-ffmpeg`` (streamed through pipes, so memory does not grow with video length); images through Pillow.
User mistakes (missing or corrupt inputs, unwritable outputs) raise :class:`enliven.errors.InputError` or
:class:`enliven.errors.OutputError` with one sentence to show.
"""

from __future__ import annotations

from enliven.io.atomic import AtomicPath, atomic_output
from enliven.io.ffmpeg import ffmpeg_exe
from enliven.io.jpeg import decode_image, encode_jpeg
from enliven.io.media import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    MediaInfo,
    MediaKind,
    list_frame_files,
    natural_key,
    probe,
    read_image,
)
from enliven.io.source import DEFAULT_FPS, VideoSource, read_frames
from enliven.io.writers import FrameWriter, OutputKind, Quality, check_output_path, open_writer, output_kind

__all__ = [
    "DEFAULT_FPS",
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "AtomicPath",
    "FrameWriter",
    "MediaInfo",
    "MediaKind",
    "OutputKind",
    "Quality",
    "VideoSource",
    "atomic_output",
    "check_output_path",
    "decode_image",
    "encode_jpeg",
    "ffmpeg_exe",
    "list_frame_files",
    "natural_key",
    "open_writer",
    "output_kind",
    "probe",
    "read_frames",
    "read_image",
]
