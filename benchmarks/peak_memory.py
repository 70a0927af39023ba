"""Run a command and print its wall time and peak resident memory (the largest of it and its children).

python benchmarks/peak_memory.py -- enliven animate SOURCE DRIVING -o OUT.mp4 --paste-back
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time


def main() -> int:
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print(__doc__)
        return 2
    start = time.perf_counter()
    code = subprocess.call(args)
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux reports KiB
    print(f"exit code {code}; wall {seconds:.1f} s; peak resident memory {peak_mib:.0f} MiB")
    return code


if __name__ == "__main__":
    sys.exit(main())
