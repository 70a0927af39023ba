"""Training configuration: the authors' YAML format (``model_params``, ``dataset_params``, ``train_params``) plus ours.

Read once by :func:`load_train_config` into a frozen :class:`TrainConfig`. Keys of ``train_params``::

    # the authors' keys
    num_epochs: 100            # passes over the dataset (each pass = num_repeats rounds of the clips/identities)
    num_repeats: 75
    epoch_milestones: [60, 90] # learning rates are multiplied by lr_gamma at these epochs
    lr_generator: 2.0e-4
    lr_kp_detector: 2.0e-4     # default: lr_generator
    lr_discriminator: 2.0e-4   # default: lr_generator
    batch_size: 40
    dataloader_workers: 6
    checkpoint_freq: 50        # epochs between checkpoints when checkpoint_every is not given
    scales, loss_weights, transform_params, dropout_*, bg_start, loss: ...   # the losses (LossConfig)
    # ours
    max_steps: null            # stop after this many optimisation steps (default: num_epochs worth)
    checkpoint_every: null     # steps between checkpoints (default: checkpoint_freq epochs)
    keep_last: 3               # checkpoints kept
    amp: true                  # mixed precision (CUDA only; ignored on CPU)
    grad_clip: null            # max gradient norm of each optimiser's parameters (null: no clipping)
    ema_decay: 0.999           # EMA of the generator-side model, released by ``enliven release``
    seed: 0
    log_every: 10              # steps between TensorBoard scalars
    image_every: 500           # steps between TensorBoard image grids
    init_from: null            # a model name or weights file: its tensors that fit this model start the run
    lr_gamma: 0.1
    weight_decay: 0

``dataset_params`` are those of :meth:`enliven.data.PairDatasetConfig.from_dict` (``root_dir`` is replaced by
``--data``). Other top-level sections of the authors' files (``reconstruction_params``, ...) are ignored.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from enliven.config import ModelConfig, config_from_dict
from enliven.config._validate import (
    check_keys,
    checked,
    get_bool,
    get_int,
    get_list,
    get_number,
    is_int,
    is_number,
    key_path,
    section,
)
from enliven.data import PairDatasetConfig
from enliven.errors import ConfigError

if TYPE_CHECKING:
    from enliven.train.losses import LossConfig

# train_params keys read by LossConfig (enliven.train.losses) and by the dataset, besides TrainConfig's own.
_OTHER_TRAIN_KEYS = (
    "num_repeats",
    "scales",
    "transform_params",
    "loss_weights",
    "loss",
    "bg_start",
    "dropout_epoch",
    "dropout_maxp",
    "dropout_startp",
    "dropout_inc_epoch",
)
# Top-level sections of the authors' files that training does not read.
_IGNORED_SECTIONS = ("reconstruction_params", "animate_params", "visualizer_params", "train_avd_params")
_WHERE = "train_params"


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the data folder (see the module docstring for the keys).

    Attributes:
        model: the model's architecture.
        loss: loss weights and settings (A1's :class:`~enliven.train.losses.LossConfig`).
        dataset: pair sampling and augmentation; ``root`` is the config's ``root_dir`` until the run sets ``--data``.
        document: the YAML document the config was read from, kept to write the resolved config back.
    """

    model: ModelConfig
    loss: LossConfig
    dataset: PairDatasetConfig
    document: Mapping[str, Any]
    num_epochs: int = 100
    epoch_milestones: tuple[int, ...] = ()
    lr_generator: float = 2e-4
    lr_kp_detector: float = 2e-4
    lr_discriminator: float = 2e-4
    lr_gamma: float = 0.1
    weight_decay: float = 0.0
    batch_size: int = 8
    dataloader_workers: int = 0
    checkpoint_freq: int = 50
    max_steps: int | None = None
    checkpoint_every: int | None = None
    keep_last: int = 3
    amp: bool = True
    grad_clip: float | None = None
    ema_decay: float = 0.999
    seed: int = 0
    log_every: int = 10
    image_every: int = 500
    init_from: str | None = None

    @property
    def family(self) -> str:
        return self.model.family

    def with_overrides(self, *, data: Path | None = None, max_steps: int | None = None) -> TrainConfig:
        """The same config with ``--data`` as the dataset root and/or ``--max-steps``."""
        config = self
        if data is not None:
            config = replace(config, dataset=replace(config.dataset, root=Path(data)))
        if max_steps is not None:
            if max_steps < 1:
                raise ConfigError(f"--max-steps must be 1 or more, got {max_steps}.")
            config = replace(config, max_steps=max_steps)
        return config

    def to_yaml_dict(self) -> dict[str, Any]:
        """The resolved config: the document with every default of ours written out and ``root_dir`` set."""
        doc = copy.deepcopy(dict(self.document))
        doc["model_params"] = self.model.to_yaml_dict()["model_params"]
        dataset = dict(doc.get("dataset_params") or {})
        dataset.pop("root", None)
        dataset["root_dir"] = str(self.dataset.root)
        doc["dataset_params"] = dataset
        train = dict(doc.get(_WHERE) or {})
        for name in _TRAIN_KEYS:
            value = getattr(self, name)
            train[name] = list(value) if isinstance(value, tuple) else value
        train["num_repeats"] = self.dataset.num_repeats
        train.update(self.loss.to_dict())  # the resolved losses, so a replaced LossConfig survives a save/resume
        doc[_WHERE] = train
        return doc

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_yaml_dict(), sort_keys=False)


