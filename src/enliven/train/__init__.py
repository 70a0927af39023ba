"""Training: objectives (losses, equivariance, GAN) and the trainer.

Nothing here imports MediaPipe or dlib: training runs on machines without them.
"""

from enliven.train.equivariance import RandomTransform, TransformParams
from enliven.train.families import FommObjective, LiteObjective, TpsmmObjective, build_objectives
from enliven.train.losses import LossConfig, ms_ssim
from enliven.train.objectives import DiscriminatorObjective, GeneratorObjective, LandmarkPair, StepOutput, Visuals
from enliven.train.vgg import Vgg19Features, load_vgg19

__all__ = [
    "DiscriminatorObjective",
    "FommObjective",
    "GeneratorObjective",
    "LandmarkPair",
    "LiteObjective",
    "LossConfig",
    "RandomTransform",
    "StepOutput",
    "TpsmmObjective",
    "TransformParams",
    "Vgg19Features",
    "Visuals",
    "build_objectives",
    "load_vgg19",
    "ms_ssim",
]

# The training run (helper A2): config, loop, checkpoints, release.
from enliven.train.checkpointing import latest_checkpoint, list_checkpoints, load_checkpoint, release_run  # noqa: E402
from enliven.train.config import TrainConfig, load_train_config, train_config_from_dict  # noqa: E402
from enliven.train.trainer import Trainer, TrainResult, train  # noqa: E402

__all__ += [
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_train_config",
    "release_run",
    "train",
    "train_config_from_dict",
]
