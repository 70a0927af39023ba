"""Tests of enliven.io: probing, reading, writing, audio muxing, atomic outputs and error messages."""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from enliven.errors import InputError, OutputError
from enliven.io import (
    VideoSource,
    atomic_output,
    check_output_path,
    ffmpeg_exe,
    natural_key,
    open_writer,
    output_kind,
    probe,
    read_frames,
    read_image,
)

COLOURS = np.array([[220, 30, 40], [30, 200, 60], [40, 50, 210], [128, 128, 128], [250, 250, 250]], np.uint8)


def ffmpeg(*args: str) -> str:
    """Run ffmpeg (failing the test on error); return its stderr."""
    result = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stderr


def stream_report(path: Path) -> str:
    return subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr


def solid_frames(count: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    return [np.full((height, width, 3), COLOURS[i % len(COLOURS)], np.uint8) for i in range(count)]


def write_clip(path: Path | str, frames: list[np.ndarray], fps: float = 25, **kwargs) -> None:
    with open_writer(path, fps=fps, **kwargs) as writer:
        for frame in frames:
            writer.write(frame)


@pytest.fixture(scope="module")
def tone_clip(tmp_path_factory) -> Path:
    """A 64x48, 25 fps, 2 s test pattern with a 440 Hz tone, made by ffmpeg itself."""
    path = tmp_path_factory.mktemp("media") / "tone.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=64x48:rate=25:duration=2",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path),
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def noise_clip(tmp_path_factory) -> Path:
    """30 frames of noise (large packets, so truncating the file drops whole frames), written with faststart."""
    path = tmp_path_factory.mktemp("media") / "noise.mp4"
    rng = np.random.default_rng(0)
    write_clip(path, [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(30)], quality="low")
    return path


