"""Loss configuration and the image losses of self-supervised motion transfer training.

Reconstruction (``perceptual`` in :class:`LossConfig`) compares the prediction with the driving frame over an image
pyramid (the authors' ``scales``, band-limited with :class:`SeparableAntiAlias`):

* ``"vgg19"`` (the authors' loss): L1 between VGG-19 activations, ``sum_s sum_i w_i |V_i(P_s x) - V_i(P_s y)|``,
  weights ``loss_weights.perceptual``. Needs ``vgg19_weights``: a torchvision vgg19 state_dict file (none can be
  downloaded here).
* ``"offline"`` (the default when no VGG-19 file is given): pixel L1 over the same pyramid (weight ``l1`` per scale)
  plus ``ms_ssim * (1 - MS-SSIM)`` at full resolution, and, when a discriminator exists, its feature-matching loss
  (``loss_weights.feature_matching``): the discriminator is then trained even with ``generator_gan: 0`` so that its
  features stand in for VGG's learned ones. Without pretrained features this is the usual substitute (L1 keeps
  colours and low frequencies, MS-SSIM local structure and contrast, feature matching texture); its effect on
  quality is measured by the training runs, not assumed.

GAN losses: LSGAN (the authors') or hinge, on the multi-scale patch discriminator's score maps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enliven.config._validate import REQUIRED, check_keys, get_int, get_list, get_number, is_number, section
from enliven.config.fomm import FommDiscriminatorConfig
from enliven.errors import ConfigError
from enliven.train.equivariance import TransformParams, float32
from enliven.train.vgg import Vgg19Features

PerceptualKind = Literal["vgg19", "offline"]
GanKind = Literal["lsgan", "hinge"]

_WEIGHT_KEYS = ("generator_gan", "discriminator_gan", "feature_matching", "perceptual", "equivariance_value",
                "equivariance_jacobian", "warp_loss", "bg", "correction", "landmark_flow",
                "mouth_region")  # fmt: skip
_EXTRA_KEYS = ("perceptual", "vgg19_weights", "gan", "l1", "ms_ssim", "discriminator")
#: The discriminator trained with TPSMM (whose configs have none) when a GAN or feature matching is asked for.
DEFAULT_DISCRIMINATOR = FommDiscriminatorConfig(
    scales=(1,), block_expansion=32, max_features=512, num_blocks=4, sn=True
)


@dataclass(frozen=True)
class LossConfig:
    """Every loss setting of a training run; defaults are the published vox-256 configs' (GAN weights: none).

    Read from ``train_params`` by :meth:`from_dict`: ``scales``, ``transform_params``, ``loss_weights`` (keys
    ``generator_gan``, ``discriminator_gan``, ``feature_matching``, ``perceptual``, ``equivariance_value``,
    ``equivariance_jacobian``, ``warp_loss``, ``bg``), TPSMM's ``bg_start`` and ``dropout_*``, and our extras
    under ``loss`` (``perceptual``, ``vgg19_weights``, ``gan``, ``l1``, ``ms_ssim``, ``discriminator``).

    Attributes:
        scales: image pyramid scales of the reconstruction loss.
        transform: random warp spread of the equivariance losses.
        perceptual_weights: weight of each VGG-19 activation (up to 5; ``"vgg19"`` only).
        equivariance_value, equivariance_jacobian, warp, bg: loss weights (``warp``/``bg`` TPSMM only).
        correction: enliven-lite only: weight of the mean absolute correction its decoder adds to the warped source,
            a sparsity prior (the decoder changes only what it improves; without it, an under-trained decoder adds
            noise everywhere). ``loss_weights.correction`` in the YAML.
        landmark_flow: enliven-lite only: weight of the mean distance (normalised units) between where the motion
            sends each of the driving frame's 468 face-mesh landmarks and where that landmark is in the source
            (pixel losses barely see a lip edge off by a pixel; AKD does). ``loss_weights.landmark_flow``.
        mouth_region: enliven-lite only: weight of the mean absolute error inside the driving frame's outer lip line
            (grown by 1/32 of the side), on top of the whole-frame L1: the mouth is a few percent of the frame, and
            what moves most when a face talks. ``loss_weights.mouth_region``.
        generator_gan, discriminator_gan: GAN weights of the generator and discriminator steps.
        feature_matching: weight of each discriminator block's features (empty: no feature matching).
        bg_start: first epoch of TPSMM's background motion (and its loss).
        dropout_epoch, dropout_maxp, dropout_startp, dropout_inc_epoch: TPSMM's TPS dropout schedule.
        perceptual: reconstruction loss kind (see module docstring).
        vgg19_weights: path of a torchvision vgg19 state_dict, for ``"vgg19"``.
        gan: ``"lsgan"`` or ``"hinge"``.
        l1, ms_ssim: weights of the offline reconstruction terms.
        discriminator: discriminator architecture for models whose config has none (TPSMM).
    """

    scales: tuple[float, ...] = (1, 0.5, 0.25, 0.125)
    transform: TransformParams = field(default_factory=TransformParams)
    perceptual_weights: tuple[float, ...] = (10.0,) * 5
    equivariance_value: float = 10.0
    equivariance_jacobian: float = 10.0
    warp: float = 10.0
    bg: float = 10.0
    correction: float = 0.0
    landmark_flow: float = 0.0
    mouth_region: float = 0.0
    generator_gan: float = 0.0
    discriminator_gan: float = 1.0
    feature_matching: tuple[float, ...] = ()
    bg_start: int = 10
    dropout_epoch: int = 35
    dropout_maxp: float = 0.3
    dropout_startp: float = 0.1
    dropout_inc_epoch: int = 10
    perceptual: PerceptualKind = "offline"
    vgg19_weights: str | None = None
    gan: GanKind = "lsgan"
    l1: float = 10.0
    ms_ssim: float = 10.0
    discriminator: FommDiscriminatorConfig | None = None

    @property
    def uses_discriminator(self) -> bool:
        """A discriminator is trained: a generator GAN loss, or feature matching standing in for VGG (offline)."""
        return self.generator_gan > 0 or (self.perceptual == "offline" and any(w > 0 for w in self.feature_matching))

    def dropout_p(self, epoch: int) -> float:
        """TPSMM's TPS dropout probability at ``epoch``: linear from ``dropout_startp`` up to ``dropout_maxp``
        over ``dropout_inc_epoch`` epochs, then 0 from ``dropout_epoch`` on."""
        if epoch >= self.dropout_epoch:
            return 0.0
        return min(epoch / self.dropout_inc_epoch * self.dropout_maxp + self.dropout_startp, self.dropout_maxp)

    @classmethod
    def from_dict(cls, train_params: Mapping[str, Any]) -> LossConfig:
        """Read the loss settings of an authors'-format ``train_params`` mapping (other keys are ignored).

        Raises:
            ConfigError: a loss key is unknown or has a wrong type or value.
        """
        where = "train_params"
        if not isinstance(train_params, Mapping):
            raise ConfigError(f"'{where}' must be a mapping, got {type(train_params).__name__}; fix the config.")
        d = cls()
        num_list = (lambda v: is_number(v) and v >= 0), "non-negative numbers"

        def weights(key: str, default: tuple[float, ...]) -> tuple[float, ...]:
            return tuple(float(w) for w in get_list(lw, key, f"{where}.loss_weights", *num_list, default=default))

        def weight(key: str, default: float) -> float:
            return _non_negative(lw, key, f"{where}.loss_weights", default)

        lw = section(train_params, "loss_weights", where) if "loss_weights" in train_params else {}
        check_keys(lw, f"{where}.loss_weights", optional=_WEIGHT_KEYS)
        extra = section(train_params, "loss", where) if "loss" in train_params else {}
        check_keys(extra, f"{where}.loss", optional=_EXTRA_KEYS)
        vgg_path = extra.get("vgg19_weights")
        if vgg_path is not None and not isinstance(vgg_path, str):
            raise ConfigError(f"'{where}.loss.vgg19_weights' must be a file path, got {vgg_path!r}; fix the config.")
        perceptual = extra.get("perceptual", "vgg19" if vgg_path else "offline")
        if perceptual not in ("vgg19", "offline"):
            raise ConfigError(f"'{where}.loss.perceptual' must be 'vgg19' or 'offline', got {perceptual!r}.")
        if perceptual == "vgg19" and not vgg_path:
            raise ConfigError(
                f"'{where}.loss.perceptual: vgg19' needs '{where}.loss.vgg19_weights' (a torchvision vgg19 file)."
            )
        gan = extra.get("gan", "lsgan")
        if gan not in ("lsgan", "hinge"):
            raise ConfigError(f"'{where}.loss.gan' must be 'lsgan' or 'hinge', got {gan!r}.")
        perceptual_weights = weights("perceptual", d.perceptual_weights)
        if len(perceptual_weights) > 5:
            raise ConfigError(f"'{where}.loss_weights.perceptual' has {len(perceptual_weights)} weights; VGG has 5.")
        return cls(
            scales=get_list(train_params, "scales", where, _is_scale, "scales 1 / n (n = 1, 2, ...)", default=d.scales),
            transform=_read_transform(train_params, where),
            perceptual_weights=perceptual_weights,
            equivariance_value=weight("equivariance_value", d.equivariance_value),
            equivariance_jacobian=weight("equivariance_jacobian", d.equivariance_jacobian),
            warp=weight("warp_loss", d.warp),
            bg=weight("bg", d.bg),
            correction=weight("correction", d.correction),
            landmark_flow=weight("landmark_flow", d.landmark_flow),
            mouth_region=weight("mouth_region", d.mouth_region),
            generator_gan=weight("generator_gan", d.generator_gan),
            discriminator_gan=weight("discriminator_gan", d.discriminator_gan),
            feature_matching=weights("feature_matching", d.feature_matching),
            bg_start=get_int(train_params, "bg_start", where, d.bg_start),
            dropout_epoch=get_int(train_params, "dropout_epoch", where, d.dropout_epoch),
            dropout_maxp=_non_negative(train_params, "dropout_maxp", where, d.dropout_maxp, high=1),
            dropout_startp=_non_negative(train_params, "dropout_startp", where, d.dropout_startp, high=1),
            dropout_inc_epoch=get_int(train_params, "dropout_inc_epoch", where, d.dropout_inc_epoch, minimum=1),
            perceptual=perceptual,
            vgg19_weights=vgg_path,
            gan=gan,
            l1=_non_negative(extra, "l1", f"{where}.loss", d.l1),
            ms_ssim=_non_negative(extra, "ms_ssim", f"{where}.loss", d.ms_ssim),
            discriminator=_read_discriminator(extra, f"{where}.loss"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``train_params`` entries :meth:`from_dict` reads, resolved (for checkpoints)."""
        loss: dict[str, Any] = {"perceptual": self.perceptual, "gan": self.gan, "l1": self.l1, "ms_ssim": self.ms_ssim}
        if self.vgg19_weights:
            loss["vgg19_weights"] = self.vgg19_weights
        if self.discriminator is not None:
            loss["discriminator"] = {**asdict(self.discriminator), "scales": list(self.discriminator.scales)}
        transform = {k: v for k, v in asdict(self.transform).items() if v is not None}
        return {
            "scales": list(self.scales),
            "transform_params": transform,
            "loss_weights": {
                "generator_gan": self.generator_gan,
                "discriminator_gan": self.discriminator_gan,
                "feature_matching": list(self.feature_matching),
                "perceptual": list(self.perceptual_weights),
                "equivariance_value": self.equivariance_value,
                "equivariance_jacobian": self.equivariance_jacobian,
                "warp_loss": self.warp,
                "bg": self.bg,
                "correction": self.correction,
                "landmark_flow": self.landmark_flow,
                "mouth_region": self.mouth_region,
            },
            **{k: getattr(self, k) for k in ("bg_start", "dropout_epoch", "dropout_maxp", "dropout_startp")},
            "dropout_inc_epoch": self.dropout_inc_epoch,
            "loss": loss,
        }


