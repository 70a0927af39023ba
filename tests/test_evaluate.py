"""``enliven eval``: metrics, external keypoints and identity, baselines, both protocols, the report and the CLI."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from enliven.cli import main
from enliven.errors import InputError
from enliven.evaluate import (
    AnimationScores,
    EvaluationOptions,
    MethodKind,
    Protocol,
    ReconstructionScores,
    StaticBaseline,
    evaluate,
    metrics,
    write_report,
)
from enliven.evaluate.baselines import MeshWarpBaseline, border_anchors, piecewise_affine_warp
from enliven.evaluate.landmarks import LandmarkSet, motion_signals
from enliven.face_mesh import delaunay_triangles
from enliven.io import read_frames
from enliven.preprocess import center_square_box, crop_and_resize
from enliven.weights.loader import load_model

GRID_CLIPS = {"bbaf2n": "speaker-a", "swiz3n": "speaker-b"}
FRAMES_PER_CLIP = 3


@pytest.fixture(scope="module")
def grid_frames(data_dir: Path) -> dict[str, np.ndarray]:
    """A few GRID frames per clip, centre-cropped to 256 x 256."""
    out = {}
    for name in GRID_CLIPS:
        path = data_dir / "faces" / "GRID-LipNet" / "videos" / f"{name}.mpg"
        if not path.is_file():
            pytest.skip(f"{path} is not in the shared data")
        frames = read_frames(path, max_frames=FRAMES_PER_CLIP * 8)[::8]  # every 8th frame: visible motion
        box = center_square_box(frames.shape[2], frames.shape[1])
        out[name] = np.stack([crop_and_resize(f, box, 256) for f in frames])
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, grid_frames: dict[str, np.ndarray]) -> Path:
    """A FOMM-layout dataset: two clips of two identities in ``test``, one in ``train``, an empty ``val``."""
    from PIL import Image

    root = tmp_path_factory.mktemp("faces")
    clips = {}
    for split in ("train", "val", "test"):
        (root / split).mkdir()
    for name, frames in grid_frames.items():
        folder = root / "test" / f"{name}-00"
        folder.mkdir()
        for i, frame in enumerate(frames):
            Image.fromarray(frame).save(folder / f"{i:06d}.png")
        clips[f"{name}-00"] = {"split": "test", "identity": GRID_CLIPS[name], "path": f"test/{name}-00"}
    (root / "train" / "other-00").mkdir()
    Image.fromarray(grid_frames["bbaf2n"][0]).save(root / "train" / "other-00" / "000000.png")
    (root / "val" / "notes.txt").write_text("not a clip")
    meta = {"version": 1, "size": 256, "kind": "faces", "clips": clips}
    (root / "metadata.json").write_text(json.dumps(meta))
    return root


@pytest.fixture(scope="module")
def tiny_model(reference_dir: Path):
    folder = reference_dir / "fomm-tiny"
    return load_model(folder / "checkpoint-full.pth.tar", folder / "config.yaml")


# --- metrics --------------------------------------------------------------------------------------------------------


def test_metrics_of_identical_frames(grid_frames) -> None:
    frames = grid_frames["bbaf2n"]
    assert np.all(metrics.l1_error(frames, frames) == 0)
    assert np.all(metrics.mse(frames, frames) == 0)
    assert metrics.psnr_from_mse(0.0) == metrics.PSNR_CAP_DB
    assert np.allclose(metrics.ssim(frames, frames), 1.0)


def test_ssim_matches_scikit_image(grid_frames) -> None:
    from skimage.metrics import structural_similarity

    a, b = grid_frames["bbaf2n"][0], grid_frames["bbaf2n"][2]
    ours = metrics.ssim(a, b)[0]
    theirs = structural_similarity(
        a / 255.0, b / 255.0, channel_axis=2, data_range=1.0, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False,
    )  # fmt: skip
    assert ours < 0.999 and abs(ours - theirs) < 2e-3
    assert math.isclose(metrics.psnr_from_mse(0.01), 20.0)


def test_keypoint_distance_missing_and_pearson() -> None:
    truth = np.array([[0.0, 0.0], [3.0, 4.0], [np.nan, np.nan]])
    output = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    assert metrics.keypoint_distance(truth, output) == pytest.approx(2.5)
    assert metrics.missing_keypoints(truth, np.full((3, 2), np.nan)) == (2, 2)
    assert math.isnan(metrics.keypoint_distance(truth, np.full((3, 2), np.nan)))
    x = np.arange(6.0)
    assert metrics.pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert metrics.pearson(x, np.ones(6)) == 0.0  # an output that does not move follows nothing
    assert math.isnan(metrics.pearson(np.ones(6), x))
    assert math.isnan(metrics.pearson(x[:2], x[:2]))


def test_external_landmarks_and_identity_of_identical_frames(grid_frames) -> None:
    from enliven.evaluate.identity import FaceIdentity
    from enliven.evaluate.landmarks import DlibLandmarks

    frame = grid_frames["bbaf2n"][0]
    landmarks = DlibLandmarks()
    points = landmarks.detect(frame)
    assert points.shape == (68, 2) and not np.isnan(points).any()
    assert metrics.keypoint_distance(points, landmarks.detect(frame.copy())) == 0.0
    assert np.isnan(landmarks.detect(np.zeros_like(frame))).all()
    identity = FaceIdentity()
    same = identity.embed(frame)
    other = identity.embed(grid_frames["swiz3n"][0])
    assert np.linalg.norm(same - identity.embed(frame.copy())) == 0.0
    assert np.linalg.norm(same - other) > 0.3
    signals = motion_signals(points[None], (256, 256))
    assert 0 < signals.eyes[0] < 1 and 0.3 < signals.head_x[0] < 0.7 and abs(signals.yaw[0]) < 0.3


# --- baselines ------------------------------------------------------------------------------------------------------


def test_joint_angles_of_a_moving_arm_and_their_correlation() -> None:
    from enliven.evaluate.protocols import AnimationFrames, summarise
    from enliven.pose import POSE_JOINTS, joint_angles

    frames = 12
    points = np.full((frames, 33, 2), np.nan)
    points[:, 11], points[:, 13] = (100.0, 100.0), (150.0, 100.0)  # left shoulder, elbow: the upper arm level
    bend = np.linspace(0.2, np.pi - 0.2, frames)  # the forearm folds from nearly closed to nearly straight
    points[:, 15] = points[:, 13] + 50 * np.stack([np.cos(np.pi - bend), -np.sin(np.pi - bend)], axis=-1)
    angles = joint_angles(points)
    assert angles.shape == (frames, len(POSE_JOINTS))
    np.testing.assert_allclose(angles[:, 0], bend, atol=1e-9)  # the left elbow
    assert np.isnan(angles[:, 1:]).all()  # no right arm, no hips or knees: not found
    signals = motion_signals(points, (256, 256))
    still = motion_signals(np.broadcast_to(points[:1], points.shape), (256, 256))
    assert signals.joints is not None and motion_signals(np.zeros((frames, 68, 2)), (256, 256)).joints is None

    def item(output):
        return AnimationFrames(np.zeros(frames), output, signals, np.full(frames, np.nan))

    assert summarise([item(signals)]).joints == pytest.approx(1.0)  # follows the driver's elbow
    assert summarise([item(still)]).joints == 0.0  # an arm that does not move follows nothing


def test_static_baseline_reproduces_the_source(grid_frames) -> None:
    frames = grid_frames["bbaf2n"]
    static = StaticBaseline()
    static.set_source(frames[0])
    out = static.animate(frames)
    assert out.shape == frames.shape and static.kind is MethodKind.NO_MODEL
    assert all(np.array_equal(o, frames[0]) for o in out)


def test_piecewise_affine_warp_is_exact_for_identity_and_translation() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    points = np.concatenate([rng.uniform(10, 54, (20, 2)), border_anchors(64, 64)])
    triangles = delaunay_triangles(points)
    assert np.array_equal(piecewise_affine_warp(image, points, points, triangles), image)
    moved = piecewise_affine_warp(image, points, points + [3.0, 0.0], triangles)
    assert np.array_equal(moved[:, 3:], image[:, :-3])  # content moves right by 3 pixels


def test_mesh_warp_of_a_frame_onto_its_own_landmarks_is_the_frame(grid_frames) -> None:
    frames = grid_frames["bbaf2n"]
    mesh = MeshWarpBaseline()
    try:
        mesh.set_source(frames[0])
        out = mesh.animate(frames)
    finally:
        mesh.close()
    assert np.abs(out[0].astype(int) - frames[0]).mean() < 1.0
    moved_error = np.abs(out[1:].astype(int) - frames[1:]).mean()
    assert moved_error < np.abs(frames[1:].astype(int) - frames[0]).mean() * 1.5


def test_relative_motion_starts_at_the_reference_frame(grid_frames) -> None:
    """``set_reference``: the mesh warp in relative motion keeps the source where the driver is as in the chosen
    frame, and moves it elsewhere (what ``enliven eval --find-best-frame`` gives every method)."""
    from enliven.types import MotionMode

    source, frames = grid_frames["swiz3n"][0], grid_frames["bbaf2n"]
    mesh = MeshWarpBaseline(MotionMode.RELATIVE)
    try:
        mesh.set_source(source)
        mesh.set_reference(frames[2])
        out = mesh.animate(frames)
    finally:
        mesh.close()
    still = np.abs(out[2].astype(int) - source).mean()
    assert still < 1.0 and np.abs(out[0].astype(int) - source).mean() > still + 0.5


def test_best_reference_frames_match_the_evaluations_keypoints() -> None:
    from enliven.evaluate.protocols import best_reference_frame

    rng = np.random.default_rng(0)
    face = rng.uniform(50, 200, (68, 2))
    frames = np.stack([face + rng.normal(0, 8, face.shape), face * 1.2 + 9, face + rng.normal(0, 8, face.shape)])
    assert best_reference_frame(face, frames) == 1  # the same face, scaled and moved
    frames[1, 5] = np.nan  # a frame missing a point is skipped
    assert best_reference_frame(face, frames) in (0, 2)
    assert best_reference_frame(None, frames) == 0 and best_reference_frame(face, None) == 0
    body = rng.uniform(50, 200, (33, 2))
    body[25:] = np.nan  # a half-body photo: no knees, ankles or feet found
    poses = np.stack([body + rng.normal(0, 8, body.shape), body + 3, body + rng.normal(0, 8, body.shape)])
    poses[:, 25:] = rng.uniform(50, 200, (3, 8, 2))  # the driver's legs do not count
    assert best_reference_frame(body, poses) == 1


# --- protocols, report, CLI -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reconstruction(tiny_model, dataset: Path):
    options = EvaluationOptions(identity_every=1, samples=1, sample_frames=2, device="cpu")
    return evaluate(tiny_model, dataset, "test", Protocol.RECONSTRUCTION, options)


def test_reconstruction_scores_model_and_baselines(reconstruction) -> None:
    assert [m.name for m in reconstruction.methods] == ["checkpoint-full.pth.tar", "static", "mesh warp"]
    assert [m.kind for m in reconstruction.methods] == [MethodKind.MODEL, MethodKind.NO_MODEL, MethodKind.NO_LEARNING]
    assert reconstruction.num_clips == 2 and reconstruction.landmarks.value == "dlib68"
    for method in reconstruction.methods:
        assert isinstance(method.summary, ReconstructionScores)
        assert method.frames == 2 * FRAMES_PER_CLIP and method.fps > 0
        assert 0 <= method.summary.l1 < 1 and -1 <= method.summary.ssim <= 1
    static = reconstruction.methods[1].summary
    assert 0 < static.l1 < 0.1 and static.mkr == 0.0 and static.akd < 5 and static.aed < 0.3
    # The mouth moves more than the whole frame; the source repeated is as sharp as the real frames, about.
    assert static.mouth_l1 > static.l1 and 0.5 < static.sharpness < 2


def test_report_files(reconstruction, tmp_path: Path) -> None:
    out = write_report(reconstruction, tmp_path / "report")
    data = json.loads((out / "results.json").read_text())
    assert data["protocol"] == "reconstruction" and len(data["methods"]) == 3
    assert len(data["methods"][0]["clips"]) == 2 and data["methods"][1]["summary"]["mkr"] == 0.0
    text = (out / "report.md").read_text()
    assert "| static | no model |" in text and "| mesh warp | no learning |" in text
    for name in ("plots/summary.png", "plots/clips.png", "samples/sample-00.png"):
        assert (out / name).is_file() and name in text
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_animation_pairs_other_identities(tiny_model, dataset: Path, tmp_path: Path) -> None:
    options = EvaluationOptions(identity_every=1, samples=1, sample_frames=2, device="cpu", max_frames=FRAMES_PER_CLIP)
    result = evaluate(tiny_model, dataset, "test", "animation", options, compare=[tiny_model])
    clips = result.methods[0].clips
    assert [(c.source_clip, c.driving_clip) for c in clips] == [("bbaf2n-00", "swiz3n-00"), ("swiz3n-00", "bbaf2n-00")]
    assert [m.kind for m in result.methods] == [
        MethodKind.MODEL,
        MethodKind.MODEL,
        MethodKind.NO_MODEL,
        MethodKind.NO_LEARNING,
    ]
    assert result.methods[1].name.endswith("(2)")  # the same model compared with itself keeps two rows
    static = result.methods[2].summary
    assert isinstance(static, AnimationScores)
    assert static.identity == pytest.approx(0.0, abs=1e-9)  # the source itself
    assert static.mouth == 0.0 or math.isnan(static.mouth)  # a still output follows no motion
    assert static.sharpness == pytest.approx(1.0)  # the photo itself
    assert math.isnan(static.mouth_range) or static.mouth_range < 0.05  # its mouth never opens
    # The strip shows every image's mouth enlarged beside the frames.
    sample = result.samples[0]
    assert len(sample.mouths) == 2 + len(result.methods) and sample.mouths[0].shape[1:] == (128, 128, 3)
    out = write_report(result, tmp_path / "report")
    assert "mouths, enlarged" in (out / "report.md").read_text()

    # bodies: no face to embed, so each clip's row shows the joints' correlation instead of the identity distance
    from enliven.evaluate.report import markdown

    def body_scores(scores: AnimationScores, joints: float) -> AnimationScores:
        return replace(scores, identity=math.nan, joints=joints)

    bodies = replace(result, methods=tuple(
        replace(m, summary=body_scores(m.summary, 0.5),
                clips=tuple(replace(c, scores=body_scores(c.scores, 0.25)) for c in m.clips))
        for m in result.methods
    ))  # fmt: skip
    text = markdown(bodies, [])
    assert "corr. joints per clip" in text and "| bbaf2n-00 ← swiz3n-00 | 0.2500 |" in text


def test_animation_from_the_best_frame(tiny_model, dataset: Path, tmp_path: Path) -> None:
    """``find_best_frame``: each pair starts from the driving frame posed most like the source, said per clip in the
    report; the reconstruction protocol, which has no reference frame, refuses it."""
    options = EvaluationOptions(samples=0, device="cpu", max_frames=FRAMES_PER_CLIP, find_best_frame=True)
    result = evaluate(tiny_model, dataset, "test", "animation", options)
    starts = [clip.reference_frame for clip in result.methods[0].clips]
    assert all(0 <= start < FRAMES_PER_CLIP for start in starts)
    assert all([clip.reference_frame for clip in m.clips] == starts for m in result.methods)
    text = (write_report(result, tmp_path / "report") / "report.md").read_text()
    assert "posed most like the source" in text and f"| bbaf2n-00 ← swiz3n-00 (from frame {starts[0]}) |" in text
    with pytest.raises(InputError, match="for the animation protocol"):
        evaluate(tiny_model, dataset, "test", "reconstruction", options)


def test_a_clip_without_what_the_model_needs_is_skipped_for_every_method(
    dataset: Path, grid_frames: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """A source frame without a face (a body model's: without a person) leaves its clip out of every method's scores
    with a line saying why, instead of ending the evaluation; a split of such clips only is an error."""
    import shutil

    from PIL import Image

    from enliven.evaluate import EvaluationError

    root = tmp_path / "data"
    shutil.copytree(dataset, root)
    blank = root / "test" / "blank-00"
    blank.mkdir()
    for i in range(FRAMES_PER_CLIP):
        Image.fromarray(np.full((256, 256, 3), 90 + i, np.uint8)).save(blank / f"{i:06d}.png")
    meta = json.loads((root / "metadata.json").read_text())
    meta["clips"]["blank-00"] = {"split": "test", "identity": "nobody", "path": "test/blank-00"}
    (root / "metadata.json").write_text(json.dumps(meta))

    options = EvaluationOptions(samples=0, device="cpu", max_frames=FRAMES_PER_CLIP, landmarks=LandmarkSet.NONE)
    result = evaluate("enliven-lite", root, "test", "reconstruction", options)
    assert [(s.source_clip, s.driving_clip) for s in result.skipped] == [("blank-00", "blank-00")]
    assert "No face" in result.skipped[0].reason
    assert all([c.source_clip for c in m.clips] == ["bbaf2n-00", "swiz3n-00"] for m in result.methods)
    text = (write_report(result, tmp_path / "report") / "report.md").read_text()
    assert "1 skipped" in text and "- blank-00: No face" in text
    assert json.loads((tmp_path / "report" / "results.json").read_text())["skipped"][0]["source_clip"] == "blank-00"

    with pytest.raises(EvaluationError, match="Every one of the 1 clips was skipped"):
        evaluate("enliven-lite", root, "test", "reconstruction", replace(options, clips=("blank*",)))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "{missing}"], "does not exist"),
        (["--data", "{root}", "--split", "val"], "No clips found"),
        (["--data", "{root}", "--split", "nope"], "has no 'nope' split"),
        (["--data", "{root}", "--model", "no-such-model"], "neither a file nor a known model name"),
        (["--data", "{root}", "--clips", "zzz*"], "no clip of the split matches zzz*"),
    ],
)
def test_cli_errors(dataset: Path, tmp_path: Path, capsys, args: list[str], message: str) -> None:
    argv = ["eval", *(a.format(missing=tmp_path / "missing", root=dataset) for a in args), "-q"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_writes_report(dataset: Path, reference_dir: Path, tmp_path: Path, capsys) -> None:
    folder = reference_dir / "fomm-tiny"
    report = tmp_path / "out"
    model = ["--model", str(folder / "checkpoint-full.pth.tar"), "--config", str(folder / "config.yaml")]
    argv = ["eval", *model, "--data", str(dataset), "--clips", "*-00", "--max-clips", "1", "--max-frames", "2"]
    assert main([*argv, "--no-baselines", "--samples", "0", "--device", "cpu", "-q", "--report", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "| checkpoint-full.pth.tar | model |" in printed and "1 clips, 2 frames" in printed
    assert (report / "report.md").is_file() and (report / "results.json").is_file()
    (tmp_path / "file").write_text("x")
    assert main([*argv, "--no-baselines", "-q", "--report", str(tmp_path / "file")]) == 2


def test_identity_floor_script_scores_real_frames(dataset: Path) -> None:
    """scripts/identity_floor.py: AED of real neighbouring and mildly degraded frames, the metric's floor."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "identity_floor.py"
    run = subprocess.run(
        [sys.executable, str(script), str(dataset), "--split", "test", "--frames", "2", "--every", "1"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = {line.split(" | ")[0].strip("| "): float(line.split(" | ")[1].strip(" |"))
            for line in run.stdout.splitlines() if line.startswith("| ") and line[2:3] != "c"}  # fmt: skip
    assert set(rows) >= {"the real frame 1 frame later", "blurred (Gaussian sigma 1 px)"}
    assert all(0 < value < 1.0 for value in rows.values())


def test_eye_chain_script_measures_each_link(dataset: Path) -> None:
    """scripts/eye_chain.py: per cross-identity pair, the driver's eye signal, the source's eyes and both
    correlations (the mesh's and the protocol's dlib) of a face-mesh model's output."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "eye_chain.py"
    run = subprocess.run(
        [sys.executable, str(script), str(dataset), "--split", "test", "--frames", "4"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if " <- " in line and "source <- driver" not in line]
    assert len(rows) == 2 and "**mean of 2 pairs**" in run.stdout
    cells = rows[0].strip("| ").split(" | ")
    assert len(cells) == 6 and 0 < float(cells[2].split(" / ")[0]) < 1
    empty = subprocess.run([sys.executable, str(script), str(dataset), "--split", "val"], capture_output=True,
                           text=True, check=False, timeout=300)  # fmt: skip
    assert empty.returncode != 0 and "split" in empty.stderr and "Traceback" not in empty.stderr


def test_l1_regions_script_splits_the_error_and_scores_a_body_that_follows(dataset: Path, tmp_path: Path) -> None:
    """scripts/l1_regions.py: a face model's L1 split into face, ring and rest, beside the baselines, the flow oracle,
    the head-moved rows and the model with the source's person moved by the driver's flow (and that row's cost)."""
    import shutil
    import subprocess
    import sys

    from enliven.prepare.landmarks import add_landmarks

    root = tmp_path / "faces"
    shutil.copytree(dataset, root)
    add_landmarks(root, ["test"], progress=False)
    script = Path(__file__).resolve().parents[1] / "scripts" / "l1_regions.py"
    strip = tmp_path / "mouths.jpg"
    run = subprocess.run([sys.executable, str(script), str(root), "--split", "test", "--frames", "3", "--mouth-strip",
                          str(strip)], capture_output=True, text=True, check=False, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    regions_table, mouth_table = run.stdout.split("The mouth:")
    rows, mouth = _markdown_rows(regions_table), _markdown_rows(mouth_table)
    follows = next(name for name in rows if "moved by the driver's flow" in name)
    l1, face, ring, rest = rows[follows]
    assert 0 < l1 < 0.2 and abs(face + ring + rest - l1) < 1e-3
    assert rows["enliven-lite"][1:3] == [face, ring]  # the model's face and ring are kept as they were
    assert "2 clips of test, first 3 frames" in run.stdout and "ms a frame (median)" in run.stdout
    assert sorted(mouth) == ["enliven-lite", "mesh warp"]
    from PIL import Image

    assert Image.open(strip).size == (4 * 160, 22 + 2 * 160)  # a row per clip (both have lips), four mouths each
    for l1, l1_interior, aed, *aed_pasted in mouth.values():
        assert 0 < l1_interior <= l1  # pasting the real interior can only lower the mouth's L1
        assert all(0 <= value < 1.5 for value in [aed, *aed_pasted])  # frame 0 alone: near the source itself


def _markdown_rows(text: str) -> dict[str, list[float]]:
    """The rows of the markdown tables in ``text`` whose cells after the first are all numbers, by first cell."""
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) > 1 and all(c.replace(".", "", 1).isdigit() for c in cells[1:]):
            rows[cells[0]] = [float(c) for c in cells[1:]]
    return rows
