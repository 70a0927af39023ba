"""Write-then-rename outputs: a target path holds either its old content or the complete new one, never a part.

Work goes to a hidden temporary file or folder beside the target (same folder, so the final rename stays on
one file system and is atomic for files); :meth:`AtomicPath.commit` renames it into place and
:meth:`AtomicPath.discard` deletes it.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temp_path_beside(target: Path, tag: str = "tmp") -> Path:
    """A fresh hidden name in ``target``'s folder that keeps its extension: ``out.mp4`` -> ``.out.3f9a1c2e.tmp.mp4``."""
    return target.with_name(f".{target.stem}.{secrets.token_hex(4)}.{tag}{target.suffix}")


def remove_path(path: Path) -> None:
    """Delete a file or a folder tree if it exists; errors are ignored (this runs while cleaning up)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


class AtomicPath:
    """A temporary path that becomes ``target`` on :meth:`commit`.

    Args:
        target: the final file or folder.
        is_dir: create the temporary path as an empty folder (for outputs that are folders of files).

    Attributes:
        temp: where to write; beside ``target``, hidden, with the same extension.
    """

    def __init__(self, target: Path, is_dir: bool = False) -> None:
        self.target = Path(target)
        self.temp = temp_path_beside(self.target)
        self.is_dir = is_dir
        self.done = False
        if is_dir:
            self.temp.mkdir()

    def commit(self) -> None:
        """Move the temporary path onto the target, replacing what was there."""
        if self.done:
            raise RuntimeError(f"{self.target} was already committed or discarded")
        if self.is_dir and self.target.is_dir():
            # A folder cannot be renamed over a non-empty one: move the old one aside first, then drop it.
            old = temp_path_beside(self.target, "old")
            os.replace(self.target, old)
            os.replace(self.temp, self.target)
            remove_path(old)
        else:
            os.replace(self.temp, self.target)
        self.done = True

    def discard(self) -> None:
        """Delete the temporary path; the target is left untouched. Safe to call more than once."""
        remove_path(self.temp)
        self.done = True


@contextmanager
def atomic_output(target: str | os.PathLike, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``target`` if the block ends without an exception.

    On any exception (``KeyboardInterrupt`` included) the temporary path is deleted and the exception re-raised,
    so ``target`` never holds a partial result::

        with atomic_output("stats.json") as tmp:
            tmp.write_text(json.dumps(stats))
    """
    atomic = AtomicPath(Path(target), is_dir=is_dir)
    try:
        yield atomic.temp
    except BaseException:
        atomic.discard()
        raise
    try:
        atomic.commit()
    except BaseException:
        atomic.discard()
        raise
