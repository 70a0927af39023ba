"""``MotionGenerator``: face motion without a driving video, from the motion VAE.

    >>> generator = MotionGenerator.from_pretrained()             # the bundled enliven-motion weights
    >>> happy = generator.sample(seconds=8, label="happy", seed=3, loop=True)
    >>> mine = generator.vary(motion_from_clip("me.mp4"), amount=0.5, seed=1)
    >>> morph = generator.interpolate(happy, mine)                 # from one to the other, in the latent space

Every method returns a :class:`~enliven.motion.sequence.FaceMotion`, which
:func:`enliven.inference.motion.animate_motion` renders onto a photo (``enliven animate PHOTO --motion ...``).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from enliven.config.motion import MotionVAEConfig
from enliven.errors import CheckpointError, InputError
from enliven.models.motion_vae import MotionVAE
from enliven.motion.edits import ExpressionEdit
from enliven.motion.sequence import FaceMotion

#: The bundled weights (``src/enliven/weights``), trained by ``configs/motion-vae-faces.yaml``.
BUNDLED_MOTION_MODEL = "enliven-motion.safetensors"

#: Idle motion: unlabelled motion with the lips kept together and the head calmer (the data has no idle clips).
IDLE_EDIT = ExpressionEdit(mouth=-1.0, head=0.6)

#: Seconds over which a loop's end is blended into its start.
LOOP_CROSSFADE_SECONDS = 1.0


@torch.no_grad()
def motion_features(model: MotionVAE, motion: FaceMotion) -> Tensor:
    """``T x F`` standardised features of ``motion`` (at its own frame rate) for ``model``."""
    return model.to_features(torch.from_numpy(motion.pose)[None], torch.from_numpy(motion.expression)[None])[0]


def load_motion_model(path: str | Path | None = None) -> MotionVAE:
    """A motion VAE release file (default: the bundled one), in eval mode.

    Raises:
        CheckpointError: the file is missing, unreadable, or not a motion VAE release.
    """
    from safetensors import SafetensorError, safe_open

    if path is None:
        with resources.as_file(resources.files("enliven.weights").joinpath(BUNDLED_MOTION_MODEL)) as bundled:
            return load_motion_model(bundled)
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"the motion model {path} does not exist; give a file written by 'enliven release'.")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        config = MotionVAEConfig.from_dict(json.loads(metadata["config"]))
    except (SafetensorError, OSError, ValueError, KeyError) as err:
        raise CheckpointError(f"{path} is not a motion VAE release ({err}); release a motion VAE run.") from None
    model = MotionVAE(config)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path} does not match its own config ({str(err).splitlines()[0]}).") from None
    return model.eval()


class MotionGenerator:
    """Sample, encode, vary and interpolate face motion (see the module docstring).

    Args:
        model: a trained motion VAE (see :func:`load_motion_model`).
    """

    def __init__(self, model: MotionVAE) -> None:
        self.model = model.eval()

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None) -> MotionGenerator:
        return cls(load_motion_model(path))

    @property
    def fps(self) -> float:
        return self.model.config.fps

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels it can be asked for (``none``: unconditional)."""
        return self.model.config.label_names

    def _frames(self, seconds: float) -> int:
        if not 0 < seconds <= 600:
            raise InputError(f"--seconds {seconds:g} is out of range; generate between 0 and 600 seconds of motion.")
        return max(1, int(round(seconds * self.fps)))

    def _label(self, label: str | None, count: int = 1) -> Tensor:
        if label == "idle":
            label = None
        return torch.full((count,), self.model.config.label_index(label), dtype=torch.long)

    @torch.inference_mode()
    def _decode(self, latents: Tensor, label: str | None, num_frames: int) -> FaceMotion:
        features = self.model.decode(latents, self._label(label, len(latents)))[0, :num_frames]
        pose, expression = self.model.from_features(features[None])
        motion = FaceMotion(pose[0].numpy().astype(np.float32), expression[0].numpy().astype(np.float32), self.fps)
        if label == "idle":
            return idle_motion(motion)
        return motion

    def sample(
        self,
        seconds: float = 8.0,
        label: str | None = None,
        seed: int | None = None,
        temperature: float = 1.0,
        loop: bool = False,
    ) -> FaceMotion:
        """New motion drawn from the prior.

        Args:
            seconds: length.
            label: one of :attr:`labels`, ``idle`` (calm unlabelled motion, lips together), or ``None``.
            seed: makes the draw repeatable.
            temperature: scales the prior's spread (below 1: tamer motion).
            loop: blend the end into the start (:meth:`FaceMotion.looped`) so the motion repeats seamlessly.
        """
        num_frames = self._frames(seconds)
        crossfade = min(int(LOOP_CROSSFADE_SECONDS * self.fps), num_frames // 3) if loop else 0
        generator = torch.Generator().manual_seed(int(seed) if seed is not None else int(torch.seed() % 2**31))
        count = self.model.num_latents(num_frames + crossfade)
        latents = temperature * torch.randn(1, count, self.model.config.latent_channels, generator=generator)
        motion = self._decode(latents, label, num_frames + crossfade)
        return motion.looped(crossfade) if crossfade else motion

    @torch.inference_mode()
    def encode(self, motion: FaceMotion, label: str | None = None) -> tuple[Tensor, Tensor]:
        """The posterior of ``motion``: mean and log variance, ``1 x T' x latent_channels`` each."""
        motion = motion.resampled(self.fps)
        features = motion_features(self.model, motion)[None]
        step = self.model.config.frames_per_latent
        padded = -(-len(motion) // step) * step
        if padded != len(motion):  # repeat the last frame up to a whole latent step
            features = torch.cat([features, features[:, -1:].expand(-1, padded - len(motion), -1)], dim=1)
        return self.model.encode(features, self._label(label))

    def reconstruct(self, motion: FaceMotion, label: str | None = None) -> FaceMotion:
        """``motion`` through the VAE's posterior mean (how well it is captured)."""
        mean, _ = self.encode(motion, label)
        return self._decode(mean, label, len(motion.resampled(self.fps)))

    def vary(
        self, motion: FaceMotion, amount: float = 0.5, seed: int | None = None, label: str | None = None
    ) -> FaceMotion:
        """A variation of ``motion``: its latents mixed with fresh noise (0: itself, 1: unrelated new motion)."""
        if not 0 <= amount <= 1:
            raise InputError(f"the variation {amount:g} is out of range; use a value in [0, 1].")
        mean, _ = self.encode(motion, label)
        generator = torch.Generator().manual_seed(int(seed) if seed is not None else int(torch.seed() % 2**31))
        noise = torch.randn(mean.shape, generator=generator)
        latents = (1 - amount**2) ** 0.5 * mean + amount * noise
        return self._decode(latents, label, len(motion.resampled(self.fps)))

    def interpolate(
        self, first: FaceMotion, second: FaceMotion, weight: float | None = None, label: str | None = None
    ) -> FaceMotion:
        """Motion between two motions, interpolated in the latent space (as long as the shorter one).

        Args:
            first, second: the motions.
            weight: ``0`` is ``first``, ``1`` is ``second``; ``None`` morphs from one to the other over time.
            label: the label both are decoded with.
        """
        a, _ = self.encode(first, label)
        b, _ = self.encode(second, label)
        count = min(a.shape[1], b.shape[1])
        if weight is None:
            mix = torch.linspace(0, 1, count)[None, :, None]
        else:
            if not 0 <= weight <= 1:
                raise InputError(f"the interpolation weight {weight:g} is out of range; use a value in [0, 1].")
            mix = torch.full((1, count, 1), float(weight))
        latents = (1 - mix) * a[:, :count] + mix * b[:, :count]
        num_frames = min(len(first.resampled(self.fps)), len(second.resampled(self.fps)))
        return self._decode(latents, label, num_frames)


def idle_motion(motion: FaceMotion) -> FaceMotion:
    """``motion`` made idle (:data:`IDLE_EDIT`: lips together, a calmer head), for avatars at rest."""
    size = 256
    reference = motion.reference_landmarks(size)
    edited = IDLE_EDIT.apply(motion.landmarks(size), reference)
    return FaceMotion.from_landmarks(edited, motion.fps, neutral=FaceMotion.neutral_of(reference[None]))


def motion_from_clip(path: str | Path, max_seconds: float = 600.0) -> FaceMotion:
    """The face motion of a video (landmarks tracked by MediaPipe on its frames).

    Raises:
        InputError: the clip cannot be read. NoFaceError: no frame shows a face.
    """
    from enliven.errors import NoFaceError
    from enliven.io import VideoSource
    from enliven.preprocess import FaceLandmarker

    source = VideoSource(path)
    fps = float(source.fps)
    rows: list[np.ndarray] = []
    with FaceLandmarker(video=True) as landmarker:
        for frame in source:
            if len(rows) >= max_seconds * fps:
                break
            points = landmarker.landmarks(frame)
            rows.append(points if points is not None else np.full((468, 2), np.nan))
    if not rows or all(np.isnan(r).any() for r in rows):
        raise NoFaceError(f"no face was found in {path}; --motion-from needs a clip of a face.")
    return FaceMotion.from_landmarks(np.stack(rows), fps)
