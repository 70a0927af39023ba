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

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enliven.config.lite import LiteConfig
from enliven.face_mesh import INNER_LIPS, NUM_FACE_MESH_POINTS, UPPER_INNER_LIP_MIDDLE
from enliven.models.base import KeypointSource, MotionTransferModel, SourceEncoding
from enliven.models.keypoint_detector import KeypointDetector
from enliven.models.lite.body import (
    BLEND_CANDIDATE,
    NUM_BODY_CANDIDATES,
    body_flows,
    head_region,
    retarget_pose,
)
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
from enliven.models.lite.regions import mouth_motion, polygon_mask
from enliven.pose import BODY_PARTS, NUM_POSE_POINTS
from enliven.types import GeneratorOutput, Keypoints, MotionField, MotionMode


@dataclass(frozen=True)
class LiteSourceEncoding(SourceEncoding):
    """Source-only tensors of a lite model.

    Attributes:
        features: encoder features, half resolution first: ``1 x channels[i] x H / 2**(i+1) x W / 2**(i+1)``.
        small: ``1 x 3 x m x m`` the source at the motion grid's size ``m``.
        triangles: ``1 x T x 3`` the source's mesh (:func:`~enliven.models.lite.motion.source_triangles`), or
            ``None`` for a model without the mesh warp.
        mouth: ``1 x 1 x H/2 x W/2`` the inside of the source's inner lip line (models with ``mouth_interior``), or
            ``None``.
        detail: ``1 x 3 x D x D`` the source at another resolution than the model's (e.g. the photo's own), or
            ``None``: the predictions are then composed at ``D`` (see :meth:`LiteModel.encode_source`).
        plate: ``1 x 3 x H x W`` in ``[0, 1]``: the source's background with its person painted out (models with
            ``background_plate``), or ``None``.
    """

    features: tuple[Tensor, ...]
    small: Tensor
    triangles: Tensor | None = None
    mouth: Tensor | None = None
    detail: Tensor | None = None
    plate: Tensor | None = None


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


#: Initial shade of the warped source inside the driving mouth (a mouth's interior is dark); learned.
MOUTH_SHADE = 0.3


