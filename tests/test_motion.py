"""Face motion without a driving video: pose/expression geometry, edits, the motion VAE, its training, sampling,
rendering, the CLI and the evaluation protocol (tiny models on synthetic landmark data, and the bundled model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from enliven.cli import main
from enliven.config.motion import MotionVAEConfig
from enliven.errors import CheckpointError, ConfigError, InputError
from enliven.examples import EXAMPLE_DRIVING, EXAMPLE_SOURCE
from enliven.models.motion_vae import MotionVAE
from enliven.motion.edits import ExpressionEdit
from enliven.motion.generator import MotionGenerator, load_motion_model
from enliven.motion.pose import HeadPose, compose, decompose, fit_pose
from enliven.motion.sequence import FaceMotion

EMOTIONS = ("happy", "sad")


def _pose(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0, count: int = 1) -> HeadPose:
    ones = np.ones(count)
    return HeadPose(yaw * ones, pitch * ones, roll * ones, 80.0 * ones, 128.0 * ones, 140.0 * ones)


def synthetic_landmarks(frames: int, seed: int, smile: float = 0.0) -> np.ndarray:
    """``frames x 468 x 2`` landmarks of a face nodding and talking (a smooth random motion)."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / 25.0
    phase = rng.uniform(0, 6.28, 4)
    pose = HeadPose(
        6 * np.sin(1.3 * t + phase[0]),
        4 * np.sin(0.9 * t + phase[1]),
        2 * np.sin(0.7 * t + phase[2]),
        80 + 2 * np.sin(0.5 * t),
        128 + 3 * np.sin(0.4 * t + phase[3]),
        140 + 2 * np.cos(0.6 * t),
    )
    edit = ExpressionEdit(smile=smile)
    neutral = compose(pose, np.zeros((frames, 468, 2)))
    opened = np.stack(
        [ExpressionEdit(mouth=float(0.5 + 0.5 * np.sin(4 * x))).apply(row) for x, row in zip(t, neutral, strict=True)]
    )
    return edit.apply(opened) if smile else opened


def write_dataset(root: Path) -> Path:
    """A prepared-dataset stand-in: landmark files (train: labelled MEAD-style and unlabelled clips; val) + fps."""
    clips = {}
    for split, names in {
        "train": [f"MEAD_M001_front_{e}_level3_001-00" for e in (*EMOTIONS, "neutral")] + ["talk_a-00", "talk_b-00"],
        "val": ["held_out_a-00", "held_out_b-00"],
    }.items():
        (root / split).mkdir(parents=True)
        for index, name in enumerate(names):
            smile = 0.8 if "happy" in name else -0.5 if "sad" in name else 0.0
            np.save(
                root / split / f"{name}.mp4.face_mesh.npy", synthetic_landmarks(80, index, smile).astype(np.float32)
            )
            clips[name] = {"split": split, "fps": 25.0}
    (root / "metadata.json").write_text(json.dumps({"clips": clips}))
    return root


TINY_CONFIG = {
    "model_params": {
        "family": "motion_vae",
        "fps": 25,
        "num_components": 4,
        "hidden_channels": 16,
        "latent_channels": 4,
        "num_levels": 2,
        "labels": [*EMOTIONS, "neutral"],
    },
    "dataset_params": {
        "window": 16,
        "labels": {e: f"MEAD_.*_{e}_" for e in (*EMOTIONS, "neutral")},
        "identity_pattern": "MEAD_(?P<identity>M\\d{3})_",
        "neutral_label": "neutral",
    },
    "train_params": {"steps": 4, "batch_size": 4, "kl_warmup": 2, "checkpoint_every": 2},
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("motion-data"))


