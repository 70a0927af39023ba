"""MediaPipe's native start-up messages stay off the terminal for every graph enliven builds (runs without shared)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "assets" / "source-astronaut.jpg"


def test_pose_graphs_print_nothing() -> None:
    code = f"""
from pathlib import Path
from enliven.evaluate.landmarks import PoseLandmarks
from enliven.io import read_image
from enliven.prepare.shots import PersonDetector
image = read_image(Path({str(PHOTO)!r}))
pose = PoseLandmarks()
assert (pose.detect(image) == pose.detect(image)).any()
pose.close()
person = PersonDetector()
assert person.detect(image) is not None and person.detect(image) is not None
person.close()
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