def _is_scale(value: Any) -> bool:
    return is_number(value) and 0 < value <= 1 and abs(1 / value - round(1 / value)) < 1e-6


def _non_negative(
    data: Mapping[str, Any], key: str, parent: str, default: Any = REQUIRED, high: float | None = None
) -> float:
    value = get_number(data, key, parent, default)
    if value < 0 or (high is not None and value > high):
        bound = f"in [0, {high}]" if high is not None else ">= 0"
        raise ConfigError(f"'{parent}.{key}' must be a number {bound}, got {value!r}; fix the config.")
    return float(value)


def _read_transform(train_params: Mapping[str, Any], where: str) -> TransformParams:
    if "transform_params" not in train_params:
        return TransformParams()
    where = f"{where}.transform_params"
    tp = section(train_params, "transform_params", where.rsplit(".", 1)[0])
    check_keys(tp, where, required=("sigma_affine",), optional=("sigma_tps", "points_tps"))
    has_tps = "sigma_tps" in tp and "points_tps" in tp
    return TransformParams(
        sigma_affine=_non_negative(tp, "sigma_affine", where),
        sigma_tps=_non_negative(tp, "sigma_tps", where) if has_tps else None,
        points_tps=get_int(tp, "points_tps", where, minimum=2) if has_tps else None,
    )


