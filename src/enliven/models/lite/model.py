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

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

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
    source_layers,
)
from enliven.models.lite.fine import EYE_REGIONS, MOUTH_REGION, fine_warp, region_triangles
from enliven.models.lite.generator import LiteDecoder, LiteEncoder
from enliven.models.lite.motion import (
    LiteDenseMotion,
    face_region,
    landmark_flows,
    mesh_warp_flow,
    resize_candidates,
    resize_grid,
    source_triangles,
)
from enliven.models.lite.regions import mouth_motion, polygon_mask
from enliven.pose import BODY_PARTS, NUM_POSE_POINTS
from enliven.types import GeneratorOutput, Keypoints, MotionMode


@dataclass(frozen=True)
class LiteSourceEncoding(SourceEncoding):
    """Source-only tensors of a lite model.

    Attributes:
        features: encoder features, half resolution first: ``1 x channels[i] x H / 2**(i+1) x W / 2**(i+1)``.
        small: ``1 x 3 x m x m`` the source at the motion grid's size ``m``.
        triangles: ``1 x T x 3`` the source's mesh (:func:`~enliven.models.lite.motion.source_triangles`), or
            ``None`` for a model without the mesh warp.
        regions: ``1 x R x C x 3`` the source's triangles around its eyes and lips
            (:func:`~enliven.models.lite.fine.region_triangles`), or ``None`` for a model without ``fine_regions``.
        mouth: ``1 x 1 x H/2 x W/2`` the inside of the source's inner lip line (models with ``mouth_interior``), or
            ``None``.
        detail: ``1 x 3 x D x D`` the source at another resolution than the model's (e.g. the photo's own), or
            ``None``: the predictions are then composed at ``D`` (see :meth:`LiteModel.encode_source`).
        plate: ``1 x 3 x H x W`` in ``[0, 1]``: the source's background with its person painted out (models with
            ``background_plate``), or ``None``.
        layers: ``1 x P x m x m`` which body part owns each point of the source on the motion grid (models with
            ``layered_parts``: :func:`~enliven.models.lite.body.source_layers`), or ``None``.
    """

    features: tuple[Tensor, ...]
    small: Tensor
    triangles: Tensor | None = None
    regions: Tensor | None = None
    mouth: Tensor | None = None
    detail: Tensor | None = None
    plate: Tensor | None = None
    layers: Tensor | None = None


#: Index of the piecewise-affine flow among the candidates of :func:`landmark_flows` (after identity and affine).
PIECEWISE_CANDIDATE = 2


def has_mesh_warp(config: LiteConfig) -> bool:
    """Whether a lite model has the piecewise-affine (mesh warp) candidate."""
    return config.keypoints == "face_mesh" and config.piecewise


def fine_regions(config: LiteConfig) -> tuple[tuple[int, ...], ...]:
    """The regions a lite model warps finely (:mod:`enliven.models.lite.fine`), as indices into its mesh's points:
    the eyes and the lips, the eyes only for a model whose mouth moves its own way (``mouth_interior``), none
    without ``fine_regions`` or the mesh warp."""
    if not (has_mesh_warp(config) and config.fine_regions):
        return ()
    position = {index: i for i, index in enumerate(config.piecewise_indices)}
    regions = EYE_REGIONS if config.mouth_interior else EYE_REGIONS + MOUTH_REGION
    return tuple(tuple(position[i] for i in region if i in position) for region in regions)