# TrainConfig fields read from train_params (everything but model, loss, dataset, document).
_TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig) if f.name not in ("model", "loss", "dataset", "document"))


def _text(params: Mapping[str, Any], key: str) -> str:
    value = params[key]
    if not isinstance(value, str) or not value:
        raise ConfigError(f"'{_WHERE}.{key}' must be a model name or a weights file, got {value!r}.")
    return value


def _optional(params: Mapping[str, Any], key: str, read: Any) -> Any:
    return None if params.get(key) is None else read()


def train_config_from_dict(document: Mapping[str, Any]) -> TrainConfig:
    """Validate a whole training YAML document.

    Raises:
        ConfigError: a section or key is missing, unknown or has a wrong value (the message names its path).
    """
    from enliven.train.losses import LossConfig

    if not isinstance(document, Mapping):
        raise ConfigError(f"a training config must be a YAML mapping, got {type(document).__name__}; fix the file.")
    unknown = sorted(set(document) - {"model_params", "dataset_params", _WHERE, *_IGNORED_SECTIONS})
    if unknown:
        raise ConfigError(
            f"the config has an unknown section '{unknown[0]}'; use model_params, dataset_params and train_params."
        )
    model = config_from_dict(dict(document))
    params = section(document, _WHERE)
    check_keys(params, _WHERE, optional=(*_TRAIN_KEYS, *_OTHER_TRAIN_KEYS))
    dataset_params = dict(section(document, "dataset_params"))
    if dataset_params.get("frame_shape", 0) is None:  # TPSMM's files write null for the default
        del dataset_params["frame_shape"]
    if "frame_shape" not in dataset_params and "frame_size" not in dataset_params:
        dataset_params["frame_size"] = [model.image_size, model.image_size]
    if "root" not in dataset_params and "root_dir" not in dataset_params:
        dataset_params["root_dir"] = "."
    seed = get_int(params, "seed", _WHERE, 0)
    dataset_params.setdefault("seed", seed)
    dataset_params["num_repeats"] = get_int(params, "num_repeats", _WHERE, 1, minimum=1)
    dataset = PairDatasetConfig.from_dict(dataset_params)
    if dataset.frame_size != (model.image_size, model.image_size):
        raise ConfigError(
            f"dataset frame size {dataset.frame_size} differs from the model's image size {model.image_size}; "
            "set dataset_params.frame_shape to the size the model works at."
        )
    lr = get_number(params, "lr_generator", _WHERE, 2e-4, low=0)
    config = TrainConfig(
        model=model,
        loss=LossConfig.from_dict(dict(params)),
        dataset=dataset,
        document=copy.deepcopy(dict(document)),
        num_epochs=get_int(params, "num_epochs", _WHERE, 100, minimum=1),
        epoch_milestones=get_list(params, "epoch_milestones", _WHERE, is_int, "epoch numbers", default=()),
        lr_generator=lr,
        lr_kp_detector=get_number(params, "lr_kp_detector", _WHERE, lr, low=0),
        lr_discriminator=get_number(params, "lr_discriminator", _WHERE, lr, low=0),
        lr_gamma=get_number(params, "lr_gamma", _WHERE, 0.1, low=0, high=1),
        weight_decay=_in_unit_range(params, "weight_decay", 0.0, upper=None),
        batch_size=get_int(params, "batch_size", _WHERE, 8, minimum=1),
        dataloader_workers=get_int(params, "dataloader_workers", _WHERE, 0),
        checkpoint_freq=get_int(params, "checkpoint_freq", _WHERE, 50, minimum=1),
        max_steps=_optional(params, "max_steps", lambda: get_int(params, "max_steps", _WHERE, minimum=1)),
        checkpoint_every=_optional(
            params, "checkpoint_every", lambda: get_int(params, "checkpoint_every", _WHERE, minimum=1)
        ),
        keep_last=get_int(params, "keep_last", _WHERE, 3, minimum=1),
        init_from=_optional(params, "init_from", lambda: _text(params, "init_from")),
        amp=get_bool(params, "amp", _WHERE, True),
        grad_clip=_optional(params, "grad_clip", lambda: get_number(params, "grad_clip", _WHERE, low=0)),
        ema_decay=_in_unit_range(params, "ema_decay", 0.999, upper=1.0),
        seed=seed,
        log_every=get_int(params, "log_every", _WHERE, 10, minimum=1),
        image_every=get_int(params, "image_every", _WHERE, 500, minimum=1),
    )
    return config


def _in_unit_range(params: Mapping[str, Any], key: str, default: float, upper: float | None) -> float:
    """A number >= 0 (and < ``upper`` when given)."""
    value = params.get(key, default)
    expected = "a number >= 0" if upper is None else f"a number in [0, {upper})"
    ok = is_number(value) and value >= 0 and (upper is None or value < upper)
    return float(checked(value, key_path(_WHERE, key), lambda _: ok, expected))


def load_train_config(path: str | Path) -> TrainConfig:
    """Read a training YAML file (see the module docstring).

    Raises:
        ConfigError: the file is missing, not YAML, or invalid.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"the config file {path} does not exist; check the --config path.")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"the config file {path} is not valid YAML ({err.__class__.__name__}); fix it.") from None
    try:
        return train_config_from_dict(document)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def train_config_from_yaml(text: str) -> TrainConfig:
    """Parse a resolved config saved by :meth:`TrainConfig.to_yaml` (in ``config.yaml`` or a checkpoint)."""
    return train_config_from_dict(yaml.safe_load(text))