def _read_discriminator(extra: Mapping[str, Any], where: str) -> FommDiscriminatorConfig | None:
    if "discriminator" not in extra:
        return None
    params = dict(section(extra, "discriminator", where))
    params["scales"] = tuple(params.get("scales", DEFAULT_DISCRIMINATOR.scales))
    try:
        return FommDiscriminatorConfig(**{**asdict(DEFAULT_DISCRIMINATOR), **params})
    except TypeError:
        raise ConfigError(
            f"'{where}.discriminator' has an unknown key; use the keys of FOMM's discriminator_params."
        ) from None


# ----------------------------------------------------------------------------------------------------------------
# GAN and feature matching


def discriminator_gan_loss(real: Tensor, fake: Tensor, kind: GanKind = "lsgan") -> Tensor:
    """Discriminator loss of one scale's patch scores (``B x 1 x h x w``), averaged over patches.

    LSGAN: ``(1 - D(real))^2 + D(fake)^2``; hinge: ``relu(1 - D(real)) + relu(1 + D(fake))``.
    """
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    return ((1 - real) ** 2 + fake**2).mean()


def generator_gan_loss(fake: Tensor, kind: GanKind = "lsgan") -> Tensor:
    """Generator loss of one scale's patch scores: LSGAN ``(1 - D(fake))^2``, hinge ``-D(fake)``."""
    if kind == "hinge":
        return -fake.mean()
    return ((1 - fake) ** 2).mean()


