"""Training objectives: loss config, equivariance warps, MS-SSIM, VGG-19 layout, GAN losses, FOMM/TPSMM steps."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

from conftest import TINY_SIDE, tiny_fomm_document, tiny_tpsmm_document
from enliven.config import config_from_dict
from enliven.errors import ConfigError
from enliven.geometry import make_coordinate_grid
from enliven.train import LossConfig, RandomTransform, TransformParams, Vgg19Features, build_objectives, load_vgg19
from enliven.train.equivariance import equivariance_jacobian_loss, equivariance_value_loss
from enliven.train.families import FommObjective, TpsmmObjective
from enliven.train.losses import (
    ReconstructionLoss,
    discriminator_gan_loss,
    feature_matching_loss,
    generator_gan_loss,
    ms_ssim,
)
from enliven.train.objectives import unwrap_discriminator

SIZE = TINY_SIDE

FOMM = tiny_fomm_document(discriminator={"scales": [1, 0.5], "block_expansion": 8, "max_features": 16, "num_blocks": 3})
TPSMM = tiny_tpsmm_document(dense_motion={"num_blocks": 2, "scale_factor": 0.25})
GAN = {"loss_weights": {"generator_gan": 1, "feature_matching": [10, 10, 10]}}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # These tiny networks gain nothing from intra-op threads, and on a busy 2-core machine the OpenMP workers of
    # two threads contend with other processes and make each step ~50x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _pair(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, 8, 8, generator=g)
    source = torch.nn.functional.interpolate(base.expand(2, 3, 8, 8), size=(SIZE, SIZE), mode="bilinear")
    return source, source.roll(shifts=(3, -2), dims=(2, 3))


def _fomm(use_kp: bool = False, **train: object):
    config = copy.deepcopy(FOMM)
    config["model_params"]["discriminator_params"]["use_kp"] = use_kp
    return build_objectives(config_from_dict(config), LossConfig.from_dict(train))


def _grads_missing(objective) -> list[str]:
    return [
        f"{net}.{name}"
        for net, module in objective.networks().items()
        for name, p in module.named_parameters()
        if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())
    ]


# ---------------------------------------------------------------------------------------------------- config


def test_loss_config_reads_authors_train_params(reference_dir: Path) -> None:
    fomm = yaml.safe_load((reference_dir / "fomm-tiny" / "config.yaml").read_text())["train_params"]
    tpsmm = yaml.safe_load((reference_dir / "tpsmm-tiny" / "config.yaml").read_text())["train_params"]
    a, b = LossConfig.from_dict(fomm), LossConfig.from_dict(tpsmm)
    assert a.scales == (1, 0.5, 0.25, 0.125) and a.feature_matching == (10,) * 4 and a.generator_gan == 0
    assert a.transform == TransformParams(0.05, 0.005, 5) and a.perceptual == "offline" and a.gan == "lsgan"
    assert a.uses_discriminator  # feature matching stands in for VGG offline
    assert b.warp == 10 and b.bg == 10 and b.bg_start == 10 and not b.uses_discriminator
    assert LossConfig.from_dict(a.to_dict()) == a and LossConfig.from_dict(b.to_dict()) == b


def test_dropout_schedule_follows_the_authors() -> None:
    cfg = LossConfig()  # startp 0.1, maxp 0.3, inc 10 epochs, off from epoch 35
    assert cfg.dropout_p(0) == pytest.approx(0.1)
    assert cfg.dropout_p(5) == pytest.approx(0.25)
    assert cfg.dropout_p(20) == pytest.approx(0.3)
    assert cfg.dropout_p(35) == 0.0


@pytest.mark.parametrize(
    ("train", "needle"),
    [
        ({"loss_weights": {"percepual": [1]}}, "train_params.loss_weights.percepual"),
        ({"loss": {"perceptual": "vgg19"}}, "vgg19_weights"),
        ({"loss": {"gan": "wgan"}}, "train_params.loss.gan"),
        ({"loss_weights": {"bg": -1}}, "train_params.loss_weights.bg"),
        ({"transform_params": {"sigma_tps": 0.1}}, "sigma_affine"),
        ({"loss": {"discriminator": {"scale": [1]}}}, "train_params.loss.discriminator"),
    ],
)
def test_loss_config_errors_name_the_key(train: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        LossConfig.from_dict(train)


# ---------------------------------------------------------------------------------------------------- equivariance


@pytest.mark.parametrize("kernel", ["fomm", "tpsmm"])
def test_transform_jacobian_matches_autograd(kernel: str) -> None:
    torch.manual_seed(0)
    transform = RandomTransform.sample(3, TransformParams(0.1, 0.05, 4), kernel)  # type: ignore[arg-type]
    points = (torch.rand(3, 7, 2) * 2 - 1).requires_grad_(True)
    warped = transform.warp_coordinates(points)
    rows = [torch.autograd.grad(warped[..., i].sum(), points, retain_graph=True)[0] for i in range(2)]
    expected = torch.stack(rows, dim=-2)
    torch.testing.assert_close(transform.jacobian(points), expected, atol=1e-5, rtol=1e-4)


def test_identity_transform_gives_zero_equivariance_loss() -> None:
    torch.manual_seed(0)
    generator, _ = build_objectives(config_from_dict(FOMM), LossConfig())
    model = generator.model.eval()
    driving, _ = _pair()
    identity = RandomTransform.identity(2)
    torch.testing.assert_close(identity.transform_frame(driving), driving, atol=1e-5, rtol=0)
    with torch.no_grad():
        kp = model.detect_keypoints(driving)
        kp_t = model.detect_keypoints(identity.transform_frame(driving))
    assert equivariance_value_loss(kp.value, kp_t.value, identity) < 1e-5
    assert equivariance_jacobian_loss(kp.jacobian, kp_t.value, kp_t.jacobian, identity) < 1e-4


@pytest.mark.parametrize("kernel", ["fomm", "tpsmm"])
def test_warped_frame_agrees_with_warped_coordinates(kernel: str) -> None:
    """A blob at p in the frame lies at q in the warped frame with T(q) = p."""
    torch.manual_seed(1)
    size = 96
    grid = make_coordinate_grid((size, size))
    p = torch.tensor([0.2, -0.3])
    frame = torch.exp(-((grid - p) ** 2).sum(-1) / (2 * 0.05**2)).expand(2, 1, size, size)
    transform = RandomTransform.sample(2, TransformParams(0.05, 0.005, 5), kernel)  # type: ignore[arg-type]
    warped = transform.transform_frame(frame)[:, 0]
    weights = warped.flatten(1) / warped.flatten(1).sum(1, keepdim=True)
    q = weights @ grid.view(-1, 2)  # blob centroid in the warped frame, B x 2
    back = transform.warp_coordinates(q[:, None])[:, 0]
    torch.testing.assert_close(back, p.expand(2, 2), atol=2 / size, rtol=0)


# ---------------------------------------------------------------------------------------------------- image losses


def test_ms_ssim_is_one_for_identical_images_and_falls_with_noise() -> None:
    torch.manual_seed(0)
    image = torch.rand(2, 3, SIZE, SIZE)
    torch.testing.assert_close(ms_ssim(image, image), torch.ones(2), atol=1e-5, rtol=0)
    values = [ms_ssim(image, (image + s * torch.randn_like(image)).clamp(0, 1)).mean() for s in (0.02, 0.1, 0.3)]
    assert 1 > values[0] > values[1] > values[2] > 0
    noisy = (image + 0.1 * torch.randn_like(image)).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = ms_ssim(noisy, image).mean()
    assert value.dtype == torch.float32
    value.backward()
    assert torch.isfinite(noisy.grad).all() and noisy.grad.abs().sum() > 0
    assert ms_ssim(torch.rand(1, 3, 256, 256), torch.rand(1, 3, 256, 256)).shape == (1,)  # all five levels


def test_gan_loss_signs() -> None:
    ones, zeros = torch.ones(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    assert discriminator_gan_loss(ones, zeros, "lsgan") == 0 and discriminator_gan_loss(zeros, ones, "lsgan") == 2
    assert generator_gan_loss(ones, "lsgan") == 0 and generator_gan_loss(zeros, "lsgan") == 1
    assert discriminator_gan_loss(ones, -ones, "hinge") == 0 and discriminator_gan_loss(-ones, ones, "hinge") == 4
    hinge = [generator_gan_loss(v * ones, "hinge") for v in (2, 1, 0)]
    assert hinge[0] < hinge[1] < hinge[2]
    fm = feature_matching_loss([ones, ones], [zeros, ones], [10, 10])
    assert fm == 10


# ---------------------------------------------------------------------------------------------------- VGG-19


def test_vgg19_state_dict_names_are_torchvisions(tmp_path: Path) -> None:
    vgg = Vgg19Features()
    convs = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
    assert list(vgg.state_dict()) == [f"features.{i}.{k}" for i in convs for k in ("weight", "bias")]
    assert not any(p.requires_grad for p in vgg.parameters())
    state = {**vgg.state_dict(), "classifier.0.weight": torch.zeros(1), "classifier.0.bias": torch.zeros(1)}
    torch.save(state, tmp_path / "vgg19.pth")
    loaded = load_vgg19(tmp_path / "vgg19.pth")
    torch.testing.assert_close(loaded.features[34].weight, vgg.features[34].weight)
    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(ConfigError, match="not a torchvision vgg19"):
        load_vgg19(tmp_path / "bad.pth")
    with pytest.raises(ConfigError, match="does not exist"):
        load_vgg19(tmp_path / "missing.pth")


def test_vgg19_perceptual_loss_reaches_the_prediction(tmp_path: Path) -> None:
    torch.manual_seed(0)
    vgg = Vgg19Features()
    features = vgg(torch.rand(1, 3, 32, 32))
    assert [f.shape[1:] for f in features] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)]
    torch.save(vgg.state_dict(), tmp_path / "vgg19.pth")
    config = LossConfig.from_dict({"scales": [1, 0.5], "loss": {"vgg19_weights": str(tmp_path / "vgg19.pth")}})
    assert config.perceptual == "vgg19"
    loss = ReconstructionLoss(config, 3, load_vgg19(config.vgg19_weights))
    prediction = torch.rand(2, 3, 32, 32, requires_grad=True)
    parts = loss(prediction, torch.rand(2, 3, 32, 32))
    assert list(parts) == ["perceptual"] and parts["perceptual"] > 0
    parts["perceptual"].backward()
    assert prediction.grad.abs().sum() > 0
    generator, _ = build_objectives(config_from_dict(FOMM), config)
    assert not {id(p) for p in generator.reconstruction.vgg.parameters()} & {
        id(p) for p in generator.trainable_parameters()
    }


# ---------------------------------------------------------------------------------------------------- objectives


@pytest.mark.parametrize("use_kp", [False, True])
def test_fomm_step_with_discriminator(use_kp: bool) -> None:
    torch.manual_seed(0)
    generator, discriminator = _fomm(use_kp, **GAN)
    assert isinstance(generator, FommObjective) and discriminator is not None
    source, driving = _pair()
    out = generator(source, driving, discriminator=discriminator)
    expected = {"l1", "ms_ssim", "generator_gan", "feature_matching", "equivariance_value", "equivariance_jacobian"}
    assert set(out.parts) == expected and out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
    out.loss.backward()
    assert _grads_missing(generator) == []
    assert all(p.grad is None for p in discriminator.parameters())  # the generator step leaves D alone
    v = out.visuals
    assert v.prediction.shape == v.deformed.shape == (2, 3, SIZE, SIZE) and v.occlusion.shape == (2, 1, SIZE, SIZE)
    assert v.kp_driving.shape == (2, 4, 2) and not v.prediction.requires_grad
    d_out = discriminator(driving, v.prediction, v.kp_driving)
    assert set(d_out.parts) == {"discriminator_gan"}
    d_out.loss.backward()
    assert all(p.grad is not None for p in discriminator.parameters() if p.requires_grad)
    assert unwrap_discriminator(discriminator) is discriminator.discriminator


def test_fomm_step_without_discriminator_and_under_autocast() -> None:
    torch.manual_seed(0)
    generator, discriminator = _fomm(loss={"perceptual": "offline"}, loss_weights={"feature_matching": []})
    assert discriminator is None
    source, driving = _pair()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = generator(source, driving)
    assert "generator_gan" not in out.parts and out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
    out.loss.backward()
    assert _grads_missing(generator) == []


def test_discriminator_scales_must_match() -> None:
    generator, _ = _fomm(**GAN)
    _, other = build_objectives(
        config_from_dict({**FOMM, "model_params": {**FOMM["model_params"], "discriminator_params": {"scales": [1]}}}),
        LossConfig.from_dict(GAN),
    )
    with pytest.raises(ValueError, match="scales"):
        generator(*_pair(), discriminator=other)


def test_tpsmm_step_with_background_dropout_and_discriminator() -> None:
    torch.manual_seed(0)
    model_config = config_from_dict(TPSMM)
    generator, discriminator = build_objectives(model_config, LossConfig.from_dict({**GAN, "bg_start": 1}))
    assert isinstance(generator, TpsmmObjective) and discriminator is not None
    assert set(generator.networks()) == {"kp_detector", "dense_motion_network", "inpainting_network", "bg_predictor"}
    assert not any(p.requires_grad for p in generator.model.avd_network.parameters())
    source, driving = _pair()
    out = generator(source, driving, epoch=1, discriminator=discriminator)
    assert {"l1", "ms_ssim", "equivariance_value", "warp", "bg", "generator_gan", "feature_matching"} == set(out.parts)
    out.loss.backward()
    assert _grads_missing(generator) == []
    assert out.visuals.kp_source.shape == (2, 10, 2) and out.visuals.occlusion.shape == (2, 1, SIZE, SIZE)
    discriminator(driving, out.visuals.prediction).loss.backward()

    # Before bg_start: no background motion, so the bg predictor is left out; TPS dropout is active.
    generator.zero_grad(set_to_none=True)
    out = generator(source, driving, epoch=0)
    assert "bg" not in out.parts and "generator_gan" not in out.parts
    out.loss.backward()
    assert {name.split(".")[0] for name in _grads_missing(generator)} == {"bg_predictor"}


def test_tpsmm_trains_without_discriminator_by_default(reference_dir: Path) -> None:
    data = yaml.safe_load((reference_dir / "tpsmm-tiny" / "config.yaml").read_text())
    data["dataset_params"]["frame_shape"] = [SIZE, SIZE, 3]
    generator, discriminator = build_objectives(config_from_dict(data), LossConfig.from_dict(data["train_params"]))
    assert discriminator is None and generator.bg_predictor is not None


def test_optimisation_reduces_the_loss_on_a_fixed_pair() -> None:
    torch.manual_seed(0)
    generator, _ = _fomm(loss_weights={"equivariance_value": 0, "equivariance_jacobian": 0, "feature_matching": []})
    optimiser = torch.optim.Adam(generator.trainable_parameters(), lr=2e-3)
    source, driving = _pair()
    losses = []
    for _ in range(6):
        optimiser.zero_grad()
        loss = generator(source, driving).loss
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses


@pytest.mark.gpu
@pytest.mark.parametrize("family", ["fomm", "tpsmm"])
def test_cuda_amp_steps(family: str) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    device = torch.device("cuda")
    config = config_from_dict(FOMM if family == "fomm" else TPSMM)
    generator, discriminator = build_objectives(config, LossConfig.from_dict({**GAN, "bg_start": 0}))
    generator, discriminator = generator.to(device), discriminator.to(device)
    scaler = torch.amp.GradScaler("cuda")
    source, driving = (x.to(device) for x in _pair())
    with torch.autocast("cuda", dtype=torch.float16):
        out = generator(source, driving, epoch=1, discriminator=discriminator)
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss) and out.loss.device.type == "cuda"
    scaler.scale(out.loss).backward()
    assert _grads_missing(generator) == []
    with torch.autocast("cuda", dtype=torch.float16):
        d_out = discriminator(driving, out.visuals.prediction, out.visuals.kp_driving)
    scaler.scale(d_out.loss).backward()
    assert torch.isfinite(d_out.loss)
