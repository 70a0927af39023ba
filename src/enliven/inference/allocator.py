"""Keep freed memory in the process instead of handing it back to the OS after every frame.

A frame of enliven-lite allocates and frees tensors of a few MiB (the landmark kernels: 4096 x 152 floats). glibc
serves such blocks with ``mmap`` (or trims them off the heap on ``free``), so every frame the kernel maps fresh
pages and zeroes them on first touch: on the 2-core development machine (a VM, where page faults are dearer) that
was 1.2 million page faults and 3 s of system time per 225 frames, and the model's loop ran at 38-42 ms per frame
instead of 26-30 ms. Raising glibc's mmap and trim thresholds once lets freed blocks be reused; the process keeps at
most :data:`TRIM_THRESHOLD` of freed memory, and its peak is unchanged (the same tensors are live at once).

Only glibc has ``mallopt``; elsewhere (macOS, Windows, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

#: Blocks below this come from the heap (glibc's own limit on 64-bit systems is 32 MiB).
MMAP_THRESHOLD = 32 * 2**20
#: Freed memory at the top of a heap is returned to the OS only beyond this.
TRIM_THRESHOLD = 256 * 2**20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
_lock = threading.Lock()
_done: bool | None = None


def keep_freed_memory() -> bool:
    """Set glibc's malloc to reuse freed blocks (see the module docstring), once per process; returns whether it
    applies (glibc found and the settings taken). Called by :class:`~enliven.inference.Animator` on the CPU and by the
    CLI before any command."""
    global _done
    with _lock:
        if _done is None:
            _done = _set_thresholds()
        return _done


def _set_thresholds() -> bool:
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
