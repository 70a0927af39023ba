"""``enliven eval --protocol motion``: how natural, controllable and varied the motion VAE's motion is.

On a dataset's landmark files (no frames): the training split's clips train a small motion classifier (temporal
convolutions over windows of pose and expression features; label ``none`` for unlabelled clips), whose pooled
features measure realism; the evaluated split (held-out identities) gives the real motion. Measures:

- reconstruction: landmark error (px, on the virtual face at 256 x 256) of the VAE's posterior-mean reconstruction
  of the held-out clips, of its expression alone (the real head pose kept), of a still face, and of the expression
  PCA alone (the floor);
- realism: Fréchet distance between classifier features of real held-out windows and of generated (unlabelled)
  ones, against a random walk in the same feature space (steps as large as real motion's) and against replaying the
  nearest training window for each held-out window;
- conditioning: share of windows generated for each label that the classifier recognises as that label;
- diversity: mean pairwise landmark distance between samples of one label, against replayed training windows of
  that label; smoothness: mean jerk (third difference of landmark positions) against real motion's;
- rendered: a few generated motions rendered by a face model on a photo, as strips in the report.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from scipy import linalg
from torch import Tensor, nn

from enliven.config.motion import UNLABELLED, MotionDataConfig
from enliven.io import atomic_output
from enliven.models.motion_vae import MotionVAE
from enliven.motion.dataset import MotionClip, load_motion_clips
from enliven.motion.generator import MotionGenerator, load_motion_model, motion_features
from enliven.motion.sequence import FaceMotion

logger = logging.getLogger(__name__)

#: Frames per evaluated window (1.28 s at 25 fps) and the step between windows of a clip.
WINDOW, STRIDE = 32, 16
#: Generated windows per label (conditioning, diversity) and for realism.
SAMPLES_PER_LABEL, REALISM_SAMPLES = 32, 256


@dataclass(frozen=True)
class MotionEvaluation:
    """The protocol's figures (see the module docstring); distances in px at 256 x 256."""

    split: str
    real_windows: int
    reconstruction_px: float
    expression_px: float
    static_px: float
    pca_floor_px: float
    frechet: dict[str, float]
    conditioning: dict[str, float]
    conditioning_mean: float
    classifier_train_accuracy: float
    diversity: dict[str, dict[str, float]]
    jerk: dict[str, float]
    sampling_ms_10s: float
    strips: list[str] = field(default_factory=list)

    def table(self) -> str:
        """The figures as a Markdown table."""
        frechet = self.frechet
        rows = [
            "| measure | generated (VAE) | random walk | nearest-clip replay | real |",
            "|---|---:|---:|---:|---:|",
            f"| Fréchet distance (lower is better) | {frechet['generated']:.2f} | {frechet['random_walk']:.2f} "
            f"| {frechet['replay']:.2f} | {frechet['real_halves']:.2f} (split halves) |",
            f"| jerk, px/frame³ | {self.jerk['generated']:.3f} | {self.jerk['random_walk']:.3f} | "
            f"{self.jerk['replay']:.3f} | {self.jerk['real']:.3f} |",
            f"| diversity per label, px (mean) | {self.diversity['mean']['generated']:.2f} | | "
            f"{self.diversity['mean']['replay']:.2f} | |",
        ]
        rows += [
            "",
            f"Reconstruction of {self.split} clips: {self.reconstruction_px:.2f} px landmark error, expression alone "
            f"{self.expression_px:.2f} px (a still face: {self.static_px:.2f} px; the expression PCA's floor: "
            f"{self.pca_floor_px:.2f} px); {self.real_windows} real windows of {WINDOW} frames.",
            f"Conditioning accuracy: {100 * self.conditioning_mean:.0f} % over {len(self.conditioning)} labels "
            f"(chance {100 / (len(self.conditioning) + 1):.0f} %; the classifier scores "
            f"{100 * self.classifier_train_accuracy:.0f} % on its training windows): "
            + ", ".join(f"{k} {100 * v:.0f} %" for k, v in self.conditioning.items()),
            f"Sampling 10 s of motion: {self.sampling_ms_10s:.1f} ms.",
        ]
        return "\n".join(rows)


