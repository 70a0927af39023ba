"""ResNet-18 (He et al., 2016) with torchvision's layout and parameter names.

TPSMM's keypoint detector and background motion predictor are torchvision ResNet-18s, so their checkpoints are
keyed ``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample.0``, ..., ``fc``. This module reproduces that
layout without depending on torchvision; input channels and the size of the final linear layer are configurable.
"""

from __future__ import annotations

from torch import Tensor, nn


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1-projected) shortcut.

    Args:
        in_channels: channels of the input.
        channels: channels of the output.
        stride: stride of the first convolution (2 halves the resolution).
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


def _stage(in_channels: int, channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(BasicBlock(in_channels, channels, stride=stride), BasicBlock(channels, channels))


class ResNet18(nn.Module):
    """ResNet-18 classifier: stem, four stages of two :class:`BasicBlock` each, global average pool, linear layer.

    Args:
        in_channels: channels of the input image (3 for RGB; TPSMM's background predictor takes 6).
        num_classes: outputs of the final linear layer ``fc``.

    Input ``B x in_channels x H x W`` (any ``H, W`` >= 32), output ``B x num_classes`` (raw, no activation).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _stage(64, 64, stride=1)
        self.layer2 = _stage(64, 128, stride=2)
        self.layer3 = _stage(128, 256, stride=2)
        self.layer4 = _stage(256, 512, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's initialisation, so that training from scratch behaves like the authors' runs.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def features(self, x: Tensor) -> Tensor:
        """Return the pooled ``B x 512`` features before ``fc``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))
