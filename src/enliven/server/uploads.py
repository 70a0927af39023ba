"""What the server accepts as media: content sniffed from the bytes (never the file name), size limits while the
body streams in, names of files in the configured input folder only, and a probe of each file before a job is
accepted. Every refusal is an :class:`UploadRefused` with an HTTP status and one sentence."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import BinaryIO

from enliven.errors import EnlivenError, InputError

#: The formats taken, by their first bytes: (suffix to store under, kind).
_SIGNATURES: tuple[tuple[bytes, int, str, str], ...] = (
    (b"\xff\xd8\xff", 0, ".jpg", "image"),
    (b"\x89PNG\r\n\x1a\n", 0, ".png", "image"),
    (b"BM", 0, ".bmp", "image"),
    (b"GIF87a", 0, ".gif", "video"),
    (b"GIF89a", 0, ".gif", "video"),
    (b"ftyp", 4, ".mp4", "video"),  # MP4, MOV, M4V (ISO base media)
    (b"\x1a\x45\xdf\xa3", 0, ".mkv", "video"),  # Matroska, WebM
    (b"\x00\x00\x01\xba", 0, ".mpg", "video"),  # MPEG program stream
)


class UploadRefused(EnlivenError):
    """A request's media is not accepted: ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, sentence: str) -> None:
        super().__init__(sentence)
        self.status = status


def sniff(head: bytes) -> tuple[str, str] | None:
    """``(suffix, kind)`` of a file from its first bytes (``kind``: ``image`` or ``video``), or ``None``."""
    for signature, offset, suffix, kind in _SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            return suffix, kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp", "image"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return ".avi", "video"
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return ".ts", "video"  # MPEG transport stream
    return None


def store_upload(stream: BinaryIO, folder: Path, stem: str, want: str, field: str, max_bytes: int) -> Path:
    """Copy an uploaded file into ``folder/<stem><suffix>``, the suffix from its content.

    Raises:
        UploadRefused: 413 over ``max_bytes``; 415 not an image / video as ``want`` says.
    """
    head = stream.read(512)
    found = sniff(head)
    if found is None or (found[1] != want and not (want == "video" and found[0] == ".gif")):
        what = "an image (JPEG, PNG, WebP, BMP)" if want == "image" else "a video (MP4, MOV, WebM, MKV, AVI, MPEG, GIF)"
        raise UploadRefused(415, f"{field} is not {what} by its content; send the file itself, whatever its name.")
    target = folder / f"{stem}{found[0]}"
    size = len(head)
    with target.open("wb") as out:
        out.write(head)
        while block := stream.read(2**20):
            size += len(block)
            if size > max_bytes:
                out.close()
                target.unlink(missing_ok=True)
                raise UploadRefused(413, f"{field} is over the server's limit of {max_bytes // 2**20} MB.")
            out.write(block)
    return target


def named_input(name: str, inputs: Path | None, folder: Path, stem: str, want: str, field: str) -> Path:
    """A copy of the file ``name`` from the server's input folder (a name inside it; no absolute paths, no ``..``).

    Raises:
        UploadRefused: 400 when the server has no input folder or the name leaves it; 404 when it is not there.
    """
    if inputs is None:
        raise UploadRefused(400, f"{field}_name needs a server started with --inputs; upload {field} instead.")
    root = inputs.resolve()
    candidate = (root / name).resolve()
    if Path(name).is_absolute() or ".." in Path(name).parts or not candidate.is_relative_to(root):
        raise UploadRefused(400, f"{field}_name must name a file inside the server's input folder, not {name!r}.")
    if not candidate.is_file():
        raise UploadRefused(404, f"{field}_name {name!r} is not a file in the server's input folder.")
    with candidate.open("rb") as stream:
        return store_upload(stream, folder, stem, want, f"{field}_name {name!r}", max_bytes=2**62)


def check_media(path: Path, want: str, field: str, max_seconds: float) -> None:
    """Probe a stored file: a readable image, or a video with frames no longer than ``max_seconds``.

    Raises:
        UploadRefused: 422 with what is wrong.
    """
    from enliven.io import probe, read_image

    try:
        if want == "image" and path.suffix != ".gif":
            read_image(path)
            return
        info = probe(path)
    except InputError as error:
        reason = _short(str(error).replace(str(path), field))  # the server's paths stay on the server
        raise UploadRefused(422, f"{field} cannot be read ({reason}); send a complete, valid file.") from None
    if info.kind != "video" or not info.num_frames:
        raise UploadRefused(422, f"{field} holds no video frames; send a video.")
    seconds = info.num_frames / info.fps if info.fps else 0.0
    if seconds > max_seconds:
        raise UploadRefused(422, f"{field} is {seconds:.0f} s long; the server takes clips up to {max_seconds:g} s.")


def remove_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def _short(text: str) -> str:
    return text if len(text) < 200 else text[:200] + "..."


#: What library messages call command-line flags, as a client of the API sets them.
_API_WORDS = {
    "use --no-crop to": 'set the option "crop": false to',
    "pass --force to": 'set the option "force": true to',
    "(see 'enliven models')": "(ask the server's operator which models it has)",
}


def api_words(sentence: str) -> str:
    """A library message with the CLI's flags said as the API's options."""
    for flag, option in _API_WORDS.items():
        sentence = sentence.replace(flag, option)
    return sentence