@pytest.fixture(scope="module")
def tiny_release(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny motion VAE trained for 4 steps by ``enliven train`` and released by ``enliven release``."""
    run = tmp_path_factory.mktemp("motion-run")
    config = run / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_CONFIG))
    assert main(["train", "--config", str(config), "--data", str(dataset), "--out", str(run / "out"), "-q"]) == 0
    release = run / "tiny-motion.safetensors"
    assert main(["release", str(run / "out"), "-o", str(release)]) == 0
    return release


# -- geometry -----------------------------------------------------------------------------------------------------
def test_pose_round_trip_and_fit() -> None:
    pose = HeadPose(
        *(
            np.array(v, dtype=float)
            for v in ([0, 15, -20], [0, 10, 5], [0, -5, 30], [70, 80, 60], [128, 120, 130], [128, 140, 110])
        )
    )
    landmarks = compose(pose, np.zeros((3, 468, 2)))
    fitted = fit_pose(landmarks)
    np.testing.assert_allclose(fitted.as_array(), pose.as_array(), atol=1e-6)
    noisy = compose(pose, np.random.default_rng(0).normal(0, 0.02, (3, 468, 2)))
    again, expression = decompose(noisy)
    np.testing.assert_allclose(compose(again, expression), noisy, atol=1e-9)


def test_edits_move_what_they_name() -> None:
    face = compose(_pose(yaw=5.0), np.zeros((1, 468, 2)))

    def measure(points: np.ndarray) -> tuple[float, float, float, float]:
        pose, _ = decompose(points)
        return (
            float(pose.yaw[0]),
            points[0, 291, 0] - points[0, 61, 0],
            points[0, 14, 1] - points[0, 13, 1],
            points[0, 145, 1] - points[0, 159, 1],
        )

    yaw, width, mouth, eye = measure(face)
    assert measure(ExpressionEdit(yaw=15).apply(face))[0] == pytest.approx(yaw + 15, abs=1e-6)
    assert measure(ExpressionEdit(smile=1).apply(face))[1] > width + 5
    assert measure(ExpressionEdit(smile=-1).apply(face))[1] < width - 5
    assert measure(ExpressionEdit(mouth=1).apply(face))[2] > mouth + 10
    assert measure(ExpressionEdit(blink=1).apply(face))[3] < 0.2 * eye
    opened = ExpressionEdit(mouth=1).apply(face)
    assert measure(ExpressionEdit(mouth=-1).apply(opened))[2] < 0.5 * mouth  # lips together (the mean face's part)
    # each lip moves whole: as thick as it was (outer to inner line, through the middle rings), the lower one lower
    for lip in ((0, 11, 12, 13), (17, 16, 15, 14)):
        thickness = np.diff(face[0, lip, 1]), np.diff(opened[0, lip, 1])
        np.testing.assert_allclose(thickness[1], thickness[0], atol=0.05 * abs(thickness[0].sum()))
    assert opened[0, 16, 1] - face[0, 16, 1] > 10 and abs(opened[0, 11, 1] - face[0, 11, 1]) < 0.5
    brows = ExpressionEdit(brows=1).apply(face)
    assert brows[0, 105, 1] < face[0, 105, 1] - 3 and brows[0, 1, 1] == pytest.approx(face[0, 1, 1])


def test_edit_scales_and_nan_rows() -> None:
    clip = synthetic_landmarks(20, 0)
    clip[3] = np.nan
    frozen = ExpressionEdit(expression=0.0, head=0.0).apply(clip)
    assert np.isnan(frozen[3]).all()
    rows = np.delete(frozen, 3, axis=0)
    assert np.abs(rows - rows[0]).max() < 1e-3  # every frame is the reference again
    np.testing.assert_allclose(
        ExpressionEdit().apply(clip)[~np.isnan(clip).any(axis=(1, 2))],
        clip[~np.isnan(clip).any(axis=(1, 2))],
        atol=1e-4,
    )


@pytest.mark.parametrize("text", ["smile=2", "yaw=90", "grin=1", "smile", "smile=x", "expression=-1"])
def test_edit_parse_refuses_bad_text(text: str) -> None:
    with pytest.raises(InputError):
        ExpressionEdit.parse(text)


def test_edit_parse_and_text() -> None:
    edit = ExpressionEdit.parse(" smile=0.6, yaw=15 ,")
    assert (edit.smile, edit.yaw) == (0.6, 15.0)
    assert ExpressionEdit.parse(str(edit)) == edit
    assert ExpressionEdit().is_identity and not edit.is_identity


def test_face_motion_loop_is_seamless() -> None:
    motion = FaceMotion.from_landmarks(synthetic_landmarks(100, 1), 25.0)
    looped = motion.looped(20)
    assert len(looped) == 80
    steps = np.abs(np.diff(looped.pose, axis=0)).max()
    wrap = np.abs(looped.pose[0] - looped.pose[-1]).max()
    assert wrap <= 2 * steps  # the last frame leads into the first as any frame into the next
    assert len(motion.resampled(30.0)) == 120


# -- the model, its training and release ---------------------------------------------------------------------------
def test_motion_vae_shapes_and_features() -> None:
    model = MotionVAE(
        MotionVAEConfig(num_components=4, hidden_channels=8, latent_channels=3, num_levels=2, labels=EMOTIONS)
    )
    features = torch.randn(2, 16, model.config.num_features)
    out = model(features, torch.tensor([0, 2]))
    assert out.reconstruction.shape == features.shape and out.mean.shape == (2, 4, 3)
    with pytest.raises(ValueError, match="multiples of 4"):
        model.encode(features[:, :15], torch.tensor([0, 1]))
    with pytest.raises(ConfigError, match="happy, sad"):
        model.config.label_index("angry")


def test_train_resumes_exactly(dataset: Path, tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_CONFIG))
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(["train", "--config", str(config), "--data", str(dataset), "--out", str(straight), "-q"]) == 0
    assert (
        main(["train", "--config", str(config), "--data", str(dataset), "--out", str(split), "-q", "--max-steps", "2"])
        == 0
    )
    assert main(["train", "--data", str(dataset), "--out", str(split), "--resume", "-q"]) == 0
    a = torch.load(straight / "checkpoints" / "step-000004.pt", weights_only=True)["model"]
    b = torch.load(split / "checkpoints" / "step-000004.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_release_loads_and_refuses_other_files(tiny_release: Path, tmp_path: Path) -> None:
    model = load_motion_model(tiny_release)
    assert model.config.labels == (*EMOTIONS, "neutral")
    assert float(model.expression_basis.abs().sum()) > 0  # the PCA was fitted and saved
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    with pytest.raises(CheckpointError):
        load_motion_model(bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_motion_model(tmp_path / "missing.safetensors")


def test_generator_sample_vary_interpolate(tiny_release: Path) -> None:
    generator = MotionGenerator.from_pretrained(tiny_release)
    a = generator.sample(2.0, "happy", seed=3)
    assert len(a) == 50 and np.array_equal(a.pose, generator.sample(2.0, "happy", seed=3).pose)
    assert not np.array_equal(a.pose, generator.sample(2.0, "happy", seed=4).pose)
    assert len(generator.sample(2.0, seed=1, loop=True)) == 50
    assert len(generator.sample(1.0, "idle", seed=1)) == 25
    b = generator.sample(3.0, "sad", seed=5)
    np.testing.assert_allclose(generator.vary(a, 0.0).pose, generator.reconstruct(a).pose, atol=1e-5)
    np.testing.assert_allclose(generator.interpolate(a, b, 0.0).pose, generator.reconstruct(a).pose, atol=1e-5)
    assert len(generator.interpolate(a, b)) == 50
    with pytest.raises(ConfigError, match="happy"):
        generator.sample(1.0, "angry")
    with pytest.raises(InputError):
        generator.sample(0.0)


def test_bundled_motion_model_samples() -> None:
    generator = MotionGenerator.from_pretrained()
    assert {"happy", "sad", "surprised", "neutral"} <= set(generator.labels)
    motion = generator.sample(10.0, "happy", seed=0)
    assert len(motion) == 250 and np.isfinite(motion.expression).all()
    assert 0.05 < float(motion.pose[:, 0].std()) < 20  # the head moves, within reason (degrees)


# -- rendering and the command line --------------------------------------------------------------------------------
def test_edits_show_in_rendered_frames() -> None:
    """``smile=1`` widens the mouth corners and ``yaw=15`` turns the head 15 +- 5 degrees, measured by MediaPipe on
    the frames enliven-lite renders."""
    from enliven.inference.animator import Animator
    from enliven.inference.cropper import FaceCropper
    from enliven.inference.driving import read_source
    from enliven.inference.motion import motion_keypoints
    from enliven.preprocess import FaceLandmarker
    from enliven.weights import load_model

    rest = FaceMotion(np.zeros((1, 6), np.float32), np.zeros((1, 468, 2), np.float32), 25.0)
    with (
        Animator(load_model(None).model, device="cpu") as animator,
        FaceCropper(animator.size) as cropper,
        FaceLandmarker() as landmarker,
    ):
        animator.set_source(cropper.crop_source(read_source(EXAMPLE_SOURCE), "the photo").image)

        def measure(edit: ExpressionEdit | None) -> tuple[float, float]:
            points, reference = motion_keypoints(rest, animator.size, edit)
            animator.set_reference_keypoints(reference)
            found = landmarker.landmarks(animator.animate_keypoints(points)[0])
            assert found is not None
            width = (found[291, 0] - found[61, 0]) / np.linalg.norm(found[263] - found[33])
            return float(decompose(found[None, :468])[0].yaw[0]), float(width)

        yaw, width = measure(None)
        assert measure(ExpressionEdit(smile=1))[1] > width + 0.04
        assert measure(ExpressionEdit(yaw=15))[0] - yaw == pytest.approx(15, abs=5)


def test_cli_animates_generated_motion(tmp_path: Path) -> None:
    import imageio.v3 as iio

    out = tmp_path / "happy.mp4"
    args = [
        "animate",
        str(EXAMPLE_SOURCE),
        "--motion",
        "generated:happy",
        "--seconds",
        "1",
        "--seed",
        "3",
        "--loop",
        "--edit",
        "smile=0.3",
        "-o",
        str(out),
        "-q",
    ]
    assert main(args) == 0
    frames = iio.imread(out, plugin="pyav")
    assert len(frames) == 25 and frames.std(axis=0).mean() > 0.2  # it moves


def test_cli_edits_a_driving_video(tmp_path: Path) -> None:
    import imageio.v3 as iio

    plain, edited = tmp_path / "plain.mp4", tmp_path / "edited.mp4"
    base = ["animate", str(EXAMPLE_SOURCE), str(EXAMPLE_DRIVING), "--size", "256", "-q"]
    assert main([*base, "-o", str(plain)]) == 0
    assert main([*base, "--edit", "mouth=1", "-o", str(edited)]) == 0
    a, b = iio.imread(plain, plugin="pyav"), iio.imread(edited, plugin="pyav")
    assert a.shape == b.shape and np.abs(a[0].astype(int) - b[0]).mean() > 1  # the edit shows from the first frame


def test_cli_varies_a_clips_motion_and_morphs_it_into_a_loop(tmp_path: Path) -> None:
    import imageio.v3 as iio

    from enliven.motion.generator import motion_from_clip

    motion = motion_from_clip(EXAMPLE_DRIVING)
    assert len(motion) == 75 and motion.fps == 25 and np.abs(motion.expression).max() > 0.01  # the speaker talks
    out = tmp_path / "morph.mp4"
    args = [
        "animate",
        str(EXAMPLE_SOURCE),
        "--motion-from",
        str(EXAMPLE_DRIVING),
        "--variation",
        "0.2",
        "--morph-to",
        "generated:happy",
        "--seconds",
        "2",
        "--loop",
        "--seed",
        "1",
        "-o",
        str(out),
        "-q",
    ]
    assert main(args) == 0
    assert len(iio.imread(out, plugin="pyav")) == 50  # the loop's crossfade was made up for


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([str(EXAMPLE_DRIVING), "--motion", "generated"], "one motion"),
        ([], "one motion"),
        (["--motion", "walking"], "is not known"),
        (["--motion", "generated:grumpy"], "knows no label"),
        ([str(EXAMPLE_DRIVING), "--seconds", "3"], "applies to generated motion"),
        (["--motion", "generated", "--model", "fomm-vox"], ""),
    ],
)
def test_cli_refuses_bad_motion_arguments(args: list[str], words: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.mp4"
    assert main(["animate", str(EXAMPLE_SOURCE), *args, "-o", str(out), "-q"]) != 0
    assert words in capsys.readouterr().err
    assert not out.exists()


def test_options_mapping_takes_edits() -> None:
    from enliven.inference.options import PUBLIC_OPTIONS, options_from_mapping

    options = options_from_mapping({"edit": "smile=0.5"}, allowed=PUBLIC_OPTIONS)
    assert options.edit == ExpressionEdit(smile=0.5)
    with pytest.raises(InputError):
        options_from_mapping({"edit": "smile=5"})


# -- the evaluation protocol ----------------------------------------------------------------------------------------
def test_motion_protocol_reports(dataset: Path, tiny_release: Path, tmp_path: Path) -> None:
    from enliven.evaluate.motion import evaluate_motion

    report = tmp_path / "report"
    result = evaluate_motion(dataset, "val", tiny_release, report=report)
    assert set(result.frechet) == {"generated", "random_walk", "replay", "real_halves"}
    assert set(result.conditioning) == {*EMOTIONS, "neutral"} and result.reconstruction_px >= 0
    text = (report / "report.md").read_text()
    assert "Fréchet" in text and all((report / name).is_file() for name in result.strips)
    assert json.loads((report / "results.json").read_text())["split"] == "val"


def test_batch_jobs_carry_edits(tmp_path: Path) -> None:
    from enliven.batch import BatchJob
    from enliven.batch.jobs import read_jobs

    jobs_file = tmp_path / "jobs.csv"
    jobs_file.write_text(f'source,driving,edit\n{EXAMPLE_SOURCE},{EXAMPLE_DRIVING},"smile=0.8,yaw=10"\n')
    (job,) = read_jobs(jobs_file)
    assert job.options.edit == ExpressionEdit(smile=0.8, yaw=10)
    again = BatchJob.from_dict(json.loads(json.dumps(job.to_dict())))  # as workers and the server's store pass it
    assert again.options.edit == job.options.edit and again.key == job.key


def test_train_refuses_to_overwrite_a_run_or_resume_nothing(dataset: Path, tmp_path: Path, capsys) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY_CONFIG, "train_params": {**TINY_CONFIG["train_params"], "steps": 2}}))
    run = ["train", "--config", str(config), "--data", str(dataset), "--out", str(tmp_path / "run"), "-q"]
    assert main([*run, "--resume"]) != 0 and "no checkpoint to resume" in capsys.readouterr().err
    assert main(run) == 0
    assert main(run) != 0 and "already holds a training run" in capsys.readouterr().err


def test_motion_from_a_clip_without_a_face_is_one_sentence(tmp_path: Path, capsys) -> None:
    import imageio.v3 as iio

    clip = tmp_path / "wall.mp4"
    iio.imwrite(clip, np.full((10, 128, 128, 3), 90, np.uint8), fps=25, codec="libx264")
    out = tmp_path / "out.mp4"
    assert main(["animate", str(EXAMPLE_SOURCE), "--motion-from", str(clip), "-o", str(out), "-q"]) != 0
    assert "no face was found" in capsys.readouterr().err and not out.exists()
