"""VGG-19 feature extractor for the perceptual loss (FOMM/TPSMM Sec. 3.3), with torchvision's parameter names.

No pretrained weights can be downloaded here, so the network is built from scratch in torchvision's ``vgg19``
layout (``features.0`` ... ``features.34``, convolutions at the indices in :data:`CONV_INDICES`) and a torchvision
``vgg19`` state_dict file given by path loads into it (the ``classifier.*`` entries are ignored).

The perceptual loss compares the activations after ``relu1_1``, ``relu2_1``, ``relu3_1``, ``relu4_1`` and
``relu5_1`` (``features`` indices 1, 6, 11, 20, 29), as the authors' ``Vgg19`` does, on images normalised with the
ImageNet mean and standard deviation.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from enliven.errors import ConfigError

#: torchvision's ``vgg19`` (configuration "E"): channel counts, ``"M"`` for a 2x2 max pooling.
_LAYOUT: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
                                  512, 512, 512, 512, "M")  # fmt: skip
#: ``features`` indices of the 16 convolutions (the keys of a torchvision state_dict).
CONV_INDICES: tuple[int, ...] = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
#: ``features`` index after which each of the five compared activations is taken (relu1_1 ... relu5_1).
FEATURE_ENDS: tuple[int, ...] = (1, 6, 11, 20, 29)

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class Vgg19Features(nn.Module):
    """Frozen VGG-19 convolutional trunk returning the five activations of the perceptual loss.

    The parameters never require gradients; gradients still flow to the input image.
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in _LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, int(item), kernel_size=3, padding=1), nn.ReLU()]
                channels = int(item)
        self.features = nn.Sequential(*layers)
        # Not persistent: the state_dict is exactly torchvision's ``features.*``.
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> Vgg19Features:
        """Stay in eval mode: the network is a fixed feature extractor."""
        return super().train(False)

    def forward(self, image: Tensor) -> list[Tensor]:
        """Return the ``relu1_1 ... relu5_1`` activations of ``B x 3 x H x W`` images in ``[0, 1]``."""
        out = (image - self.mean) / self.std
        outputs = []
        start = 0
        for end in FEATURE_ENDS:
            for layer in self.features[start : end + 1]:
                out = layer(out)
            outputs.append(out)
            start = end + 1
        return outputs


def load_vgg19(path: str | Path) -> Vgg19Features:
    """Build :class:`Vgg19Features` and load a torchvision ``vgg19`` state_dict (``.pth``/``.pt`` or ``.safetensors``).

    The file may hold the whole network (``features.*`` and ``classifier.*``) or only ``features.*``.

    Raises:
        ConfigError: the file is missing, unreadable, or not a VGG-19 state_dict.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"the VGG-19 weights file {path} does not exist; fix train_params.loss.vgg19_weights.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any read failure means the user's file is not what we need
        raise ConfigError(
            f"cannot read the VGG-19 weights file {path} ({type(err).__name__}); pass a torchvision vgg19 state_dict."
        ) from None
    if not isinstance(state, dict):
        raise ConfigError(
            f"the VGG-19 weights file {path} holds no state_dict; save torchvision's vgg19().state_dict() instead."
        )
    features = {k: v for k, v in state.items() if k.startswith("features.")}
    model = Vgg19Features()
    try:
        model.load_state_dict(features, strict=True)
    except RuntimeError:
        raise ConfigError(
            f"the file {path} is not a torchvision vgg19 state_dict (its features.* keys or shapes differ)."
        ) from None
    return model