class MotionClassifier(nn.Module):
    """Temporal convolutions over ``B x T x F`` features -> label logits; :meth:`embed` gives the pooled features."""

    def __init__(self, num_features: int, num_labels: int, hidden: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(num_features, hidden, 5, padding=2),
            nn.LeakyReLU(0.2),
            nn.Conv1d(hidden, hidden, 5, padding=2, stride=2),
            nn.LeakyReLU(0.2),
            nn.Conv1d(hidden, hidden, 5, padding=2, stride=2),
            nn.LeakyReLU(0.2),
        )
        self.head = nn.Linear(2 * hidden, num_labels)

    def embed(self, features: Tensor) -> Tensor:
        x = self.body(features.transpose(1, 2))
        return torch.cat([x.mean(-1), x.std(-1)], dim=-1)

    def forward(self, features: Tensor) -> Tensor:
        return self.head(self.embed(features))


def windows(features: Tensor, window: int = WINDOW, stride: int = STRIDE) -> Tensor:
    """``N x window x F`` windows of ``T x F`` features (none when ``T < window``)."""
    if len(features) < window:
        return features.new_zeros((0, window, features.shape[-1]))
    return features.unfold(0, window, stride).permute(0, 2, 1)


def train_classifier(
    model: MotionVAE, clips: list[MotionClip], steps: int = 400, seed: int = 0
) -> tuple[MotionClassifier, float]:
    """A classifier of the clips' labels (class-balanced windows), and its accuracy on its training windows."""
    torch.manual_seed(seed)
    per_label: dict[int, list[Tensor]] = {}
    with torch.no_grad():
        for clip in clips:
            found = windows(motion_features(model, clip.motion), stride=4)
            if len(found):
                per_label.setdefault(model.config.label_index(clip.label), []).append(found)
    data = {label: torch.cat(found) for label, found in per_label.items()}
    classifier = MotionClassifier(model.config.num_features, len(model.config.label_names))
    optimizer = torch.optim.Adam(classifier.parameters(), lr=2e-3, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    labels = sorted(data)
    for _ in range(steps):
        batch, targets = [], []
        for label in labels:
            pick = torch.randint(0, len(data[label]), (8,), generator=generator)
            noisy = data[label][pick] + 0.05 * torch.randn(data[label][pick].shape, generator=generator)
            batch.append(noisy)
            targets += [label] * 8
        loss = F.cross_entropy(classifier(torch.cat(batch)), torch.tensor(targets))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    classifier.eval()
    with torch.no_grad():
        correct = [float((classifier(data[label]).argmax(-1) == label).float().mean()) for label in labels]
    return classifier, float(np.mean(correct))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to ``N x D`` and ``M x D`` features."""
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b)
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * np.real(root)))


def landmark_tracks(model: MotionVAE, features: Tensor, fps: float) -> np.ndarray:
    """``N x T x 468 x 2`` virtual-face landmarks (px at 256) of ``N x T x F`` features."""
    with torch.no_grad():
        pose, expression = model.from_features(features)
    return np.stack(
        [FaceMotion(p.numpy(), e.numpy(), fps).landmarks(256) for p, e in zip(pose, expression, strict=True)]
    )


def mean_jerk(tracks: np.ndarray) -> float:
    """Mean magnitude of the third time difference of ``N x T x 468 x 2`` landmark tracks."""
    return float(np.linalg.norm(np.diff(tracks, n=3, axis=1), axis=-1).mean())


def mean_pairwise(tracks: np.ndarray) -> float:
    """Mean landmark distance between every pair of ``N x T x 468 x 2`` tracks (frame by frame)."""
    total, count = 0.0, 0
    for i in range(len(tracks)):
        for j in range(i + 1, len(tracks)):
            total += float(np.linalg.norm(tracks[i] - tracks[j], axis=-1).mean())
            count += 1
    return total / max(count, 1)


def evaluate_motion(
    data: str | Path,
    split: str = "val",
    motion_model: str | Path | None = None,
    *,
    render_model: str | None = None,
    photo: str | Path | None = None,
    report: str | Path | None = None,
    seed: int = 0,
) -> MotionEvaluation:
    """Run the protocol (see the module docstring); with ``report``, write ``results.json``, ``report.md`` and the
    rendered strips there.

    Raises:
        InputError: the dataset lacks landmark files for a split.
    """
    import time

    model = load_motion_model(motion_model)
    generator = MotionGenerator(model)
    data_config = _data_config(motion_model)
    fps = model.config.fps
    train = load_motion_clips(data, "train", data_config, fps)
    held_out = load_motion_clips(data, split, data_config, fps)
    classifier, train_accuracy = train_classifier(model, train, seed=seed)
    rng = torch.Generator().manual_seed(seed)

    with torch.no_grad():
        real = torch.cat([windows(motion_features(model, c.motion)) for c in held_out])
        train_windows = torch.cat([windows(motion_features(model, c.motion), stride=4) for c in train])

        def generate(label: str | None, count: int) -> Tensor:
            latents = torch.randn(count, model.num_latents(WINDOW), model.config.latent_channels, generator=rng)
            labels = torch.full((count,), model.config.label_index(label), dtype=torch.long)
            return model.decode(latents, labels)[:, :WINDOW]

        generated = generate(None, REALISM_SAMPLES)
        velocity = torch.cat([motion_features(model, c.motion).diff(dim=0) for c in train]).std(0)
        steps = torch.randn(REALISM_SAMPLES, WINDOW, model.config.num_features, generator=rng) * velocity
        random_walk = steps.cumsum(dim=1) - steps[:, :1]  # from the mean face, at rest
        distances = torch.cdist(real.flatten(1), train_windows.flatten(1))
        replay = train_windows[distances.argmin(dim=1)]

        def embed(features: Tensor) -> np.ndarray:
            return classifier.embed(features).numpy().astype(np.float64)

        real_embedding = embed(real)
        halves = np.random.default_rng(seed).permutation(len(real_embedding))
        frechet = {
            "generated": frechet_distance(real_embedding, embed(generated)),
            "random_walk": frechet_distance(real_embedding, embed(random_walk)),
            "replay": frechet_distance(real_embedding, embed(replay)),
            "real_halves": frechet_distance(
                real_embedding[halves[: len(halves) // 2]], real_embedding[halves[len(halves) // 2 :]]
            ),
        }

        conditioning, diversity = {}, {}
        for label in model.config.labels:
            samples = generate(label, SAMPLES_PER_LABEL)
            index = model.config.label_index(label)
            conditioning[label] = float((classifier(samples).argmax(-1) == index).float().mean())
            found = [windows(motion_features(model, c.motion)) for c in train if c.label == label]
            pool = torch.cat(found) if found else torch.zeros(0, WINDOW, model.config.num_features)
            picks = pool[torch.randint(0, len(pool), (16,), generator=rng)] if len(pool) else pool
            diversity[label] = {  # replay: nan where the split has no clip of the label
                "generated": mean_pairwise(landmark_tracks(model, samples[:16], fps)),
                "replay": mean_pairwise(landmark_tracks(model, picks, fps)) if len(picks) > 1 else float("nan"),
            }
        diversity["mean"] = {k: float(np.nanmean([v[k] for v in diversity.values()])) for k in ("generated", "replay")}

        jerk = {
            "generated": mean_jerk(landmark_tracks(model, generated[:64], fps)),
            "random_walk": mean_jerk(landmark_tracks(model, random_walk[:64], fps)),
            "replay": mean_jerk(landmark_tracks(model, replay[:64], fps)),
            "real": mean_jerk(landmark_tracks(model, real[:64], fps)),
        }

    errors: dict[str, list[float]] = {"vae": [], "expression": [], "static": [], "floor": []}
    for clip in held_out:
        truth = clip.motion.landmarks(256)
        rebuilt = generator.reconstruct(clip.motion)
        still = FaceMotion(np.zeros_like(clip.motion.pose), np.zeros_like(clip.motion.expression), fps)
        with torch.no_grad():
            projected = landmark_tracks(model, motion_features(model, clip.motion)[None], fps)[0]
        for name, tracks in (
            ("vae", rebuilt.landmarks(256)),
            ("expression", FaceMotion(clip.motion.pose, rebuilt.expression, fps).landmarks(256)),
            ("static", still.landmarks(256)),
            ("floor", projected),
        ):
            errors[name].append(float(np.linalg.norm(tracks - truth, axis=-1).mean()))

    started = time.perf_counter()
    for trial in range(5):
        generator.sample(10.0, seed=trial)
    sampling_ms = (time.perf_counter() - started) / 5 * 1000

    result = MotionEvaluation(
        split=split,
        real_windows=len(real),
        reconstruction_px=float(np.mean(errors["vae"])),
        expression_px=float(np.mean(errors["expression"])),
        static_px=float(np.mean(errors["static"])),
        pca_floor_px=float(np.mean(errors["floor"])),
        frechet=frechet,
        conditioning=conditioning,
        conditioning_mean=float(np.mean(list(conditioning.values()))) if conditioning else 0.0,
        classifier_train_accuracy=train_accuracy,
        diversity=diversity,
        jerk=jerk,
        sampling_ms_10s=sampling_ms,
    )
    if report is not None:
        result = _write_report(result, generator, Path(report), render_model, photo, seed)
    return result


def _data_config(motion_model: str | Path | None) -> MotionDataConfig:
    """The data config the motion model was trained with (its release metadata), for the same labels."""
    from importlib import resources

    from safetensors import safe_open

    from enliven.motion.generator import BUNDLED_MOTION_MODEL

    if motion_model is None:
        with resources.as_file(resources.files("enliven.weights").joinpath(BUNDLED_MOTION_MODEL)) as path:
            return _data_config(path)
    with safe_open(str(motion_model), framework="pt") as handle:
        metadata = handle.metadata() or {}
    return MotionDataConfig.from_dict(yaml.safe_load(metadata.get("training_config", "{}")) or {})


def _write_report(
    result: MotionEvaluation,
    generator: MotionGenerator,
    out: Path,
    render_model: str | None,
    photo: str | Path | None,
    seed: int,
) -> MotionEvaluation:
    """Render strips of a few generated motions, then write ``results.json`` and ``report.md``."""
    from PIL import Image

    from enliven.examples import EXAMPLE_SOURCE
    from enliven.inference.animator import Animator
    from enliven.inference.cropper import FaceCropper
    from enliven.inference.driving import read_source
    from enliven.inference.motion import motion_keypoints
    from enliven.weights import load_model

    out.mkdir(parents=True, exist_ok=True)
    image = read_source(Path(photo or EXAMPLE_SOURCE))
    strips = []
    labels = [UNLABELLED, "idle", *[label for label in ("happy", "surprised", "sad") if label in generator.labels]]
    with Animator(load_model(render_model).model, device="cpu") as animator, FaceCropper(animator.size) as cropper:
        animator.set_source(cropper.crop_source(image, "the photo").image)
        for label in labels:
            motion = generator.sample(4.0, None if label == UNLABELLED else label, seed=seed)
            points, reference = motion_keypoints(motion, animator.size)
            animator.set_reference_keypoints(reference)
            picks = np.linspace(0, len(points) - 1, 8).round().astype(int)
            frames = animator.animate_keypoints(points[picks])
            strip = out / f"motion-{label}.png"
            with atomic_output(strip) as tmp:
                Image.fromarray(np.concatenate(list(frames), axis=1)).save(tmp, format="PNG")
            strips.append(strip.name)
    result = MotionEvaluation(**{**asdict(result), "strips": strips})
    with atomic_output(out / "results.json") as tmp:
        tmp.write_text(json.dumps(asdict(result), indent=1), encoding="utf-8")
    lines = [
        f"# Motion VAE evaluation ({result.split} split)",
        "",
        result.table(),
        "",
        "## Generated motion, rendered",
        "",
    ]
    lines += [f"**{name[7:-4]}** (4 s, 8 frames evenly spaced)\n\n![{name}]({name})\n" for name in strips]
    with atomic_output(out / "report.md") as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    return result