class LiteDecoder(nn.Module):
    """Warped source features -> a correction of the warped source, coarse to fine (pixel-shuffle upsampling).

    The last step is a convolution at half resolution whose channels a pixel shuffle turns into the full-resolution
    correction, applied where the occlusion map says the warped source is hidden; it starts at zero, so the
    untrained decoder returns the warped source unchanged.

    Args:
        num_channels: image channels.
        channels: feature channels per level, half resolution first.
        num_bottleneck_blocks: residual blocks at the lowest level.
        num_refine_blocks: residual blocks after each upsampling step.
        mouth_interior: the decoder takes the driving mouth's interior (a mask): hidden from the warped source, shaded
            by a learned factor, and marked in the features by a learned vector per level.
        image_warp: how the source image is sampled (``bilinear`` or ``bicubic``).
    """

    def __init__(
        self,
        num_channels: int,
        channels: tuple[int, ...],
        num_bottleneck_blocks: int,
        num_refine_blocks: int = 1,
        mouth_interior: bool = False,
        image_warp: str = "bilinear",
    ) -> None:
        super().__init__()
        self.image_warp = image_warp
        self.bottleneck = nn.Sequential(*[SeparableResidual(channels[-1]) for _ in range(num_bottleneck_blocks)])
        # upsample[i] takes level i + 1 to level i.
        self.upsample = nn.ModuleList(
            [nn.Conv2d(channels[i + 1], 4 * channels[i], 1) for i in range(len(channels) - 1)]
        )
        self.refine = nn.ModuleList([SeparableResidual(c) for c in channels[:-1]])
        # Kept apart from ``refine`` so that one-block models keep their parameter names.
        self.refine_more = (
            nn.ModuleList(
                [nn.Sequential(*[SeparableResidual(c) for _ in range(num_refine_blocks - 1)]) for c in channels[:-1]]
            )
            if num_refine_blocks > 1
            else None
        )
        self.mouth_embedding: nn.ParameterList | None = None
        self.mouth_shade: nn.Parameter | None = None
        if mouth_interior:
            self.mouth_embedding = nn.ParameterList([nn.Parameter(torch.zeros(1, c, 1, 1)) for c in channels])
            self.mouth_shade = nn.Parameter(torch.full((1, num_channels, 1, 1), math.log(MOUTH_SHADE)))
        self.head = nn.Conv2d(channels[0], 4 * num_channels, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(
        self,
        image: Tensor,
        features: tuple[Tensor, ...],
        motion: MotionField,
        mouth: Tensor | None = None,
        detail: Tensor | None = None,
        plate: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Returns the prediction (about ``[0, 1]``; not clamped, so the loss sees overshoot) and what the correction
        is added to: the warped source (in ``[0, 1]``, shaded inside the mouth; where it is hidden, the ``plate``
        when given), both ``B x 3 x H x W``.

        Args:
            image: ``1 x 3 x H x W`` (or ``B x``) the source.
            features: the source's encoder features.
            motion: the dense motion.
            mouth: ``B x 1 x h x w`` in ``[0, 1]``, the driving mouth's interior (models with ``mouth_interior``).
            detail: ``1 x 3 x D x D`` the same source at another resolution: the prediction is composed at ``D``
                (the source's own texture warped there, the decoder's correction resized to it) instead of ``H``.
            plate: ``1 x 3 x h x w`` (any size) the source's background without its person: taken where the warped
                source is hidden.
        """
        occlusion = motion.occlusion[0]
        if (mouth is None) != (self.mouth_embedding is None):
            raise ValueError("this decoder " + ("needs" if mouth is None else "takes no") + " a mouth mask")

        def resized(mask: Tensor, size: int) -> Tensor:
            if mask.shape[-1] == size:
                return mask
            return F.interpolate(mask, size=(size, size), mode="bilinear", align_corners=False)

        def warped(level: int) -> Tensor:
            size = features[level].shape[-1]
            moved = warp(features[level], resize_grid(motion.deformation, size)) * resized(occlusion, size)
            if mouth is None or self.mouth_embedding is None:
                return moved
            inside = resized(mouth, size)
            return moved * (1 - inside) + inside * self.mouth_embedding[level]

        x = self.bottleneck(warped(len(features) - 1))
        for level in reversed(range(len(features) - 1)):
            x = pixel_shuffle_2x(self.upsample[level](x)) + warped(level)
            x = self.refine[level](x)
            if self.refine_more is not None:
                x = self.refine_more[level](x)
        target = image if detail is None else detail
        size = target.shape[-1]
        deformed = warp(target, resize_grid(motion.deformation, size), self.image_warp)
        correction = pixel_shuffle_2x(self.head(x))
        if correction.shape[-1] != size:
            correction = F.interpolate(correction, size=(size, size), mode="bilinear", align_corners=False)
        # The correction acts where the warped source cannot explain the frame (occlusion near 0): elsewhere the
        # source's own pixels are the best guess, and an imperfect decoder would only blur them.
        hidden = 1 - resized(occlusion, size)
        if mouth is not None and self.mouth_shade is not None:
            inside = resized(mouth, size)
            hidden = torch.maximum(hidden, inside)
            deformed = deformed * (1 - inside * (1 - self.mouth_shade.exp()))
        if plate is not None:  # what the moved body uncovers is background, not a copy of the body
            if plate.shape[-1] != size:
                plate = F.interpolate(plate, size=(size, size), mode="bilinear", align_corners=False)
            deformed = deformed + hidden * (plate - deformed)
        return deformed + hidden * correction, deformed


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

    Keypoints are the 468 face-mesh landmarks, given from outside (``keypoints: face_mesh``), MediaPipe's 33 pose
    landmarks, also given from outside (``keypoints: pose``: a body model, :mod:`enliven.models.lite.body`), or
    ``num_kp`` keypoints of a small detector trained without supervision (``keypoints: learned``, FOMM's detector
    at a quarter of the resolution, no jacobians).

    Args:
        config: the architecture.
    """

    family = "lite"
    composes_detail = True

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
        self.body = config.keypoints == "pose"
        # The points of the piecewise-affine candidate's mesh, as indices into the face mesh.
        self.register_buffer("mesh_indices", torch.tensor(config.piecewise_indices), persistent=False)
        if self.body:  # the parts' motions, their blend first (the part warp), told where each part lies
            candidates, densities, preferred = NUM_BODY_CANDIDATES, len(BODY_PARTS), BLEND_CANDIDATE
        else:
            candidates = 2 + int(self.piecewise) + len(config.kernel_sigmas)
            densities, preferred = len(config.kernel_sigmas), PIECEWISE_CANDIDATE if self.piecewise else None
        self.dense_motion = LiteDenseMotion(
            config.num_channels,
            candidates,
            densities,
            config.motion_expansion,
            preferred=preferred,
            residual_flow=config.residual_flow,
        )
        self.encoder = LiteEncoder(config.num_channels, config.channels, config.num_bottleneck_blocks)
        self.decoder = LiteDecoder(
            config.num_channels,
            config.channels,
            config.num_bottleneck_blocks,
            config.num_refine_blocks,
            config.mouth_interior,
            config.image_warp,
        )
        self.register_buffer("inner_lips", torch.tensor(INNER_LIPS), persistent=False)
        # The middle of the upper inner lip, as positions in INNER_LIPS: the mouth's inside moves with it.
        upper = [INNER_LIPS.index(i) for i in UPPER_INNER_LIP_MIDDLE]
        self.register_buffer("upper_lip", torch.tensor(upper), persistent=False)

    @property
    def needs_plate(self) -> bool:
        """Whether :meth:`encode_source` takes the source's background plate (``background_plate`` models)."""
        return self.config.background_plate

    @property  # type: ignore[override]
    def keypoint_source(self) -> KeypointSource:
        if self.kp_detector is not None:
            return KeypointSource.LEARNED
        return KeypointSource.POSE if self.body else KeypointSource.FACE_MESH

    def transfer_motion(
        self,
        kp_source: Keypoints,
        kp_driving: Keypoints,
        kp_reference: Keypoints | None,
        mode: MotionMode,
        scale: float = 1.0,
    ) -> Keypoints:
        """As :meth:`MotionTransferModel.transfer_motion`; a body model's relative motion turns the source's bones
        as the driver's turned (:func:`~enliven.models.lite.body.retarget_pose`) instead of adding displacements."""
        if self.body and mode is MotionMode.RELATIVE and kp_reference is not None:
            return Keypoints(retarget_pose(kp_source.value, kp_driving.value, kp_reference.value, scale))
        return super().transfer_motion(kp_source, kp_driving, kp_reference, mode, scale)

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
        self,
        source: Tensor,
        keypoints: Keypoints | None = None,
        triangles: Tensor | None = None,
        detail: Tensor | None = None,
        plate: Tensor | None = None,
    ) -> LiteSourceEncoding:
        """Encode ``B x 3 x H x W`` sources in ``[0, 1]`` with their keypoints (face mesh: ``B x 468 x 2``, required;
        learned: detected when not given) and their meshes ``B x T x 3`` (computed when not given: see
        :meth:`host_source_inputs`).

        ``detail``, ``1 x 3 x D x D`` in ``[0, 1]``: the same crop at another resolution (e.g. the photo's own
        pixels). Predictions are then ``D x D``: the motion, occlusion and correction come from the ``H x H`` model,
        the texture from ``detail`` warped at its own resolution, so a paste-back keeps the photo's sharpness.

        ``plate``, ``1 x 3 x H x W`` in ``[0, 1]``: the source with its person painted out, for models with
        ``background_plate`` (required there; :func:`enliven.preprocess.person.background_plate`)."""
        if self.config.background_plate and plate is None:
            raise ValueError("this lite model composes over a background plate: pass the source's plate to encode it")
        if keypoints is None:
            if self.kp_detector is None:
                what = "pose landmarks (B x 33 x 2)" if self.body else "face-mesh landmarks (B x 468 x 2)"
                raise ValueError(f"a lite model needs the source's {what} to encode it")
            keypoints = self.detect_keypoints(source)
        self._check_keypoints(keypoints)
        if self.piecewise and triangles is None:
            (triangles,) = self.host_source_inputs(keypoints).values()
        factor = self.config.image_size // self.config.motion_size
        features = tuple(self.encoder(source))
        mouth = None
        if self.config.mouth_interior:
            mouth = polygon_mask(keypoints.value.index_select(1, self.inner_lips), features[0].shape[-1])
        return LiteSourceEncoding(
            image=source,
            keypoints=keypoints,
            features=features,
            small=F.avg_pool2d(source, factor) if factor > 1 else source,
            triangles=triangles if self.piecewise else None,
            mouth=mouth,
            detail=detail,
            plate=plate if self.config.background_plate else None,
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
        if self.body:
            grids, density = body_flows(source.expand(driving.shape[0], -1, -1), driving, size)
            if self.config.face_margin is not None:  # the head moves whole: its parts' blend is taken there
                face = face_region(head_region(density), size, self.config.face_margin)
        else:
            if self.kp_detector is None:
                driving = driving.index_select(1, self.landmark_indices)
                source = source.index_select(1, self.landmark_indices)
            source = source.expand(driving.shape[0], -1, -1)
            grids, density = landmark_flows(source, driving, size, self.config.kernel_sigmas, piecewise)
        motion = self.dense_motion(encoding.small, grids, density, face)
        mouth = None
        if self.config.mouth_interior:
            if encoding.mouth is None:
                raise ValueError("this lite model synthesises the mouth: encode the source with this model")
            # The mouth's inside moves with the upper lip (a grin's teeth keep their size); what the source's own
            # mouth does not cover there is synthesised (a closed mouth that opens gets an interior, not stretched
            # lips).
            deformation, mouth = mouth_motion(
                motion.deformation,
                encoding.mouth,
                encoding.keypoints.value.index_select(1, self.inner_lips),
                kp_driving.value.index_select(1, self.inner_lips),
                self.upper_lip,
            )
            motion = replace(motion, deformation=deformation)
        prediction, deformed = self.decoder(
            encoding.image, encoding.features, motion, mouth, encoding.detail, encoding.plate
        )
        return GeneratorOutput(prediction=prediction, motion=motion, deformed=deformed)

    def _check_keypoints(self, keypoints: Keypoints) -> None:
        if self.kp_detector is not None:
            expected, what = self.config.num_kp, "learned keypoints"
        elif self.body:
            expected, what = NUM_POSE_POINTS, "pose landmarks"
        else:
            expected, what = NUM_FACE_MESH_POINTS, "face-mesh landmarks"
        if keypoints.num_keypoints != expected:
            raise ValueError(f"this lite model takes {expected} {what}, got {keypoints.num_keypoints} points")
