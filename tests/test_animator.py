"""The Animator: source encoded once, frames animated singly or in batches, reference handling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import assert_reproduces_reference
from enliven.config import load_model_config
from enliven.inference.animator import Animator
from enliven.models.factory import build_model
from enliven.types import MotionMode
from enliven.weights.loader import load_model


def _png(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def fomm_tiny(reference_dir: Path):
    folder = reference_dir / "fomm-tiny"
    model = load_model(folder / "checkpoint-full.pth.tar", folder / "config.yaml").model
    source = _png(folder / "source.png")
    driving = np.stack([_png(p) for p in sorted((folder / "driving").glob("*.png"))])
    expected = np.load(folder / "expected.npz")
    return model, source, driving, expected


@pytest.mark.parametrize(
    ("mode", "adapt", "key"),
    [
        ("relative", True, "animation_relative_adapt"),
        ("relative", False, "animation_relative"),
        ("absolute", False, "animation_absolute"),
    ],
)
def test_animator_reproduces_the_authors_fomm(fomm_tiny, mode: str, adapt: bool, key: str) -> None:
    model, source, driving, expected = fomm_tiny
    animator = Animator(model, device="cpu", mode=mode, adapt_scale=adapt)
    animator.set_source(source)
    frames = animator.to_tensor(driving)
    got = torch.cat([animator.animate(frames[i : i + 3]).prediction for i in range(0, len(frames), 3)])
    got = got.permute(0, 2, 3, 1).numpy()
    assert_reproduces_reference(got, expected[key])


def test_batches_equal_single_frames(fomm_tiny) -> None:
    model, source, driving, _ = fomm_tiny
    animator = Animator(model, device="cpu")
    animator.set_source(source)
    batched = animator(driving[:4])
    animator.set_source(source)
    singles = np.stack([animator(frame) for frame in driving[:4]])
    assert batched.shape == (4, 256, 256, 3) and batched.dtype == np.uint8
    assert np.abs(batched.astype(int) - singles.astype(int)).max() <= 1


def test_reference_frame_is_the_first_unless_set(fomm_tiny) -> None:
    model, source, driving, _ = fomm_tiny
    animator = Animator(model, device="cpu")
    animator.set_source(source)
    first_as_reference = animator(driving[3])  # frame 3 is its own reference: no motion
    animator.set_source(source)
    animator.set_reference(driving[0])
    against_frame0 = animator(driving[3])
    assert not np.array_equal(first_as_reference, against_frame0)
    animator.reset_reference()
    assert np.array_equal(animator(driving[3]), first_as_reference)


def test_inputs_of_other_sizes_are_resized(fomm_tiny) -> None:
    model, source, driving, _ = fomm_tiny
    animator = Animator(model, device="cpu", size=128)
    animator.set_source(np.ascontiguousarray(source[:200, :180]))
    assert animator(driving[0]).shape == (128, 128, 3)


def test_bad_usage(fomm_tiny) -> None:
    model, source, driving, _ = fomm_tiny
    animator = Animator(model, device="cpu")
    with pytest.raises(RuntimeError, match="set_source"):
        animator(driving[0])
    with pytest.raises(ValueError, match="uint8"):
        animator.set_source(source.astype(np.float32))
    with pytest.raises(ValueError, match="support the modes"):
        Animator(model, device="cpu", mode=MotionMode.AVD)


def test_tpsmm_modes_run(reference_dir: Path) -> None:
    folder = reference_dir / "tpsmm-tiny"
    config = load_model_config(folder / "config.yaml")
    model = build_model(config)
    source = _png(folder / "source.png")
    frame = _png(folder / "driving" / "0001.png")
    for mode in ("relative", "absolute", "avd"):
        animator = Animator(model, device="cpu", mode=mode, size=64)
        animator.set_source(source)
        assert animator(frame).shape == (64, 64, 3)
