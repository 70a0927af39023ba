"""`enliven animate` and `enliven models` end to end, through a real subprocess, real files and FFmpeg."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from enliven.cli.arguments import MAX_MODEL_SIZE, MIN_MODEL_SIZE, MODEL_SIZE_MULTIPLE, add_threads_argument, model_size

REPO = Path(__file__).resolve().parents[1]


def enliven(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "enliven", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "ENLIVEN_MODELS": str(REPO / "no-such-folder")},
        timeout=300,
    )


def _assert_clean_failure(result: subprocess.CompletedProcess, phrase: str) -> None:
    assert result.returncode != 0, result.stdout
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("enliven: error: "), result.stderr
    assert phrase in message, message
    assert "Traceback" not in result.stderr


def test_exact_reference_command_reproduces_the_authors_frames(reference_dir: Path, tmp_path: Path) -> None:
    folder = reference_dir / "fomm-tiny"
    out = tmp_path / "OUT"
    result = enliven(
        "animate",
        folder / "source.png",
        folder / "driving",
        "-o",
        f"{out}/",
        "--model",
        folder / "checkpoint-full.pth.tar",
        "--config",
        folder / "config.yaml",
        "--no-crop",
        "--relative",
        "--adapt-scale",
    )
    assert result.returncode == 0, result.stderr
    frames = sorted(out.glob("*.png"))
    expected = np.load(folder / "expected.npz")["animation_relative_adapt"]
    assert len(frames) == len(expected)
    got = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in frames]).astype(np.float32) / 255
    assert np.abs(got - expected).max() <= 0.5 / 255 + 1e-3


def test_models_lists_presets() -> None:
    result = enliven("models")
    assert result.returncode == 0
    for name in ("fomm-vox", "fomm-mgif", "tpsmm-ted", "untrained-demo"):
        assert name in result.stdout
    default = next(line for line in result.stdout.splitlines() if "(default)" in line)
    assert "enliven-lite" in default


def test_face_crop_and_paste_back_to_mp4_with_audio(data_dir: Path, tmp_path: Path) -> None:
    import imageio_ffmpeg

    source = REPO / "assets" / "source-astronaut.jpg"
    driving = REPO / "assets" / "driving-grid-bbaf2n.mpg"
    out = tmp_path / "result.mp4"
    result = enliven("animate", source, driving, "-o", out, "--paste-back", "--size", "64", "-q")
    assert result.returncode == 0, result.stderr
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(out)], capture_output=True, text=True)
    assert "Video: h264" in probe.stderr and "yuv420p" in probe.stderr
    assert "512x512" in probe.stderr  # the source photo's resolution
    assert "Audio:" in probe.stderr and "25 fps" in probe.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["result.mp4"]


# -- bad input: one sentence, non-zero exit, no output ---------------------------------------------------------


@pytest.fixture()
def tiny(reference_dir: Path) -> Path:
    return reference_dir / "fomm-tiny"


def test_missing_source(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    _assert_clean_failure(enliven("animate", tmp_path / "nope.png", tiny / "driving", "-o", out), "nope.png")
    assert not out.exists()


def test_empty_and_unreadable_driving(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    _assert_clean_failure(enliven("animate", tiny / "source.png", empty, "-o", out, "--no-crop"), "empty.mp4")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(4096))
    _assert_clean_failure(enliven("animate", tiny / "source.png", garbage, "-o", out, "--no-crop"), "garbage.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.mp4", "garbage.mp4"]


def test_source_without_a_face_suggests_no_crop(tiny: Path, tmp_path: Path) -> None:
    plain = tmp_path / "wall.png"
    Image.fromarray(np.full((200, 300, 3), 128, np.uint8)).save(plain)
    out = tmp_path / "out.mp4"
    _assert_clean_failure(
        enliven("animate", plain, tiny / "driving", "-o", out, "--model", "enliven-lite"), "--no-crop"
    )
    assert not out.exists()


def test_model_auto_says_which_model_and_why(tiny: Path, tmp_path: Path) -> None:
    """No --model: a photo without a face goes to the generic model, in one line; a face photo to the face model."""
    plain = tmp_path / "wall.png"
    Image.fromarray(np.full((200, 300, 3), 128, np.uint8)).save(plain)
    out = tmp_path / "out.mp4"
    done = enliven("animate", plain, tiny / "driving", "-o", out, "-q")
    assert done.returncode == 0, done.stderr
    assert "enliven: model auto: enliven-any (no face and no person: animals, drawings and objects)" in done.stdout
    assert out.is_file()
    face = enliven("animate", REPO / "assets" / "source-astronaut.jpg", tiny / "driving", "-o", out, "-q")
    assert "enliven: model auto: enliven-lite (a face, " in face.stdout


def test_bad_checkpoints(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "frames/"
    not_ckpt = tmp_path / "notes.pth.tar"
    not_ckpt.write_text("hello")
    args = ("animate", tiny / "source.png", tiny / "driving", "-o", out, "--no-crop")
    _assert_clean_failure(enliven(*args, "--model", not_ckpt), "not")
    truncated = tmp_path / "truncated.pth.tar"
    data = (tiny / "checkpoint-full.pth.tar").read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    _assert_clean_failure(enliven(*args, "--model", truncated, "--config", tiny / "config.yaml"), "truncated")
    tpsmm_config = tiny.parent / "tpsmm-tiny" / "config.yaml"
    _assert_clean_failure(
        enliven(*args, "--model", tiny / "checkpoint-full.pth.tar", "--config", tpsmm_config), "config"
    )
    assert not out.exists()


def test_unwritable_output(tiny: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    # root writes anywhere on disk, but nobody can create files in /proc
    target = locked / "out.mp4" if not os.access(locked, os.W_OK) else Path("/proc/out.mp4")
    try:
        result = enliven("animate", tiny / "source.png", tiny / "driving", "-o", target, "--no-crop")
        _assert_clean_failure(result, "write")
    finally:
        locked.chmod(0o700)
    bad_suffix = enliven("animate", tiny / "source.png", tiny / "driving", "-o", tmp_path / "out.xyz", "--no-crop")
    _assert_clean_failure(bad_suffix, "out.xyz")
    inside_a_file = enliven(
        "animate", tiny / "source.png", tiny / "driving", "-o", tiny / "source.png" / "out.mp4", "--no-crop"
    )
    _assert_clean_failure(inside_a_file, "source.png")


def test_find_best_frame_with_a_smoothed_track_to_gif(tmp_path: Path) -> None:
    source = REPO / "assets" / "source-astronaut.jpg"
    driving = REPO / "assets" / "driving-grid-bbaf2n.mpg"
    out = tmp_path / "result.gif"
    result = enliven("animate", source, driving, "-o", out, "--find-best-frame", "--smooth-track", "--size", "64", "-q")
    assert result.returncode == 0, result.stderr
    assert "reference frame" in result.stdout
    frames = Image.open(out)
    assert frames.size == (64, 64) and frames.n_frames == 75


@pytest.mark.parametrize("text", ["64", "80", "256", "1024"])
def test_model_size_accepts_multiples_of_16_in_range(text: str) -> None:
    assert model_size(text) == int(text)


@pytest.mark.parametrize("text", ["33", "100", "200", "48", "1040", "4096", "-256", "0", "abc", "256.0", ""])
def test_model_size_refuses_with_one_sentence(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as err:
        model_size(text)
    assert str(err.value) == (
        f"expected a multiple of {MODEL_SIZE_MULTIPLE} between {MIN_MODEL_SIZE} and {MAX_MODEL_SIZE} (e.g. 256), "
        f"got {text!r}"
    )


def test_threads_argument_parses() -> None:
    parser = argparse.ArgumentParser()
    add_threads_argument(parser)
    assert parser.parse_args([]).threads is None
    assert parser.parse_args(["--threads", "3"]).threads == 3
    with pytest.raises(SystemExit):
        parser.parse_args(["--threads", "0"])


def test_the_program_exits_with_mains_code_and_skips_the_final_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    """``enliven`` (the console script and ``python -m enliven``) freezes what is alive before exiting, so that the
    interpreter's last collection does not walk torch's objects (:mod:`enliven.inference.quick_exit`)."""
    import gc

    from enliven import cli

    frozen: list[bool] = []
    monkeypatch.setattr(cli, "main", lambda: 3)
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    with pytest.raises(SystemExit) as exited:
        cli.run()
    assert exited.value.code == 3 and frozen == [True]
