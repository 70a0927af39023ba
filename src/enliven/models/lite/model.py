"""enliven-lite: a face model for real time on a CPU, driven by MediaPipe face-mesh landmarks.

FOMM spends most of its 110 GFLOP per frame on learning where things move and on a wide generator. Here the
motion comes from face-mesh landmarks (MediaPipe finds them in ~3 ms per frame on a CPU), spread into candidate
flows in closed form and mixed by a small network on a 64 x 64 grid (:mod:`enliven.models.lite.motion`). The
generator is a narrow U-Net whose encoder runs once per source (cached by ``Animator``); per frame it warps the
cached features, refines them with depthwise-separable blocks, upsamples with pixel shuffle and adds its output,
a correction, to the full-resolution warped source: the sharp source texture is kept, and an untrained generator
changes nothing (training starts from the mesh warp and can only learn what improves on it).

Per 256 x 256 frame: 0.54 GFLOP, and 0.26 once per source (``enliven bench`` prints them), against 89 (FOMM) and
244 (TPSMM) per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enliven.config.lite import LiteConfig
from enliven.face_mesh import NUM_FACE_MESH_POINTS
from enliven.models.base import KeypointSource, MotionTransferModel, SourceEncoding
from enliven.models.keypoint_detector import KeypointDetector
from enliven.models.lite.motion import (
    LiteDenseMotion,
    conv_norm_relu,
    face_region,
    landmark_flows,
    mesh_warp_flow,
    resize_grid,
    source_triangles,
    warp,
)
from enliven.types import GeneratorOutput, Keypoints, MotionField


@dataclass(frozen=True)
class LiteSourceEncoding(SourceEncoding):
    """Source-only tensors of a lite model.

    Attributes:
        features: encoder features, half resolution first: ``1 x channels[i] x H / 2**(i+1) x W / 2**(i+1)``.
        small: ``1 x 3 x m x m`` the source at the motion grid's size ``m``.
        triangles: ``1 x T x 3`` the source's mesh (:func:`~enliven.models.lite.motion.source_triangles`), or
            ``None`` for a model without the mesh warp.
    """

    features: tuple[Tensor, ...]
    small: Tensor
    triangles: Tensor | None = None


class SeparableResidual(nn.Module):
    """``relu(x + BN(pointwise(relu(BN(depthwise3x3(x))))))``: a residual block at a ninth of a 3x3 conv's cost."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.norm1 = nn.BatchNorm2d(channels)
        self.pointwise = nn.Conv2d(channels, channels, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.norm1(self.depthwise(x)))
        return F.relu(x + self.norm2(self.pointwise(y)))


class LiteEncoder(nn.Module):
    """Source features at every generator level: strided 3x3 convs, each halving the size."""

    def __init__(self, num_channels: int, channels: tuple[int, ...], num_bottleneck_blocks: int) -> None:
        super().__init__()
        widths = (num_channels, *channels)
        self.levels = nn.ModuleList([conv_norm_relu(widths[i], widths[i + 1], stride=2) for i in range(len(channels))])
        self.bottleneck = nn.Sequential(*[SeparableResidual(channels[-1]) for _ in range(num_bottleneck_blocks)])

    def forward(self, image: Tensor) -> list[Tensor]:
        """``B x 3 x H x W`` in ``[0, 1]`` -> features, half resolution first."""
        features = []
        x = image
        for level in self.levels:
            x = level(x)
            features.append(x)
        features[-1] = self.bottleneck(features[-1])
        return features


