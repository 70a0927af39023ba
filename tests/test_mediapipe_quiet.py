"""MediaPipe's native start-up messages stay off the terminal for every graph enliven builds, and TensorFlow (the
tensorflow extra) is not started by MediaPipe or by training logs (runs without shared)."""

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
from enliven.preprocess.person import PersonDetector
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


def test_training_logs_do_not_start_tensorflow(tmp_path) -> None:
    """TensorBoard's writer imports TensorFlow when it is installed (the tensorflow extra); training uses the writer's
    own stub instead: no seconds of start-up, none of TensorFlow's messages in a training run."""
    code = f"""
import sys
from pathlib import Path
from enliven.train.visualize import TrainingLog
log = TrainingLog(Path({str(tmp_path)!r}))
log.scalars({{"l1": 1.0}}, 1)
assert "tensorflow" not in sys.modules
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "tensorflow" not in done.stderr.lower()
    assert any(tmp_path.iterdir())  # the event file was written
