"""How many CPU threads the models use.

torch sizes its pool to every core. enliven's per-frame work is not the model alone: MediaPipe's landmarks, the
ffmpeg processes that decode and encode, and paste-back run beside it. On the 2-core development machine the whole
``enliven animate`` ran 1.9x slower with 2 model threads than with 1 when the CPU was shared, and 1.33x faster on an
idle machine; the default is therefore half the cores (at least 1), which leaves a core to the work around the model,
and ``--threads`` sets it per command (see the README's "Threads").
"""

from __future__ import annotations

import os


def default_threads() -> int:
    """Half the cores this process may use, at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // 2)


def set_threads(threads: int | None = None) -> int:
    """Set the intra-op threads of torch (onnxruntime sessions take torch's number when made); returns it.

    Args:
        threads: how many; ``None``: :func:`default_threads`.
    """
    import torch

    count = default_threads() if threads is None else int(threads)
    if count < 1:
        raise ValueError(f"threads must be 1 or more, got {count}")
    torch.set_num_threads(count)
    return count