def pixel_shuffle_2x(x: Tensor) -> Tensor:
    """``F.pixel_shuffle(x, 2)``: ``B x 4C x H x W`` -> ``B x C x 2H x 2W``, the same numbers as a view and one
    permuted copy, which runs twice as fast on a CPU as torch's kernel (0.7 vs 1.5 ms at 128 x 64 x 64)."""
    batch, channels, height, width = x.shape
    shuffled = x.view(batch, channels // 4, 2, 2, height, width).permute(0, 1, 4, 2, 5, 3)
    return shuffled.reshape(batch, channels // 4, 2 * height, 2 * width)


class LiteDecoder(nn.Module):
    """Warped source features -> a correction of the warped source, coarse to fine (pixel-shuffle upsampling).

    The last step is a convolution at half resolution whose channels a pixel shuffle turns into the full-resolution
    correction, applied where the occlusion map says the warped source is hidden; it starts at zero, so the
    untrained decoder returns the warped source unchanged.
    """

    def __init__(self, num_channels: int, channels: tuple[int, ...], num_bottleneck_blocks: int) -> None:
        super().__init__()
        self.bottleneck = nn.Sequential(*[SeparableResidual(channels[-1]) for _ in range(num_bottleneck_blocks)])
        # upsample[i] takes level i + 1 to level i.
        self.upsample = nn.ModuleList(
            [nn.Conv2d(channels[i + 1], 4 * channels[i], 1) for i in range(len(channels) - 1)]
        )
        self.refine = nn.ModuleList([SeparableResidual(c) for c in channels[:-1]])
        self.head = nn.Conv2d(channels[0], 4 * num_channels, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, image: Tensor, features: tuple[Tensor, ...], motion: MotionField) -> tuple[Tensor, Tensor]:
        """Returns the prediction (about ``[0, 1]``; not clamped, so the loss sees overshoot) and the full-resolution
        warped source (in ``[0, 1]``), both ``B x 3 x H x W``."""
        occlusion = motion.occlusion[0]

        def warped(level: int) -> Tensor:
            size = features[level].shape[-1]
            grid = resize_grid(motion.deformation, size)
            occ = (
                occlusion
                if occlusion.shape[-1] == size
                else F.interpolate(occlusion, size=(size, size), mode="bilinear", align_corners=False)
            )
            return warp(features[level], grid) * occ

        x = self.bottleneck(warped(len(features) - 1))
        for level in reversed(range(len(features) - 1)):
            x = pixel_shuffle_2x(self.upsample[level](x)) + warped(level)
            x = self.refine[level](x)
        deformed = warp(image, resize_grid(motion.deformation, image.shape[-1]))
        # The correction acts where the warped source cannot explain the frame (occlusion near 0): elsewhere the
        # source's own pixels are the best guess, and an imperfect decoder would only blur them.
        hidden = 1 - F.interpolate(occlusion, size=image.shape[-2:], mode="bilinear", align_corners=False)
        return deformed + hidden * pixel_shuffle_2x(self.head(x)), deformed


#: Index of the piecewise-affine flow among the candidates of :func:`landmark_flows` (after identity and affine).
PIECEWISE_CANDIDATE = 2


def has_mesh_warp(config: LiteConfig) -> bool:
    """Whether a lite model has the piecewise-affine (mesh warp) candidate."""
    return config.keypoints == "face_mesh" and config.piecewise


def lite_host_source_inputs(config: LiteConfig, keypoints: Keypoints) -> dict[str, Tensor]:
    """The source's mesh, ``source_triangles`` ``B x T x 3`` (none without the mesh warp): a solver's output,
    computed on the host once per source, an input of the exported graphs."""
    if not has_mesh_warp(config):
        return {}
    indices = torch.tensor(config.piecewise_indices, device=keypoints.value.device)
    return {"source_triangles": source_triangles(keypoints.value.index_select(1, indices))}


class LiteModel(MotionTransferModel):
    """enliven-lite (see the module docstring).

    Keypoints are the 468 face-mesh landmarks, given from outside (``keypoints: face_mesh``), or, for comparison,
    ``num_kp`` keypoints of a small detector trained without supervision (``keypoints: learned``, FOMM's detector
    at a quarter of the resolution, no jacobians).

    Args:
        config: the architecture.
    """

    family = "lite"

    def __init__(self, config: LiteConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("landmark_indices", torch.tensor(config.landmark_indices), persistent=False)
        self.kp_detector: KeypointDetector | None = None
        if config.keypoints == "learned":
            self.kp_detector = KeypointDetector(
                block_expansion=16,
                num_kp=config.num_kp,
                num_channels=config.num_channels,
                max_features=128,
                num_blocks=3,
                temperature=0.1,
                scale_factor=config.motion_size / config.image_size,
                pad=3,
            )
        self.piecewise = has_mesh_warp(config)
        # The points of the piecewise-affine candidate's mesh, as indices into the face mesh.
        self.register_buffer("mesh_indices", torch.tensor(config.piecewise_indices), persistent=False)
        self.dense_motion = LiteDenseMotion(
            config.num_channels,
            2 + int(self.piecewise) + len(config.kernel_sigmas),
            len(config.kernel_sigmas),
            config.motion_expansion,
            preferred=PIECEWISE_CANDIDATE if self.piecewise else None,
            residual_flow=config.residual_flow,
        )
        self.encoder = LiteEncoder(config.num_channels, config.channels, config.num_bottleneck_blocks)
        self.decoder = LiteDecoder(config.num_channels, config.channels, config.num_bottleneck_blocks)

    @property  # type: ignore[override]
    def keypoint_source(self) -> KeypointSource:
        return KeypointSource.FACE_MESH if self.kp_detector is None else KeypointSource.LEARNED

    def detect_keypoints(self, image: Tensor) -> Keypoints:
        """Learned keypoints (``B x num_kp x 2``) of ``B x 3 x H x W`` images in ``[0, 1]``."""
        if self.kp_detector is None:
            raise TypeError(
                "enliven-lite is driven by MediaPipe face-mesh landmarks computed outside the model; "
                "use enliven.inference.Animator (or enliven.Animator), which computes them, or pass Keypoints of 468 "
                "landmarks."
            )
        return Keypoints(self.kp_detector(image).value)

    def encode_source(
        self, source: Tensor, keypoints: Keypoints | None = None, triangles: Tensor | None = None
    ) -> LiteSourceEncoding:
        """Encode ``B x 3 x H x W`` sources in ``[0, 1]`` with their keypoints (face mesh: ``B x 468 x 2``, required;
        learned: detected when not given) and their meshes ``B x T x 3`` (computed when not given: see
        :meth:`host_source_inputs`)."""
        if keypoints is None:
            if self.kp_detector is None:
                raise ValueError("a lite model needs the source's face-mesh landmarks (B x 468 x 2) to encode it")
            keypoints = self.detect_keypoints(source)
        self._check_keypoints(keypoints)
        if self.piecewise and triangles is None:
            (triangles,) = self.host_source_inputs(keypoints).values()
        factor = self.config.image_size // self.config.motion_size
        return LiteSourceEncoding(
            image=source,
            keypoints=keypoints,
            features=tuple(self.encoder(source)),
            small=F.avg_pool2d(source, factor) if factor > 1 else source,
            triangles=triangles if self.piecewise else None,
        )

    def host_source_inputs(self, keypoints: Keypoints) -> dict[str, Tensor]:
        return lite_host_source_inputs(self.config, keypoints)

    def generate(self, encoding: SourceEncoding, kp_driving: Keypoints) -> GeneratorOutput:
        """Animate the encoded source to ``B`` sets of (transferred) face-mesh landmarks ``B x 468 x 2``.

        Returns ``B`` predictions in ``[0, 1]``; the motion's ``mask`` is the soft choice among candidate flows.
        """
        if not isinstance(encoding, LiteSourceEncoding):
            raise TypeError(f"LiteModel.generate needs a LiteSourceEncoding, got {type(encoding).__name__}")
        self._check_keypoints(kp_driving)
        driving, source = kp_driving.value, encoding.keypoints.value
        # The grid follows the encoded source, so a model also runs at another size (Animator's ``size``).
        size = encoding.small.shape[-1]
        piecewise = face = None
        if self.piecewise:
            if encoding.triangles is None:
                raise ValueError("this lite model warps along the source's mesh; encode the source with its triangles")
            mesh_source = source.index_select(1, self.mesh_indices)
            mesh_driving = driving.index_select(1, self.mesh_indices)
            mesh_size = max(2, size // self.config.piecewise_stride)
            mesh = mesh_warp_flow(mesh_source, mesh_driving, encoding.triangles, mesh_size)
            piecewise = resize_grid(mesh.flow, size)
            if self.config.face_margin is not None:
                face = face_region(mesh.face, size, self.config.face_margin)
        if self.kp_detector is None:
            driving = driving.index_select(1, self.landmark_indices)
            source = source.index_select(1, self.landmark_indices)
        source = source.expand(driving.shape[0], -1, -1)
        grids, density = landmark_flows(source, driving, size, self.config.kernel_sigmas, piecewise)
        motion = self.dense_motion(encoding.small, grids, density, face)
        prediction, deformed = self.decoder(encoding.image, encoding.features, motion)
        return GeneratorOutput(prediction=prediction, motion=motion, deformed=deformed)

    def _check_keypoints(self, keypoints: Keypoints) -> None:
        expected = NUM_FACE_MESH_POINTS if self.kp_detector is None else self.config.num_kp
        if keypoints.num_keypoints != expected:
            what = "face-mesh landmarks" if self.kp_detector is None else "learned keypoints"
            raise ValueError(f"this lite model takes {expected} {what}, got {keypoints.num_keypoints} points")