def feature_matching_loss(real: Sequence[Tensor], fake: Sequence[Tensor], weights: Sequence[float]) -> Tensor:
    """``sum_i w_i mean|real_i - fake_i|`` over one scale's discriminator blocks (``real`` is a fixed target)."""
    total = fake[0].new_zeros((), dtype=torch.float32)
    for r, f, w in zip(real, fake, weights, strict=False):
        if w:
            total = total + w * (r.detach() - f).abs().mean().float()
    return total


# ----------------------------------------------------------------------------------------------------------------
# MS-SSIM

_MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang, Simoncelli & Bovik (2003)


def _gaussian_blur_valid(x: Tensor, size: int, sigma: float) -> Tensor:
    coords = torch.arange(size, dtype=x.dtype, device=x.device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = (g / g.sum()).repeat(x.shape[1], 1, 1)
    x = F.conv2d(x, g.unsqueeze(2), groups=x.shape[1])
    return F.conv2d(x, g.unsqueeze(3), groups=x.shape[1])


def _ssim_terms(x: Tensor, y: Tensor, size: int, sigma: float) -> tuple[Tensor, Tensor]:
    """Per-image mean SSIM and mean contrast-structure term ``cs`` (each ``B``), data range 1."""
    c1, c2 = 0.01**2, 0.03**2
    # One blur call for all five maps: the same arithmetic, a fifth of the calls.
    blurred = _gaussian_blur_valid(torch.cat([x, y, x * x, y * y, x * y], dim=1), size, sigma)
    mu_x, mu_y, xx, yy, xy = blurred.chunk(5, dim=1)
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return (luminance * cs).flatten(1).mean(1), cs.flatten(1).mean(1)


def ms_ssim(x: Tensor, y: Tensor, window_size: int = 11, sigma: float = 1.5, max_levels: int = 5) -> Tensor:
    """Multi-scale SSIM (Wang et al. 2003) of ``B x C x H x W`` images in ``[0, 1]``; returns ``B`` values in
    ``(0, 1]`` (1 for identical images). Differentiable, computed in float32 even under autocast.

    Small images use fewer levels (as many as keep the coarsest side >= the window, weights renormalised) and a
    window no larger than the image. Negative ``cs``/SSIM values are clamped to a small positive number so that
    their fractional powers stay defined.
    """
    with float32(x):
        x, y = x.float(), y.float()
        side = min(x.shape[-2:])
        window_size = min(window_size, side - (1 - side % 2))
        levels = 1
        while levels < max_levels and side // 2**levels >= window_size:
            levels += 1
        weights = torch.tensor(_MS_SSIM_WEIGHTS[:levels], device=x.device)
        weights = weights / weights.sum()
        values = []
        for level in range(levels):
            ssim, cs = _ssim_terms(x, y, window_size, sigma)
            values.append(ssim if level == levels - 1 else cs)
            if level < levels - 1:
                x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        stacked = torch.stack(values, dim=1).clamp_min(1e-6)
        return (stacked**weights).prod(dim=1)


# ----------------------------------------------------------------------------------------------------------------
# Reconstruction


class SeparableAntiAlias(nn.Module):
    """The values of :class:`~enliven.models.blocks.AntiAliasInterpolation2d` for an integer ``1 / scale``, computed
    as two strided 1-D passes: the 2-D Gaussian is separable and only every ``1 / scale``-th output is kept, so the
    work drops from ``k^2`` taps per input pixel to about ``2 k / s`` (22x less at scale 1/8, where ``k = 29``).

    The models keep their own blur (their reference outputs depend on its exact rounding); training losses use this.
    """

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        step = round(1 / scale)
        if scale != 1.0 and abs(1 / scale - step) > 1e-6:
            raise ValueError(f"pyramid scales must be 1 / an integer, got {scale}")
        sigma = (1 / scale - 1) / 2
        kernel_size = 2 * round(sigma * 4) + 1
        self.ka = kernel_size // 2
        self.kb = self.ka - 1 if kernel_size % 2 == 0 else self.ka
        coords = torch.arange(kernel_size, dtype=torch.float32) - (kernel_size - 1) / 2
        g = torch.exp(-(coords**2) / (2 * sigma**2)) if sigma > 0 else torch.ones(kernel_size)
        g = (g / g.sum()).repeat(channels, 1, 1)  # C x 1 x k
        self.register_buffer("row", g.unsqueeze(2), persistent=False)  # C x 1 x 1 x k
        self.register_buffer("column", g.unsqueeze(3), persistent=False)  # C x 1 x k x 1
        self.channels, self.step, self.scale = channels, step, scale

    def forward(self, x: Tensor) -> Tensor:
        if self.scale == 1.0:
            return x
        out = F.pad(x, (self.ka, self.kb, self.ka, self.kb))
        out = F.conv2d(out, self.row.to(out.dtype), stride=(1, self.step), groups=self.channels)
        return F.conv2d(out, self.column.to(out.dtype), stride=(self.step, 1), groups=self.channels)


class ImagePyramid(nn.Module):
    """Band-limited copies of an image at several scales (the authors' ``ImagePyramide``, computed faster).

    Args:
        scales: the scales in ``(0, 1]``, each ``1 / an integer``, in output order.
        num_channels: image channels.
    """

    def __init__(self, scales: Sequence[float], num_channels: int) -> None:
        super().__init__()
        self.scales = tuple(scales)
        self.downs = nn.ModuleList(SeparableAntiAlias(num_channels, s) for s in self.scales)

    def forward(self, image: Tensor) -> list[Tensor]:
        """``B x C x H x W`` -> one ``B x C x H / n x W / n`` batch per scale ``1 / n``."""
        return [down(image) for down in self.downs]


class ReconstructionLoss(nn.Module):
    """Prediction vs driving frame: VGG-19 pyramid perceptual loss, or the offline L1 + MS-SSIM pyramid loss.

    Args:
        config: the loss settings (``perceptual`` chooses the kind).
        num_channels: image channels.
        vgg: the frozen feature extractor, required for ``perceptual == "vgg19"``.
    """

    def __init__(self, config: LossConfig, num_channels: int, vgg: Vgg19Features | None = None) -> None:
        super().__init__()
        if config.perceptual == "vgg19" and vgg is None:
            raise ValueError("the vgg19 perceptual loss needs a Vgg19Features (see load_vgg19)")
        self.config = config
        self.pyramid = ImagePyramid(config.scales, num_channels)
        self.vgg = vgg if config.perceptual == "vgg19" else None

    def forward(self, prediction: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Weighted float32 scalar losses by name (``perceptual``, or ``l1`` and ``ms_ssim``).

        Args:
            prediction: ``B x C x H x W`` generated frames in ``[0, 1]``.
            target: ``B x C x H x W`` driving frames in ``[0, 1]`` (no gradient flows to them).
        """
        cfg = self.config
        predicted = self.pyramid(prediction)
        with torch.no_grad():
            real = self.pyramid(target)
        if self.vgg is not None:
            total = prediction.new_zeros((), dtype=torch.float32)
            for x, y in zip(predicted, real, strict=True):
                with torch.no_grad():
                    y_features = self.vgg(y)
                for w, a, b in zip(cfg.perceptual_weights, self.vgg(x), y_features, strict=False):
                    if w:
                        total = total + w * (a - b).abs().mean().float()
            return {"perceptual": total}
        parts: dict[str, Tensor] = {}
        if cfg.l1:
            l1 = [(x.float() - y.float()).abs().mean() for x, y in zip(predicted, real, strict=True)]
            parts["l1"] = cfg.l1 * torch.stack(l1).sum()
        if cfg.ms_ssim:
            parts["ms_ssim"] = cfg.ms_ssim * (1 - ms_ssim(prediction, target).mean())
        return parts
