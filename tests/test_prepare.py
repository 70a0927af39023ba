"""``enliven prepare``: layout, metadata, cleaning, resume, identity-safe splits, odd inputs, real clips."""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from enliven.errors import ConfigError, InputError, OutputError
from enliven.io import open_writer
from enliven.prepare import SplitRatios, prepare_dataset
from enliven.prepare.identity import IdentityInput, cluster_identities, mean_pair_distances
from enliven.prepare.sources import discover_clips, find_identity_hint, safe_name
from enliven.prepare.splits import IdentityLoad, assign_splits

FAST = {"size": 32, "min_frames": 8, "progress": False}


def _pattern_frames(seed: int, n: int, w: int = 64, h: int = 48, still: bool = False) -> list[np.ndarray]:
    """Frames of a textured pattern moving to the right (or not moving); every seed looks different."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(h // 8 + 1, (w + n) // 8 + 2, 3), dtype=np.uint8)
    texture = np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))
    return [np.ascontiguousarray(texture[:h, (0 if still else i) : (0 if still else i) + w]) for i in range(n)]


def _write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_writer(path, fps=fps) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def _write_folder(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:04d}.png")
    return folder


@pytest.fixture()
def videos(tmp_path: Path) -> Path:
    """Three distinct moving clips in a folder."""
    root = tmp_path / "videos"
    for seed in range(3):
        _write_video(root / f"clip{seed}.mp4", _pattern_frames(seed, 12))
    return root


def _metadata(out: Path) -> dict:
    return json.loads((out / "metadata.json").read_text())


def test_layout_and_metadata(videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = prepare_dataset([videos], out, kind="any", **FAST)
    meta = _metadata(out)
    assert {k: meta[k] for k in ("version", "size", "kind")} == {"version": 1, "size": 32, "kind": "any"}
    assert len(meta["clips"]) == 3 and summary.total.clips == 3 and summary.total.frames == 36
    for name, clip in meta["clips"].items():
        folder = out / clip["path"]
        assert clip["path"] == f"{clip['split']}/{name}" and folder.is_dir()
        files = sorted(folder.iterdir())
        assert [f.name for f in files[:2]] == ["000000.png", "000001.png"] and len(files) == clip["num_frames"] == 12
        assert np.asarray(Image.open(files[0])).shape == (32, 32, 3)
        for key in ("identity", "origin", "source", "labels", "action", "fps", "crop_box", "license"):
            assert key in clip
        assert clip["fps"] == pytest.approx(10.0) and clip["crop_box"] == [8.0, 0.0, 56.0, 48.0]  # centre square
    assert not list(out.glob("*/.*tmp*")), "no temporary folders left behind"


def test_mp4_output_and_full_frame(videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare_dataset([videos / "clip0.mp4"], out, kind="any", output_format="mp4", any_crop="full", **FAST)
    (clip,) = _metadata(out)["clips"].values()
    assert clip["path"].endswith(".mp4") and (out / clip["path"]).is_file()
    assert clip["crop_box"] == [0.0, -8.0, 64.0, 56.0]  # whole frame padded to a square


def test_fps_resampling(videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare_dataset([videos / "clip0.mp4"], out, kind="any", fps=20, **FAST)
    (clip,) = _metadata(out)["clips"].values()
    assert clip["fps"] == 20 and clip["num_frames"] == 24


def test_cleaning_reasons(videos: Path, tmp_path: Path) -> None:
    _write_video(videos / "frozen.mp4", _pattern_frames(7, 12, still=True))
    _write_video(videos / "short.mp4", _pattern_frames(8, 4))
    (videos / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    (videos / "empty.avi").write_bytes(b"")
    shutil.copy(videos / "clip1.mp4", videos / "copy_of_clip1.mp4")
    Image.fromarray(_pattern_frames(9, 1)[0]).save(videos / "photo.jpg")
    broken = _write_folder(videos / "broken_frames", _pattern_frames(10, 10))
    for png in broken.iterdir():  # headers intact, pixel data cut off
        png.write_bytes(png.read_bytes()[:120])
    out = tmp_path / "out"
    summary = prepare_dataset([videos], out, kind="any", **FAST)
    reasons = dict(summary.skipped)
    assert "frozen" in reasons["frozen.mp4"]
    assert reasons["short.mp4"].startswith("too short")
    assert reasons["corrupt.mp4"].startswith("unreadable") and reasons["empty.avi"].startswith("unreadable")
    assert reasons["photo.jpg"] == "a single image, not a clip"
    assert reasons["broken_frames"] == "unreadable: no frame could be decoded"
    dup = [origin for origin in ("clip1.mp4", "copy_of_clip1.mp4") if origin in reasons]
    assert len(dup) == 1 and reasons[dup[0]].startswith("duplicate")
    assert summary.total.clips == 3
    log = (out / "prepare.log").read_text()
    assert "frozen.mp4" in log and "corrupt.mp4" in log and "duplicate" in log


def test_scene_cut_splits_a_clip(tmp_path: Path) -> None:
    frames = _pattern_frames(1, 12) + _pattern_frames(2, 12)
    _write_video(tmp_path / "in" / "two_scenes.mp4", frames)
    out = tmp_path / "out"
    prepare_dataset([tmp_path / "in"], out, kind="any", **FAST)
    clips = _metadata(out)["clips"]
    assert sorted(c["origin_frames"] for c in clips.values()) == [[0, 12], [12, 24]]
    assert len({c["identity"] for c in clips.values()}) == 1, "shots of one input keep one identity"


def test_resume_skips_finished_clips(videos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import enliven.prepare.run as run_module

    out = tmp_path / "out"
    real = run_module.process_clip
    calls: list[str] = []

    def interrupted(clip, settings, work):
        if calls:
            raise KeyboardInterrupt
        calls.append(clip.name)
        return real(clip, settings, work)

    monkeypatch.setattr(run_module, "process_clip", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset([videos], out, kind="any", **FAST)
    monkeypatch.setattr(run_module, "process_clip", real)
    summary = prepare_dataset([videos], out, kind="any", **FAST)
    assert (summary.processed, summary.resumed, summary.total.clips) == (2, 1, 3)
    written = {p: p.stat().st_mtime_ns for p in out.glob("*/*/*.png")}
    again = prepare_dataset([videos], out, kind="any", **FAST)
    assert (again.processed, again.resumed, again.total.clips) == (0, 3, 3)
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*/*.png")} == written
    with pytest.raises(OutputError):
        prepare_dataset([videos], out, kind="any", **{**FAST, "size": 64})
    state = out / ".prepare/state.json"
    state.write_text(json.dumps({**json.loads(state.read_text()), "version": 1}))  # an earlier enliven's identities
    with pytest.raises(OutputError, match="earlier version"):
        prepare_dataset([videos], out, kind="any", **FAST)


def test_parallel_workers(videos: Path, tmp_path: Path) -> None:
    summary = prepare_dataset([videos], tmp_path / "out", kind="any", workers=2, **FAST)
    assert summary.total.clips == 3


def test_identity_clusters_and_splits_never_straddle() -> None:
    rng = np.random.default_rng(0)
    people = rng.normal(size=(12, 128)) * 0.3
    clips, truth = [], {}
    for i in range(60):
        person = i % 12
        emb = people[person] + rng.normal(size=(3, 128)) * 0.005
        clips.append(IdentityInput(f"c{i}", emb, None, "g"))
        truth[f"c{i}"] = person
    clips.append(IdentityInput("hinted_a", np.zeros((0, 128)), "M030", "g"))
    clips.append(IdentityInput("hinted_b", np.zeros((0, 128)), "M030", "g"))
    clips.append(IdentityInput("faceless_a", np.zeros((0, 128)), None, "dataset-x"))
    clips.append(IdentityInput("faceless_b", np.zeros((0, 128)), None, "dataset-x"))
    ident = cluster_identities(clips)
    for a in truth:
        for b in truth:
            assert (ident[a] == ident[b]) == (truth[a] == truth[b])
    assert ident["hinted_a"] == ident["hinted_b"] == "M030" and ident["faceless_a"] == ident["faceless_b"]
    loads = {}
    for who in ident.values():
        loads[who] = loads.get(who, 0) + 100
    ratios = SplitRatios.parse("0.6,0.2,0.2")
    split = assign_splits([IdentityLoad(k, v) for k, v in loads.items()], ratios, seed=3)
    assert split == assign_splits([IdentityLoad(k, v) for k, v in reversed(loads.items())], ratios, seed=3)
    frames = {s: sum(v for k, v in loads.items() if split[k] == s) for s in ("train", "val", "test")}
    total = sum(frames.values())
    assert abs(frames["train"] / total - 0.6) < 0.1 and frames["val"] > 0 and frames["test"] > 0


def test_noisy_descriptors_of_two_people_stay_apart() -> None:
    # Small faces: each frame's descriptor scatters about 0.45 from the next one of the same person. Two people 0.5
    # apart then have clip means under the 0.6 cut (the means' noise averages out) but frames 0.67 apart.
    rng = np.random.default_rng(1)
    center = rng.normal(size=128)
    offset = rng.normal(size=128)
    people = {"a": center, "b": center + offset / np.linalg.norm(offset) * 0.5}
    spread = 0.45 / np.sqrt(2 * 128)
    clips = [
        IdentityInput(f"{who}{k}", people[who] + rng.normal(size=(10, 128)) * spread, None, f"{who}{k}")
        for who in "ab"
        for k in range(2)
    ]
    means = {c.name: c.embeddings.mean(axis=0) for c in clips}
    assert np.linalg.norm(means["a0"] - means["b0"]) < 0.6  # what the clip means alone would have merged
    ident = cluster_identities(clips)
    assert ident["a0"] == ident["a1"] != ident["b0"] == ident["b1"]
    sets = [c.embeddings for c in clips]
    brute = [[np.linalg.norm(x[:, None] - y[None], axis=-1).mean() for y in sets] for x in sets]
    assert np.allclose(mean_pair_distances(sets), brute)


def test_split_hints_and_ratios() -> None:
    loads = [IdentityLoad("grid1", 75, frozenset({"val"})), IdentityLoad("big", 1000, frozenset({"train"}))]
    loads += [IdentityLoad(f"p{i}", 100) for i in range(10)]
    split = assign_splits(loads, SplitRatios(0.8, 0.1, 0.1))
    assert split["grid1"] == "val" and split["big"] == "train"
    assert SplitRatios.parse("8,1,1") == SplitRatios(0.8, 0.1, 0.1)
    for bad in ("0.8,0.2", "a,b,c", "0,0.5,0.5"):
        with pytest.raises(ConfigError):
            SplitRatios.parse(bad)


def test_odd_inputs_are_converted(tmp_path: Path) -> None:
    root = tmp_path / "in"
    # Grey frames, so that the grayscale and 16-bit ones show the same picture as their RGB neighbours.
    frames = [np.repeat(f[:, :, :1], 3, axis=2) for f in _pattern_frames(4, 10, w=33, h=27)]
    folder = _write_folder(root / "frames_ü_東京", frames)
    Image.fromarray(frames[1][:, :, 0]).save(folder / "0001.png")  # 8-bit grayscale
    Image.fromarray(np.dstack([frames[2], np.full((27, 33), 255, np.uint8)])).save(folder / "0002.png")  # RGBA
    Image.fromarray(frames[3][:, :, 0].astype(np.uint16) * 257).save(folder / "0003.png")  # 16-bit grayscale
    Image.fromarray(frames[4]).resize((40, 30)).save(folder / "0004.png")  # another size
    _write_video(root / "vidéo 東京.mp4", _pattern_frames(5, 12, w=65, h=49))
    (root / "notes.txt").write_text("not media")
    out = tmp_path / "out"
    summary = prepare_dataset([root], out, kind="any", **FAST)
    assert summary.total.clips == 2 and not summary.skipped
    for name, clip in _metadata(out)["clips"].items():
        assert name.isascii() and (out / clip["path"]).is_dir()


def test_sources_helpers(tmp_path: Path) -> None:
    assert safe_name("vidéo 東京") != safe_name("vidéo 大阪") and safe_name("vidéo 東京").isascii()
    assert find_identity_hint("MEAD actor M030, frontal") == "M030"
    assert find_identity_hint("PD-FGC/frames/exp_vox2_id01000_00077/") == "id01000"
    with pytest.raises(InputError):
        discover_clips([tmp_path / "missing"])


def test_manifest_kind_extra_and_hints(videos: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    rows = [
        ("faces", "setA", "videos/clip0.mp4", "train", "MEAD actor M030, happy"),
        ("faces", "setA", "videos/clip1.mp4", "val", "speaker"),
        ("bodies", "setB", "videos/clip2.mp4", "train", "dancer"),
        ("faces", "setA", "videos/clip2.mp4", "extra", "odd clip"),
    ]
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["kind", "source", "file", "split", "content", "license"])
        writer.writerows((*row, "CC BY 4.0") for row in rows)
    out = tmp_path / "out"
    summary = prepare_dataset([manifest], out, kind="any", manifest_kinds=["faces"], **FAST)
    clips = _metadata(out)["clips"]
    assert summary.total.clips == 2 and any("extra" in reason for _, reason in summary.skipped)
    by_origin = {c["origin"]: c for c in clips.values()}
    assert by_origin["videos/clip1.mp4"]["split"] == "val"
    assert by_origin["videos/clip0.mp4"]["identity"] == "M030"
    assert by_origin["videos/clip0.mp4"]["source"] == "setA" and by_origin["videos/clip0.mp4"]["license"] == "CC BY 4.0"
    assert by_origin["videos/clip0.mp4"]["action"] == "MEAD actor M030, happy"


def test_cli_prints_summary(videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from enliven.cli import prepare as cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(
        ["prepare", str(videos), str(tmp_path / "out"), "--kind", "any", "--size", "32", "--min-frames", "8",
         "--split", "0.5,0.25,0.25", "--no-progress"]
    )  # fmt: skip
    assert args.handler(args) == 0
    text = capsys.readouterr().out
    assert "train" in text and "identities" in text and "total" in text


def test_real_face_clips(data_dir: Path, tmp_path: Path) -> None:
    """Two real speakers (MEAD, GRID): face crops, two identities, the GRID clip in val by its manifest hint."""
    mead = data_dir / "faces/dreamtalk-MEAD/videos/M030_front_happy_level3_001.mp4"
    grid = data_dir / "faces/GRID-LipNet/videos/bbaf2n.mpg"
    if not (mead.exists() and grid.exists()):
        pytest.skip("the shared clips are not here")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"kind,source,file,split,content\nfaces,MEAD,{mead},train,man\nfaces,GRID,{grid},val,speaker\n")
    out = tmp_path / "out"
    summary = prepare_dataset([manifest], out, kind="faces", size=64, max_frames=12, min_frames=8, progress=False)
    clips = _metadata(out)["clips"]
    assert summary.total.clips == 2 and summary.total.identities == 2, summary
    for clip in clips.values():
        x0, y0, x1, y1 = clip["crop_box"]
        assert abs((x1 - x0) - (y1 - y0)) < 1.0 and 64 < x1 - x0 <= 288
        assert np.asarray(Image.open(out / clip["path"] / "000000.png")).shape == (64, 64, 3)
    assert {c["origin"].split("/")[-1]: c["split"] for c in clips.values()}["bbaf2n.mpg"] == "val"
    assert summary.landmarks is not None and summary.landmarks.computed == 2 and not summary.landmarks.failed
    for clip in clips.values():
        points = np.load(out / f"{clip['path']}.face_mesh.npy")
        assert points.shape == (clip["num_frames"], 468, 2) and np.isfinite(points).any()


def test_tracked_shots_split_at_cuts_and_lost_tracks() -> None:
    from enliven.prepare.shots import plan_tracked_shots
    from enliven.preprocess import Box, FaceTrack

    face = Box(100, 80, 180, 180)
    boxes: list[Box | None] = [face] * 30 + [None] * 10 + [face.shifted(5, 0)] * 30 + [face] * 30
    track = FaceTrack.from_boxes(boxes, (640, 480))
    shots, reason = plan_tracked_shots(track, cuts=[70], kind="faces", min_frames=16, min_side=96, max_gap=5)
    assert reason is None and [(s.start, s.stop) for s in shots] == [(0, 30), (40, 70), (70, 100)]
    for shot in shots:
        assert shot.box.width == pytest.approx(shot.box.height) and shot.box.contains(face.scaled(0.99).shifted(0, 0))
    shots, reason = plan_tracked_shots(track, cuts=[], kind="faces", min_frames=16, min_side=400, max_gap=5)
    assert not shots and reason.startswith("face too small")
    empty = FaceTrack.from_boxes([None] * 20, (640, 480))
    assert plan_tracked_shots(empty, [], "faces", 8, 96, 5) == ([], "no face found")


def test_real_people_with_small_faces_stay_apart(data_dir: Path, tmp_path: Path) -> None:
    """A man juggling and two children on a bed (faces 50-70 px): their mean descriptors are 0.46 apart, under the
    0.6 cut, and were one identity; frame by frame they are two."""
    clips = [data_dir / "bodies/sam2/videos/05_default_juggle.mp4", data_dir / "bodies/sam2/videos/bedroom.mp4"]
    if not all(c.exists() for c in clips):
        pytest.skip("the shared clips are not here")
    out = tmp_path / "out"
    fast = {"fps": 10, "detect_every": 4, "landmarks": False, "progress": False}
    summary = prepare_dataset(clips, out, kind="bodies", size=32, min_frames=8, **fast)
    assert summary.total.identities == 2, summary
    results = json.loads((out / ".prepare/state.json").read_text())["results"].values()
    juggler, children = (np.array(r["embeddings"]) for r in results)
    assert len(juggler) >= 5 and len(children) >= 5
    assert np.linalg.norm(juggler.mean(axis=0) - children.mean(axis=0)) < 0.6  # the means alone: one person


def test_real_body_clip(data_dir: Path, tmp_path: Path) -> None:
    clip = data_dir / "bodies/MRAA-taichi/videos/taichi_copart01.mp4"
    if not clip.exists():
        pytest.skip("the shared clip is not here")
    out = tmp_path / "out"
    summary = prepare_dataset([clip], out, kind="bodies", size=64, max_frames=20, min_frames=8, progress=False)
    (entry,) = _metadata(out)["clips"].values()
    start, stop = entry["origin_frames"]  # the pose model finds the dancer from frame 4 on
    assert summary.total.clips == 1 and entry["num_frames"] == stop - start >= 8 and stop == 20
    x0, y0, x1, y1 = entry["crop_box"]
    assert abs((x1 - x0) - (y1 - y0)) < 1.0 and 0 <= x0 and x1 <= 256  # square, inside the 256 x 256 frame
    # the clip's pose landmarks are stored beside it, one row per frame (for body models)
    assert (
        summary.landmarks is not None
        and summary.landmarks.computed == 1
        and "Pose landmarks" in summary.landmarks.line()
    )
    (sidecar,) = out.glob("*/*.pose.npy")
    assert np.load(sidecar).shape == (entry["num_frames"], 33, 2)
