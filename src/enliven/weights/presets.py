"""Named models: enliven's own (weights inside the package) and the published FOMM/TPSMM configurations.

``enliven-lite``, the default, ships its weights in the package (``enliven/weights/``). The authors' checkpoints
cannot be downloaded here (and their links are often dead), so their presets' weights are looked for, under their
published file names, in ``$ENLIVEN_MODELS`` (default ``~/.cache/enliven/models``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from enliven.config.fomm import FOMM_PRESETS
from enliven.config.lite import LITE_1, LITE_2, LITE_ANY, LITE_BODY
from enliven.config.tpsmm import TPSMM_PRESETS

Content = Literal["face", "body", "other"]


@dataclass(frozen=True)
class Preset:
    """A named model.

    Attributes:
        name: what ``--model`` accepts, e.g. ``fomm-vox``.
        family: ``fomm`` or ``tpsmm``.
        config: the authors'-format config dict (``model_params`` and, where needed, ``dataset_params``).
        weights: the weights' file name: in the package's ``weights`` folder when ``bundled``, else the published
            checkpoint's name, looked for in :func:`models_dir`; ``None`` for a model that has no trained weights
            (built with random weights).
        content: what the model animates: ``face`` models crop around a detected face, ``body`` models around the
            person (MediaPipe pose), others pad to a square.
        description: one line for ``enliven models``.
        bundled: the weights ship inside the package (an enliven ``.safetensors`` release).
    """

    name: str
    family: str
    config: dict[str, Any]
    weights: str | None
    content: Content
    description: str
    bundled: bool = False

    def weights_path(self) -> Path | None:
        if self.weights is None:
            return None
        return bundled_weights_dir() / self.weights if self.bundled else models_dir() / self.weights


def bundled_weights_dir() -> Path:
    """The package's ``weights`` folder (trained enliven models, a few MB each)."""
    return Path(str(resources.files("enliven") / "weights"))


def models_dir() -> Path:
    """Folder where named models' weights are looked for (``$ENLIVEN_MODELS`` or ``~/.cache/enliven/models``)."""
    env = os.environ.get("ENLIVEN_MODELS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "enliven" / "models"


def _config(model_params: dict[str, Any], image_size: int = 256) -> dict[str, Any]:
    return {"model_params": model_params, "dataset_params": {"frame_shape": [image_size, image_size, 3]}}


_FOMM_DATA = {
    "vox": ("vox-cpk.pth.tar", "face", "FOMM VoxCeleb faces, 256"),
    "vox-adv": ("vox-adv-cpk.pth.tar", "face", "FOMM VoxCeleb faces with adversarial loss, 256"),
    "taichi": ("taichi-cpk.pth.tar", "other", "FOMM Tai-Chi-HD bodies, 256"),
    "taichi-adv": ("taichi-adv-cpk.pth.tar", "other", "FOMM Tai-Chi-HD bodies with adversarial loss, 256"),
    "nemo": ("nemo-cpk.pth.tar", "face", "FOMM Nemo smiling faces, 256"),
    "mgif": ("mgif-cpk.pth.tar", "other", "FOMM MGif cartoon animals, 256"),
    "fashion": ("fashion.pth.tar", "other", "FOMM Fashion bodies, 256"),
    "bair": ("bair-cpk.pth.tar", "other", "FOMM BAIR robot arm, 256"),
}
_TPSMM_DATA = {  # name: (config preset, published file, content, description)
    "vox": ("vox-256", "vox.pth.tar", "face", "TPSMM VoxCeleb faces, 256"),
    "taichi": ("taichi-256", "taichi.pth.tar", "other", "TPSMM Tai-Chi-HD bodies, 256"),
    "ted": ("ted-384", "ted.pth.tar", "other", "TPSMM TED-talks upper bodies, 384"),
    "mgif": ("mgif-256", "mgif.pth.tar", "other", "TPSMM MGif cartoon animals, 256"),
}

# A small FOMM with random weights: runs anywhere, animates nothing meaningful. It stands in as the default until a
# trained default model ships with the package.
_UNTRAINED_DEMO = {
    "common_params": {"num_kp": 10, "num_channels": 3, "estimate_jacobian": True},
    "kp_detector_params": {
        "temperature": 0.1,
        "block_expansion": 8,
        "max_features": 64,
        "scale_factor": 0.25,
        "num_blocks": 3,
    },
    "generator_params": {
        "block_expansion": 16,
        "max_features": 128,
        "num_down_blocks": 2,
        "num_bottleneck_blocks": 2,
        "estimate_occlusion_map": True,
        "dense_motion_params": {"block_expansion": 16, "max_features": 128, "num_blocks": 3, "scale_factor": 0.25},
    },
    "discriminator_params": {"scales": [1], "block_expansion": 8, "max_features": 64, "num_blocks": 2, "sn": True},
}


DEFAULT_MODEL = "enliven-lite"
#: The model for whatever is neither a face nor a person (``--model auto``).
GENERIC_MODEL = "enliven-any"
#: The model for people whose face is too small to animate (``--model auto``).
BODY_MODEL = "enliven-body"


def _build_presets() -> dict[str, Preset]:
    presets: dict[str, Preset] = {}
    presets["enliven-lite"] = Preset(
        "enliven-lite",
        "lite",
        LITE_1.to_yaml_dict(),
        "enliven-lite.safetensors",
        "face",
        "enliven-lite: real-time faces on a CPU, driven by MediaPipe face-mesh landmarks, 256",
        bundled=True,
    )
    presets["enliven-lite-2"] = Preset(
        "enliven-lite-2",
        "lite",
        LITE_2.to_yaml_dict(),
        "enliven-lite-2.safetensors",
        "face",
        "enliven-lite 2 (opt-in): the mouth's inside synthesised, a grin's teeth kept; ~23 fps end to end, 256",
        bundled=True,
    )
    presets[GENERIC_MODEL] = Preset(
        GENERIC_MODEL,
        "lite",
        LITE_ANY.to_yaml_dict(),
        "enliven-any.safetensors",
        "other",
        "enliven-any: the generic model (animals, cartoons, drawings, objects), learned keypoints, CPU, 256",
        bundled=True,
    )
    presets[BODY_MODEL] = Preset(
        BODY_MODEL,
        "lite",
        LITE_BODY.to_yaml_dict(),
        "enliven-body.safetensors",
        "body",
        "enliven-body: people (dance, tai-chi, talks), body parts moved by MediaPipe pose landmarks, CPU, 256",
        bundled=True,
    )
    for name, (weights, content, description) in _FOMM_DATA.items():
        presets[f"fomm-{name}"] = Preset(
            f"fomm-{name}",
            "fomm",
            _config(FOMM_PRESETS[name]),
            weights,
            content,
            description,  # type: ignore[arg-type]
        )
    for name, (config_name, weights, content, description) in _TPSMM_DATA.items():
        params = TPSMM_PRESETS[config_name]
        presets[f"tpsmm-{name}"] = Preset(
            f"tpsmm-{name}",
            "tpsmm",
            _config(params["model_params"], params.get("image_size", 256)),
            weights,
            content,
            description,  # type: ignore[arg-type]
        )
    presets["untrained-demo"] = Preset(
        "untrained-demo",
        "fomm",
        _config(_UNTRAINED_DEMO),
        None,
        "face",
        "small FOMM with random weights: a placeholder that runs anywhere; output is not a real animation",
    )
    return presets


PRESETS: dict[str, Preset] = _build_presets()
