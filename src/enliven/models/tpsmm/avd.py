"""Animation via disentanglement (AVD, TPSMM paper Sec. 3.4): re-pose the source keypoints with driving keypoints.

An identity code is taken from the source keypoints and a pose code from the driving keypoints; a decoder maps
both to keypoints with the source's shape in the driving pose, which avoids leaking the driving identity.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from enliven.models.tpsmm.keypoints import POINTS_PER_TPS


def _mlp(sizes: list[int], inplace: bool) -> nn.Sequential:
    """Linear -> BatchNorm1d -> ReLU for every hidden size, then a final Linear (checkpoint indices 0, 1, 3, ...)."""
    layers: list[nn.Module] = []
    for i, (size_in, size_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(size_in, size_out))
        if i < len(sizes) - 2:
            layers += [nn.BatchNorm1d(size_out), nn.ReLU(inplace=inplace)]
    return nn.Sequential(*layers)


class AvdNetwork(nn.Module):
    """Identity encoder, pose encoder and keypoint decoder (MLPs with batch norm).

    Args:
        num_tps: number K of TPS transformations (the keypoints are ``5K`` points).
        id_bottle_size: size of the identity code.
        pose_bottle_size: size of the pose code.
    """

    def __init__(self, num_tps: int, id_bottle_size: int = 64, pose_bottle_size: int = 64) -> None:
        super().__init__()
        self.num_keypoints = num_tps * POINTS_PER_TPS
        size = self.num_keypoints * 2
        self.id_encoder = _mlp([size, 256, 512, 1024, id_bottle_size], inplace=True)
        self.pose_encoder = _mlp([size, 256, 512, 1024, pose_bottle_size], inplace=True)
        self.decoder = _mlp([pose_bottle_size + id_bottle_size, 1024, 512, 256, size], inplace=False)

    def forward(self, kp_source: Tensor, kp_driving: Tensor) -> Tensor:
        """Return ``B x 5K x 2`` keypoints: the source's identity in each driving frame's pose.

        Args:
            kp_source: ``1 x 5K x 2`` or ``B x 5K x 2`` source keypoints in ``[-1, 1]``.
            kp_driving: ``B x 5K x 2`` driving keypoints.
        """
        batch = kp_driving.shape[0]
        # A shared source is repeated (as the authors' demo does), so batch-norm statistics in training match theirs.
        identity = self.id_encoder(kp_source.expand(batch, -1, -1).reshape(batch, -1))
        pose = self.pose_encoder(kp_driving.reshape(batch, -1))
        return self.decoder(torch.cat([pose, identity], dim=1)).view(batch, self.num_keypoints, 2)
