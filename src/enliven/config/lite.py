"""Configuration of enliven-lite, the real-time face model driven by MediaPipe face-mesh landmarks.

YAML layout (the authors' style, so the same loaders, checkpoints and ``enliven train`` handle it)::

    dataset_params: {frame_shape: [256, 256, 3]}
    model_params:
      family: lite
      common_params: {num_channels: 3, landmarks: contour_and_nose}
      motion_params: {size: 64, kernel_sigmas: [0.04, 0.12], block_expansion: 32, piecewise: true}
      generator_params: {channels: [32, 64], num_bottleneck_blocks: 2}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from enliven.config._validate import (
    check_keys,
    get_bool,
    get_int,
    get_list,
    image_size,
    is_int,
    is_number,
    section,
)
from enliven.errors import ConfigError
from enliven.face_mesh import CONTOUR_AND_NOSE, NUM_FACE_MESH_POINTS

#: Named subsets of the face mesh a lite model may be driven by.
LANDMARK_SUBSETS: dict[str, tuple[int, ...]] = {
    "contour_and_nose": CONTOUR_AND_NOSE,
    "all": tuple(range(NUM_FACE_MESH_POINTS)),
}


@dataclass(frozen=True)
class LiteConfig:
    """A lite model's architecture (see :mod:`enliven.models.lite`).

    Attributes:
        image_size: side of the square frames (256; 128 for quick experiments).
        num_channels: image channels (3).
        keypoints: ``face_mesh`` (MediaPipe landmarks given from outside; the default), ``pose`` (MediaPipe's 33
            body landmarks given from outside: a body model, whose candidate flows are the body parts' motions,
            :mod:`enliven.models.lite.body`) or ``learned`` (a small keypoint detector trained without supervision,
            FOMM-style, with equivariance losses).
        landmarks: name of the face-mesh subset in :data:`LANDMARK_SUBSETS` that moves the face (``face_mesh``).
        num_kp: number of learned keypoints (``learned``).
        motion_size: side of the dense motion grid (64 for 256 px frames: motion is smooth, a quarter suffices).
        kernel_sigmas: widths, in normalised units (2 = the image side), of the Gaussian kernels that spread the
            landmarks' displacements into dense flows; one candidate flow per width.
        motion_expansion: channels of the dense motion network's first level (doubled at each of its 3 levels).
        piecewise: add the piecewise-affine warp over the Delaunay triangulation of the source's face-mesh points
            (the mesh warp) to the candidate flows, and start training from it (``face_mesh`` only). A triangulation
            per source, not one fixed mesh: a turned head folds a fixed mesh (AKD 3.17 against 2.68 px on such a
            validation clip).
        piecewise_landmarks: the subset of :data:`LANDMARK_SUBSETS` that mesh is made of. ``all`` (468 points) warps
            cheeks and jaw as the mesh-warp baseline does; the contours alone leave long triangles there.
        piecewise_stride: the piecewise-affine flow is computed on a grid this many times coarser than the motion
            grid, then resized to it. Its cost grows with grid points x triangles: 64 x 64 points over the 950
            triangles of ``all`` take 30 ms a frame, 32 x 32 points 4 ms, and warp nearly as precisely (a fixed
            mesh's AKD: 1.606 against 1.595 px on the validation clips; the contours' mesh: 1.718 at any grid size).
        candidate_stride: all candidate flows (and the landmark densities) are computed on a grid this many times
            coarser than the motion grid, then resized to it; the Gaussian kernels' exponentials over every grid
            point and landmark are the candidates' largest cost (7.9 against 1.4 ms a frame at 64 against 32).
        face_margin: inside the driving face (the mesh's triangles without border anchors), grown by this fraction of
            the side, the motion is the mesh warp and the network chooses elsewhere only; ``None``: it chooses
            everywhere. With a choice there, the trained mixture warped the face softer than the mesh warp (AKD
            1.652 against 1.595 px on the validation clips; forced, 0.05 around the face: 1.586, and a lower L1).
            A body model (``pose``) takes the parts' blend inside the head the same way (a head moves whole: left to
            choose, the network trained on small tai-chi heads tore larger ones apart).
        fine_regions: with the mesh warp, the source image is warped by the mesh warp computed again at about a
            pixel's spacing over the eyes and the lips (:mod:`enliven.models.lite.fine`), where the coarse grid
            smoothed a blink into a narrowing and an opening mouth into a smaller one (the mouth's opening range,
            dlib, cross-identity: 0.61 of the driver's coarse, 0.81 rasterised at full resolution). A model whose
            mouth moves its own way (``mouth_interior``) refines the eyes only. No effect without ``piecewise``.
        residual_flow: the dense motion network also predicts a small flow added to the mixture of candidates
            (off by default: it moved lips and eyelids without lowering the pixel error; see
            :class:`~enliven.models.lite.motion.LiteDenseMotion`).
        channels: generator feature channels at half, quarter... resolution (nothing runs at full resolution but
            the final pixel shuffle and blend); the last level is the motion grid's
            (``image_size / 2**len(channels) == motion_size``).
        num_bottleneck_blocks: depthwise-separable residual blocks at the lowest resolution (source side and
            driving side each).
        num_refine_blocks: depthwise-separable residual blocks after each upsampling step of the decoder.
        mouth_interior: inside the driving frame's inner lip line the source moves with its upper lip, and what its
            own mouth does not cover there (:func:`enliven.models.lite.regions.mouth_motion`) is hidden from the
            warped source, darkened by a learned shade and synthesised by the decoder, which is told where it is
            (instead of lips or teeth stretched into the gap).
        image_warp: ``bilinear`` or ``bicubic`` sampling of the source image by the final flow (the features are
            always sampled bilinearly); bicubic keeps more of the photo's fine texture.
        background_plate: where the occlusion map says the warped source is hidden, start from a background plate
            (the source with its person painted out, made on the host: :func:`enliven.preprocess.person
            .background_plate`) instead of the warped source: what a body leaves behind when it moves is background,
            not a second copy of the body.
        layered_parts: a body model's blend candidate lays the parts over each other instead of blending their
            motions (:func:`enliven.models.lite.body.layer_parts`): each part carries the pixels it owns in the
            source (near its bone and on the person, by MediaPipe's selfie segmentation), the front one where two
            meet, so a limb moves whole and leaves nothing of itself behind. Needs ``background_plate``: the plate
            delivers the person's mask as a fourth channel.
    """

    family: ClassVar[str] = "lite"
    image_size: int = 256
    num_channels: int = 3
    keypoints: str = "face_mesh"
    landmarks: str = "contour_and_nose"
    num_kp: int = 20
    motion_size: int = 64
    kernel_sigmas: tuple[float, ...] = (0.04, 0.12)
    motion_expansion: int = 32
    piecewise: bool = True
    piecewise_landmarks: str = "all"
    piecewise_stride: int = 2
    candidate_stride: int = 1
    residual_flow: bool = False
    face_margin: float | None = 0.05
    fine_regions: bool = True
    channels: tuple[int, ...] = (32, 64)
    num_bottleneck_blocks: int = 2
    num_refine_blocks: int = 1
    mouth_interior: bool = False
    image_warp: str = "bilinear"
    background_plate: bool = False
    layered_parts: bool = False

    def __post_init__(self) -> None:
        if self.keypoints not in ("face_mesh", "pose", "learned"):
            raise ConfigError(
                f"'model_params.common_params.keypoints' must be face_mesh, pose or learned, got {self.keypoints!r}."
            )
        if self.keypoints == "pose" and (self.piecewise or self.mouth_interior):
            raise ConfigError(
                "a body model (keypoints: pose) has no face mesh: set motion_params piecewise: false and "
                "generator_params mouth_interior: false."
            )
        if self.layered_parts and (self.keypoints != "pose" or not self.background_plate):
            raise ConfigError(
                "'model_params.motion_params.layered_parts' lays a body's parts over each other: it needs "
                "keypoints: pose and generator_params background_plate: true."
            )
        if not is_int(self.num_kp) or self.num_kp < 3:
            raise ConfigError(f"'model_params.common_params.num_kp' must be an integer >= 3, got {self.num_kp!r}.")
        for key, subset in (("common_params.landmarks", self.landmarks),
                            ("motion_params.piecewise_landmarks", self.piecewise_landmarks)):  # fmt: skip
            if subset not in LANDMARK_SUBSETS:
                raise ConfigError(f"'model_params.{key}' must be one of {', '.join(LANDMARK_SUBSETS)}, got {subset!r}.")
        if not is_int(self.piecewise_stride) or self.piecewise_stride < 1 or self.motion_size % self.piecewise_stride:
            raise ConfigError(
                f"'model_params.motion_params.piecewise_stride' must be a positive integer dividing motion_params.size "
                f"{self.motion_size}, got {self.piecewise_stride!r}."
            )
        if not is_int(self.candidate_stride) or self.candidate_stride < 1 or self.motion_size % self.candidate_stride:
            raise ConfigError(
                f"'model_params.motion_params.candidate_stride' must be a positive integer dividing motion_params.size "
                f"{self.motion_size}, got {self.candidate_stride!r}."
            )
        if self.face_margin is not None and not (is_number(self.face_margin) and 0 <= self.face_margin < 0.5):
            raise ConfigError(
                "'model_params.motion_params.face_margin' must be a number in [0, 0.5) or null, "
                f"got {self.face_margin!r}."
            )
        if not self.kernel_sigmas or not all(is_number(s) and s > 0 for s in self.kernel_sigmas):
            raise ConfigError(f"'kernel_sigmas' must be positive numbers, got {self.kernel_sigmas!r}.")
        if not self.channels or not all(is_int(c) and c > 0 for c in self.channels):
            raise ConfigError(f"'generator_params.channels' must be positive integers, not {self.channels}.")
        if self.mouth_interior and self.keypoints != "face_mesh":
            raise ConfigError("'model_params.generator_params.mouth_interior' needs keypoints: face_mesh (the lips).")
        if self.image_warp not in ("bilinear", "bicubic"):
            raise ConfigError(
                f"'model_params.generator_params.image_warp' must be bilinear or bicubic, got {self.image_warp!r}."
            )
        if not is_int(self.num_refine_blocks) or self.num_refine_blocks < 1:
            raise ConfigError(
                "'model_params.generator_params.num_refine_blocks' must be an integer >= 1, "
                f"got {self.num_refine_blocks!r}."
            )
        levels = len(self.channels)
        if self.motion_size * 2**levels != self.image_size:
            raise ConfigError(
                f"the generator's lowest resolution (image_size {self.image_size} halved {levels} times) must equal "
                f"motion_params.size {self.motion_size}; change one of them."
            )
        if self.motion_size % 8:
            raise ConfigError(f"'motion_params.size' must be a multiple of 8, got {self.motion_size}.")

    @property
    def landmark_indices(self) -> tuple[int, ...]:
        """Indices into the 468 face-mesh points of the landmarks that drive the model."""
        return LANDMARK_SUBSETS[self.landmarks]

    @property
    def piecewise_indices(self) -> tuple[int, ...]:
        """Indices into the 468 face-mesh points of the piecewise-affine candidate's mesh."""
        return LANDMARK_SUBSETS[self.piecewise_landmarks]

    @classmethod
    def from_yaml_dict(cls, data: Mapping[str, Any]) -> LiteConfig:
        """Read the YAML layout of the module docstring (unknown keys are errors)."""
        params = section(data, "model_params")
        check_keys(params, "model_params", required=("family",),
                   optional=("common_params", "motion_params", "generator_params"))  # fmt: skip
        d = cls()
        common = params.get("common_params") or {}
        motion = params.get("motion_params") or {}
        gen = params.get("generator_params") or {}
        check_keys(common, "model_params.common_params", optional=("num_channels", "keypoints", "landmarks", "num_kp"))
        check_keys(motion, "model_params.motion_params",
                   optional=("size", "kernel_sigmas", "block_expansion", "piecewise", "piecewise_landmarks",
                             "piecewise_stride", "candidate_stride", "residual_flow", "face_margin",
                             "fine_regions", "layered_parts"))  # fmt: skip
        check_keys(gen, "model_params.generator_params",
                   optional=("channels", "num_bottleneck_blocks", "num_refine_blocks", "mouth_interior",
                             "image_warp", "background_plate"))  # fmt: skip
        positive = (lambda v: is_number(v) and v > 0), "positive numbers"
        return cls(
            image_size=image_size(data),
            num_channels=get_int(common, "num_channels", "model_params.common_params", d.num_channels, minimum=1),
            keypoints=str(common.get("keypoints", d.keypoints)),
            landmarks=str(common.get("landmarks", d.landmarks)),
            num_kp=get_int(common, "num_kp", "model_params.common_params", d.num_kp, minimum=3),
            motion_size=get_int(motion, "size", "model_params.motion_params", d.motion_size, minimum=8),
            kernel_sigmas=tuple(
                float(s)
                for s in get_list(
                    motion, "kernel_sigmas", "model_params.motion_params", *positive, default=d.kernel_sigmas
                )  # fmt: skip
            ),
            motion_expansion=get_int(motion, "block_expansion", "model_params.motion_params", d.motion_expansion, 1),
            piecewise=get_bool(motion, "piecewise", "model_params.motion_params", d.piecewise),
            piecewise_landmarks=str(motion.get("piecewise_landmarks", d.piecewise_landmarks)),
            piecewise_stride=get_int(motion, "piecewise_stride", "model_params.motion_params", d.piecewise_stride, 1),
            candidate_stride=get_int(motion, "candidate_stride", "model_params.motion_params", d.candidate_stride, 1),
            residual_flow=get_bool(motion, "residual_flow", "model_params.motion_params", d.residual_flow),
            face_margin=motion.get("face_margin", d.face_margin),
            fine_regions=get_bool(motion, "fine_regions", "model_params.motion_params", d.fine_regions),
            layered_parts=get_bool(motion, "layered_parts", "model_params.motion_params", d.layered_parts),
            channels=get_list(
                gen, "channels", "model_params.generator_params", is_int, "positive integers", default=d.channels
            ),  # fmt: skip
            num_bottleneck_blocks=get_int(
                gen, "num_bottleneck_blocks", "model_params.generator_params", d.num_bottleneck_blocks
            ),  # fmt: skip
            num_refine_blocks=get_int(
                gen, "num_refine_blocks", "model_params.generator_params", d.num_refine_blocks, minimum=1
            ),  # fmt: skip
            mouth_interior=get_bool(gen, "mouth_interior", "model_params.generator_params", d.mouth_interior),
            image_warp=str(gen.get("image_warp", d.image_warp)),
            background_plate=get_bool(gen, "background_plate", "model_params.generator_params", d.background_plate),
        )

    def to_yaml_dict(self) -> dict[str, Any]:
        """The YAML layout of the module docstring, every key written."""
        return {
            "dataset_params": {"frame_shape": [self.image_size, self.image_size, self.num_channels]},
            "model_params": {
                "family": "lite",
                "common_params": {
                    "num_channels": self.num_channels,
                    "keypoints": self.keypoints,
                    **({"landmarks": self.landmarks} if self.keypoints == "face_mesh" else {}),
                    **({"num_kp": self.num_kp} if self.keypoints == "learned" else {}),
                },
                "motion_params": {
                    "size": self.motion_size,
                    "kernel_sigmas": list(self.kernel_sigmas),
                    "block_expansion": self.motion_expansion,
                    "piecewise": self.piecewise,
                    "piecewise_landmarks": self.piecewise_landmarks,
                    "piecewise_stride": self.piecewise_stride,
                    "candidate_stride": self.candidate_stride,
                    "residual_flow": self.residual_flow,
                    "face_margin": self.face_margin,
                    "fine_regions": self.fine_regions,
                    "layered_parts": self.layered_parts,
                },
                "generator_params": {
                    "channels": list(self.channels),
                    "num_bottleneck_blocks": self.num_bottleneck_blocks,
                    "num_refine_blocks": self.num_refine_blocks,
                    "mouth_interior": self.mouth_interior,
                    "image_warp": self.image_warp,
                    "background_plate": self.background_plate,
                },
            },
        }


#: enliven-lite's (the default, ``configs/lite-faces.yaml``, release 1.1): the defaults, but the source sampled
#: bicubically, which keeps the photo's fine texture (0.89 of the real frames' Laplacian energy against 0.65,
#: validation clips; its weights were trained with bilinear sampling, which scored L1 0.0302 against 0.0306), and the
#: candidate flows computed on 32 x 32 (5.8 ms a frame less; the same validation scores within 0.005).
LITE_1 = LiteConfig(image_warp="bicubic", candidate_stride=2)
#: enliven-lite 2's architecture (``--model enliven-lite-2``, ``configs/lite2-faces.yaml``): the mouth's inside
#: synthesised, a wider decoder with two refinement blocks per level, bicubic sampling of the source.
LITE_2 = LiteConfig(channels=(48, 96), num_refine_blocks=2, mouth_interior=True, image_warp="bicubic")
#: enliven-any (``--model enliven-any``, the generic model: animals, cartoons, drawings, objects): 10 keypoints learned
#: without supervision move the same generator (``configs/lite-any.yaml``).
LITE_ANY = LiteConfig(keypoints="learned", num_kp=10, kernel_sigmas=(0.08, 0.2), piecewise=False, face_margin=None)
#: enliven-body (``--model enliven-body``, people): MediaPipe's 33 pose landmarks move the body's parts, the same
#: generator mixes their motions, predicts occlusion and fills in (``configs/lite-body.yaml``).
LITE_BODY = LiteConfig(keypoints="pose", piecewise=False, face_margin=0.02, background_plate=True)