def assert_colours(frames: np.ndarray, tol: int) -> None:
    expected = COLOURS[np.arange(len(frames)) % len(COLOURS)]
    centre = frames[:, frames.shape[1] // 2, frames.shape[2] // 2].astype(int)
    assert np.abs(centre - expected).max() <= tol


# --- probing and reading videos ---------------------------------------------------------------------------------


def test_probe_and_read_ffmpeg_clip(tone_clip):
    info = probe(tone_clip)
    assert (info.kind, info.width, info.height, info.fps, info.num_frames) == ("video", 64, 48, 25.0, 50)
    assert info.duration == pytest.approx(2.0) and info.has_audio
    source = VideoSource(tone_clip)
    assert (source.size, source.fps, len(source)) == ((64, 48), 25.0, 50)
    for _ in range(2):  # re-iterable: each pass decodes again
        frames = [frame for frame in source]
        assert len(frames) == 50
        assert frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8 and frames[0].flags.writeable


@pytest.mark.parametrize(("fps", "expected"), [(10, 20), (12.5, 25), (30, 60), (50, 100)])
def test_fps_resampling(tone_clip, fps, expected):
    source = VideoSource(tone_clip, fps=fps)
    assert source.fps == fps and len(source) == expected
    assert sum(1 for _ in source) == expected


def test_early_break_then_iterate_again(tone_clip):
    source = VideoSource(tone_clip)
    for index, _ in enumerate(source):
        if index == 3:
            break
    assert read_frames(tone_clip, max_frames=5).shape == (5, 48, 64, 3)


def test_rotation_metadata_is_applied(tone_clip, tmp_path):
    rotated = tmp_path / "rotated.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(tone_clip), "-c", "copy", str(rotated))
    info = probe(rotated)
    assert (info.width, info.height) == (48, 64)
    assert next(iter(VideoSource(rotated))).shape == (64, 48, 3)


def test_real_grid_clip(data_dir):
    manifest = data_dir / "manifest.csv"
    if not manifest.is_file():
        pytest.skip("no data manifest")
    with manifest.open(newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["split"] == "val")
    path = data_dir / row["file"]
    info = probe(path)
    assert (info.kind, info.width, info.height) == ("video", int(row["w"]), int(row["h"]))
    assert info.fps == pytest.approx(float(row["fps"]))
    assert info.num_frames == int(row["frames"])
    assert info.duration == pytest.approx(float(row["dur"]), abs=0.05)
    frames = read_frames(path, max_frames=3)
    assert frames.shape == (3, int(row["h"]), int(row["w"]), 3) and frames.std() > 10


# --- writing ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "tol"), [("out.mp4", 8), ("out.webm", 8), ("out.mov", 8), ("out.mkv", 8)])
def test_video_round_trip(tmp_path, name, tol):
    path = tmp_path / name
    write_clip(path, solid_frames(10), fps=12)
    info = probe(path)
    assert (info.width, info.height, info.fps, info.num_frames, info.has_audio) == (64, 48, 12.0, 10, False)
    assert_colours(read_frames(path), tol)
    assert "bt709" in stream_report(path)


@pytest.mark.parametrize("name", ["out.mp4", "out.webm"])
def test_encoder_threads_are_limited_when_asked(tmp_path, name, monkeypatch):
    """Batch and server workers give the encoder their share of the cores (``-threads``); the video is the same."""
    import enliven.io.writers as writers

    commands = []
    popen = writers.subprocess.Popen
    monkeypatch.setattr(writers.subprocess, "Popen", lambda cmd, **kw: commands.append(cmd) or popen(cmd, **kw))
    write_clip(tmp_path / name, solid_frames(6), fps=12, threads=1)
    encoder = next(cmd for cmd in commands if "pipe:0" in cmd)
    assert encoder[encoder.index("-threads") + 1] == "1"
    assert_colours(read_frames(tmp_path / name), 8)
    with pytest.raises(ValueError, match="threads must be 1 or more"):
        open_writer(tmp_path / name, fps=12, threads=0)


def test_gif_output(tmp_path):
    path = tmp_path / "anim.gif"
    write_clip(path, solid_frames(6, 33, 21), fps=10)
    info = probe(path)
    assert (info.kind, info.width, info.height, info.num_frames) == ("video", 33, 21, 6)
    assert info.fps == pytest.approx(10)
    assert_colours(read_frames(path), 6)


@pytest.mark.parametrize("spelling", ["frames/", "frames" + os.sep, "frames"])
def test_frame_folder_output(tmp_path, spelling):
    target = str(tmp_path / spelling)
    assert output_kind(target) == "frames"
    write_clip(target, solid_frames(12, 31, 17), fps=25)
    folder = tmp_path / "frames"
    assert sorted(p.name for p in folder.iterdir()) == [f"{i:06d}.png" for i in range(12)]
    frames = read_frames(folder)
    assert frames.shape == (12, 17, 31, 3)
    assert_colours(frames, 0)
    write_clip(target, solid_frames(3, 31, 17))  # a rerun replaces the old frames, none left over
    assert len(list(folder.iterdir())) == 3


def test_odd_size_is_padded_for_h264(tmp_path):
    path = tmp_path / "odd.mp4"
    write_clip(path, solid_frames(5, 65, 49))
    frames = read_frames(path)
    assert frames.shape == (5, 50, 66, 3)
    assert np.abs(frames[:, -1, -1].astype(int) - COLOURS[:5]).max() <= 8  # edge replicated, not black


def test_audio_is_muxed_and_cut(tone_clip, tmp_path):
    for name, codec in [("talk.mp4", "Audio: aac"), ("talk.webm", "Audio: opus")]:
        path = tmp_path / name
        write_clip(path, solid_frames(20), fps=25, audio_from=tone_clip)  # 0.8 s of video, 2 s of sound
        report = stream_report(path)
        assert codec in report
        assert probe(path).has_audio and probe(path).num_frames == 20
        duration = float(report.split("Duration: 00:00:")[1].split(",")[0])
        assert duration == pytest.approx(0.8, abs=0.1)


def test_audio_from_silent_video_is_fine(noise_clip, tmp_path):
    path = tmp_path / "silent.mp4"
    write_clip(path, solid_frames(4), audio_from=noise_clip)
    assert not probe(path).has_audio
    still = tmp_path / "still.png"
    Image.fromarray(solid_frames(1)[0]).save(still)
    write_clip(tmp_path / "from_still.mp4", solid_frames(4), audio_from=still)
    assert not probe(tmp_path / "from_still.mp4").has_audio


def test_writer_rejects_bad_frames(tmp_path):
    with pytest.raises(ValueError):
        with open_writer(tmp_path / "bad.mp4", fps=25) as writer:
            writer.write(np.zeros((48, 64), np.uint8))
    with pytest.raises(ValueError):
        with open_writer(tmp_path / "bad.mp4", fps=25) as writer:
            writer.write(np.zeros((48, 64, 3), np.uint8))
            writer.write(np.zeros((48, 62, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


# --- atomic behaviour ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["out.mp4", "out.gif", "frames/"])
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_exception_leaves_no_output(tmp_path, name, error):
    with pytest.raises(error):
        with open_writer(tmp_path / name, fps=25) as writer:
            for frame in solid_frames(5):
                writer.write(frame)
            raise error("stop")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_previous_output(tmp_path):
    path = tmp_path / "keep.mp4"
    write_clip(path, solid_frames(3))
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        with open_writer(path, fps=25) as writer:
            writer.write(solid_frames(1)[0])
            raise RuntimeError("stop")
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]


def test_abandoned_writer_cleans_up(tmp_path):
    writer = open_writer(tmp_path / "lost.mp4", fps=25)
    writer.write(solid_frames(1)[0])
    del writer
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_helper(tmp_path):
    target = tmp_path / "stats.json"
    with pytest.raises(ValueError):
        with atomic_output(target) as tmp:
            tmp.write_text("partial")
            raise ValueError
    assert list(tmp_path.iterdir()) == []
    with atomic_output(target) as tmp:
        tmp.write_text("done")
    assert target.read_text() == "done" and list(tmp_path.iterdir()) == [target]


# --- output path checks ----------------------------------------------------------------------------------------


def test_check_output_path_ok(tmp_path):
    target = tmp_path / "new" / "deeper" / "out.mp4"
    assert check_output_path(target) == target and target.parent.is_dir()


@pytest.mark.parametrize(
    "setup",
    [
        "bad_suffix",  # .avi is readable but not a supported output
        "parent_is_file",
        "target_is_folder",
        "frames_target_is_file",
        "frames_folder_has_other_files",
    ],
)
def test_check_output_path_errors(tmp_path, setup):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    target = {
        "bad_suffix": tmp_path / "out.avi",
        "parent_is_file": blocker / "out.mp4",
        "target_is_folder": tmp_path / "dir.mp4",
        "frames_target_is_file": str(blocker) + "/",
        "frames_folder_has_other_files": str(tmp_path) + "/",
    }[setup]
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(OutputError) as err:
        check_output_path(target)
    message = str(err.value)
    assert message.count(". ") == 0 and message.endswith(".")  # one sentence
    with pytest.raises(OutputError):
        open_writer(target, fps=25)


@pytest.mark.parametrize(
    "case",
    [
        "same_path",
        "other_spelling",  # ./folder/../in.mp4
        "hard_link",  # same file, another name: only samefile sees it
        "symlink_to_input",
        "frames_folder_holds_input",
        "frames_folder_is_input_folder",
        "frames_folder_without_slash",
    ],
)
def test_check_output_path_refuses_inputs(tmp_path, case):
    source = tmp_path / "in.mp4"
    source.write_bytes(b"input")
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "000000.png").write_bytes(b"png")
    (tmp_path / "sub").mkdir()
    if case == "hard_link":
        os.link(source, tmp_path / "link.mp4")
    if case == "symlink_to_input":
        (tmp_path / "sym.mp4").symlink_to(source)
    output, inputs = {
        "same_path": (source, [source]),
        "other_spelling": (tmp_path / "sub" / ".." / "in.mp4", [str(source)]),
        "hard_link": (tmp_path / "link.mp4", [source]),
        "symlink_to_input": (tmp_path / "sym.mp4", [source]),
        "frames_folder_holds_input": (str(tmp_path) + "/", [tmp_path / "other.png", source]),
        "frames_folder_is_input_folder": (str(frames) + "/", [source, frames]),
        "frames_folder_without_slash": (frames, [frames / "000000.png"]),
    }[case]
    with pytest.raises(OutputError, match="so that your input is not overwritten") as err:
        check_output_path(output, inputs=inputs)
    message = str(err.value)
    assert message.count(". ") == 0 and message.endswith(".")  # one sentence
    assert "is the input" in message or "holds the input" in message
    assert source.read_bytes() == b"input" and (frames / "000000.png").read_bytes() == b"png"


def test_check_output_path_allows_other_outputs(tmp_path):
    source = tmp_path / "in.mp4"
    source.write_bytes(b"input")
    frames = tmp_path / "frames"
    frames.mkdir()
    # Beside an input, inside an input frame folder, a new frame folder, or an input that does not exist yet.
    for output in (tmp_path / "out.mp4", frames / "out.mp4", str(tmp_path / "new") + "/", tmp_path / "in.gif"):
        assert check_output_path(output, inputs=[source, frames, tmp_path / "missing.mp4"]) == Path(output)
    assert check_output_path(tmp_path / "out.mp4", inputs=iter([source])) == tmp_path / "out.mp4"  # any iterable


# --- input errors ----------------------------------------------------------------------------------------------


def test_input_errors(tmp_path, noise_clip, tone_clip):
    data = noise_clip.read_bytes()
    cases = {
        "missing.mp4": None,
        "empty.mp4": b"",
        "garbage.mp4": np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes(),
        "notes.txt": b"hello",
        "header_only.mp4": data[: data.index(b"mdat") + 8],  # valid header, zero frames
        "no_header.mp4": tone_clip.read_bytes()[:3000],  # moov at the end, cut off
        "broken.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 50,
    }
    for name, content in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(InputError) as err:
            list(VideoSource(path))
        assert name in str(err.value), str(err.value)
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(InputError, match="no image frames"):
        probe(tmp_path / "empty_dir")
    with pytest.raises(InputError):
        read_image(tmp_path / "broken.png")


def test_truncated_video_yields_its_frames(tmp_path, noise_clip, caplog):
    data = noise_clip.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) * 6 // 10])
    frames = read_frames(path)
    assert 5 <= len(frames) < 30
    assert "looks damaged" in caplog.text


# --- images and frame folders ----------------------------------------------------------------------------------


def test_image_conversions(tmp_path):
    gray = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (4, 1))
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    assert np.array_equal(read_image(tmp_path / "gray.png"), np.repeat(gray[:, :, None], 3, axis=2))

    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :2, 3] = 255  # left half opaque red, right half fully transparent
    rgba[0, 3, 3] = 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    out = read_image(tmp_path / "rgba.png")
    assert out[0, 0].tolist() == [255, 0, 0] and out[1, 3].tolist() == [255, 255, 255]
    assert out[0, 3].tolist() == [255, 127, 127]

    Image.fromarray(rgba, "RGBA").convert("LA").save(tmp_path / "la.png")
    assert read_image(tmp_path / "la.png")[1, 3].tolist() == [255, 255, 255]

    palette = Image.fromarray(rgba[..., :3]).convert("P")
    palette.save(tmp_path / "palette.png")
    assert read_image(tmp_path / "palette.png")[0, 0].tolist() == [255, 0, 0]
    palette.info["transparency"] = palette.getpixel((0, 0))  # red becomes the transparent colour
    palette.save(tmp_path / "palette_alpha.png", transparency=palette.getpixel((0, 0)))
    assert read_image(tmp_path / "palette_alpha.png")[0, 0].tolist() == [255, 255, 255]

    deep = np.arange(0, 65536, 256, dtype=np.uint16).reshape(16, 16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    out = read_image(tmp_path / "deep.png")
    assert out.dtype == np.uint8 and out[0, 0, 0] == 0 and out[-1, -1, 0] == 254 and out[8, 0, 1] == 128

    Image.fromarray(np.full((8, 8, 3), (200, 40, 60), np.uint8)).convert("CMYK").save(tmp_path / "cmyk.jpg")
    assert np.abs(read_image(tmp_path / "cmyk.jpg")[4, 4].astype(int) - (200, 40, 60)).max() <= 8


def test_exif_orientation(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 high; red block in the top-left corner
    stored[:5, :5] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(stored).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    info = probe(tmp_path / "rotated.jpg")
    assert (info.kind, info.width, info.height, info.num_frames) == ("image", 20, 40, 1)
    upright = read_image(tmp_path / "rotated.jpg")
    assert upright.shape == (40, 20, 3)
    assert upright[2, -3, 0] > 200 and upright[2, 2, 0] < 50  # the corner moved to the top right


def test_frame_folder_natural_order(tmp_path):
    for index in (10, 2, 1):
        Image.fromarray(np.full((6, 8, 3), COLOURS[index % 5], np.uint8)).save(tmp_path / f"f{index}.png")
    (tmp_path / "notes.txt").write_text("ignored")
    info = probe(tmp_path)
    assert (info.kind, info.num_frames, info.width, info.height, info.fps) == ("frames", 3, 8, 6, None)
    source = VideoSource(tmp_path, fps=15)
    assert source.fps == 15 and len(source) == 3
    assert [f[0, 0].tolist() for f in source] == [COLOURS[i % 5].tolist() for i in (1, 2, 10)]
    assert sorted(["10.png", "2.png", "1.png"], key=natural_key) == ["1.png", "2.png", "10.png"]


def test_frame_folder_size_mismatch(tmp_path):
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / "1.png")
    Image.fromarray(np.zeros((6, 9, 3), np.uint8)).save(tmp_path / "2.png")
    with pytest.raises(InputError, match="same size"):
        list(VideoSource(tmp_path))


def test_single_image_source(tmp_path):
    Image.fromarray(np.full((6, 8, 3), 77, np.uint8)).save(tmp_path / "still.png")
    source = VideoSource(tmp_path / "still.png")
    assert len(source) == 1 and source.size == (8, 6) and source.fps == 25.0
    assert [f.shape for f in source] == [(6, 8, 3)]