def lite_host_source_inputs(config: LiteConfig, keypoints: Keypoints) -> dict[str, Tensor]:
    """Solvers' outputs, computed on the host once per source, inputs of the exported graphs: the source's mesh,
    ``source_triangles`` ``B x T x 3``, and its triangles around the eyes and lips, ``region_triangles``
    ``B x R x C x 3`` (none without the mesh warp or ``fine_regions``)."""
    if not has_mesh_warp(config):
        return {}
    indices = torch.tensor(config.piecewise_indices, device=keypoints.value.device)
    mesh = keypoints.value.index_select(1, indices)
    triangles = source_triangles(mesh)
    regions = fine_regions(config)
    if not regions:
        return {"source_triangles": triangles}
    return {"source_triangles": triangles, "region_triangles": region_triangles(mesh, triangles, regions)}


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
        self.fine_regions = fine_regions(config)
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
        regions: Tensor | None = None,
        detail: Tensor | None = None,
        plate: Tensor | None = None,
    ) -> LiteSourceEncoding:
        """Encode ``B x 3 x H x W`` sources in ``[0, 1]`` with their keypoints (face mesh: ``B x 468 x 2``, required;
        learned: detected when not given), their meshes ``B x T x 3`` and triangles around the eyes and lips
        ``B x R x C x 3`` (both computed when not given: see :meth:`host_source_inputs`).

        ``detail``, ``1 x 3 x D x D`` in ``[0, 1]``: the same crop at another resolution (e.g. the photo's own
        pixels). Predictions are then ``D x D``: the motion, occlusion and correction come from the ``H x H`` model,
        the texture from ``detail`` warped at its own resolution, so a paste-back keeps the photo's sharpness.

        ``plate``, ``1 x 3 x H x W`` in ``[0, 1]``: the source with its person painted out, for models with
        ``background_plate`` (required there; :func:`enliven.preprocess.person.background_plate`); ``1 x 4 x H x W``
        with the person's mask (MediaPipe's selfie segmentation, in ``[0, 1]``) as the fourth channel
        (:func:`enliven.preprocess.person.person_plate`), which models with ``layered_parts`` need."""
        if self.config.background_plate and plate is None:
            raise ValueError("this lite model composes over a background plate: pass the source's plate to encode it")
        if self.config.layered_parts and (plate is None or plate.shape[1] != 4):
            raise ValueError(
                "this body model lays its parts over each other by the person's mask: pass a plate with the mask as "
                "a fourth channel (enliven.preprocess.person.person_plate)"
            )
        if keypoints is None:
            if self.kp_detector is None:
                what = "pose landmarks (B x 33 x 2)" if self.body else "face-mesh landmarks (B x 468 x 2)"
                raise ValueError(f"a lite model needs the source's {what} to encode it")
            keypoints = self.detect_keypoints(source)
        self._check_keypoints(keypoints)
        if self.piecewise and triangles is None:
            host = self.host_source_inputs(keypoints)
            triangles, regions = host["source_triangles"], host.get("region_triangles")
        elif self.piecewise and regions is None and self.fine_regions:
            regions = region_triangles(
                keypoints.value.index_select(1, self.mesh_indices), triangles, self.fine_regions
            )  # fmt: skip
        factor = self.config.image_size // self.config.motion_size
        features = tuple(self.encoder(source))
        mouth = layers = None
        if self.config.mouth_interior:
            mouth = polygon_mask(keypoints.value.index_select(1, self.inner_lips), features[0].shape[-1])
        small = F.avg_pool2d(source, factor) if factor > 1 else source
        if self.config.layered_parts:
            layers = source_layers(keypoints.value, plate[:, 3:], small.shape[-1])  # type: ignore[index]
        return LiteSourceEncoding(
            image=source,
            keypoints=keypoints,
            features=features,
            small=small,
            triangles=triangles if self.piecewise else None,
            regions=regions if self.fine_regions else None,
            mouth=mouth,
            detail=detail,
            plate=plate[:, :3] if self.config.background_plate and plate is not None else None,
            layers=layers,
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
        piecewise = face = fine = shown = None
        candidate_size = max(2, size // self.config.candidate_stride)
        if self.piecewise:
            if encoding.triangles is None:
                raise ValueError("this lite model warps along the source's mesh; encode the source with its triangles")
            mesh_source = source.index_select(1, self.mesh_indices)
            mesh_driving = driving.index_select(1, self.mesh_indices)
            mesh_size = max(2, size // self.config.piecewise_stride)
            mesh = mesh_warp_flow(mesh_source, mesh_driving, encoding.triangles, mesh_size)
            if self.fine_regions:
                if encoding.regions is None:
                    raise ValueError("this lite model warps eyes and lips finely; encode the source with this model")
                fine = fine_warp(mesh_source, mesh_driving, encoding.regions)
            piecewise = resize_grid(mesh.flow, candidate_size)
            if self.config.face_margin is not None:
                face = face_region(mesh.face, size, self.config.face_margin)
        if self.body:
            flows = body_flows(source.expand(driving.shape[0], -1, -1), driving, size, encoding.layers)
            grids, density, shown = flows.grids, flows.weights, flows.shown
            if self.config.face_margin is not None:  # the head moves whole: its parts' blend is taken there
                face = face_region(head_region(density), size, self.config.face_margin)
        else:
            if self.kp_detector is None:
                driving = driving.index_select(1, self.landmark_indices)
                source = source.index_select(1, self.landmark_indices)
            source = source.expand(driving.shape[0], -1, -1)
            grids, density = landmark_flows(source, driving, candidate_size, self.config.kernel_sigmas, piecewise)
            if candidate_size != size:
                grids, density = resize_candidates(grids, density, size)
        motion = self.dense_motion(encoding.small, grids, density, face)
        if shown is not None:  # where no part of the person shows, the frame is background: the plate's
            motion = replace(motion, occlusion=tuple(occlusion * shown for occlusion in motion.occlusion))
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
            encoding.image, encoding.features, motion, mouth, encoding.detail, encoding.plate, fine
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
