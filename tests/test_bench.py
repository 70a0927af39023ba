"""``enliven bench``: stage timing, the report, process isolation, the ONNX rows and the command line."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_SIDE, tiny_fomm_document
from enliven.cli import main
from enliven.config import config_from_dict
from enliven.config.lite import LiteConfig
from enliven.inference.animator import Animator
from enliven.models.factory import build_model
from enliven.pipelines.bench import (
    DEFAULT_DRIVING,
    DEFAULT_SOURCE,
    BenchInputs,
    BenchOptions,
    StageTimes,
    run_bench,
    time_stages,
)
from enliven.pipelines.bench.stages import clip_order
from enliven.weights.checkpoint import save_release

STAGE_NAMES = ["preprocess", "keypoints", "dense_motion", "generator", "postprocess", "total"]
needs_assets = pytest.mark.skipif(not DEFAULT_DRIVING.is_file(), reason="the repository's assets/ are not here")


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Release files of a tiny FOMM and a tiny lite model (64 x 64)."""
    folder = tmp_path_factory.mktemp("models")
    fomm = build_model(config_from_dict(tiny_fomm_document(), "fomm"))
    lite = build_model(LiteConfig(image_size=TINY_SIDE, motion_size=16, channels=(8, 16), motion_expansion=8))
    return {
        "fomm": str(save_release(fomm, folder / "fomm.safetensors", {"content": "face"})),
        "lite": str(save_release(lite, folder / "lite.safetensors", {"content": "face"})),
    }


def _options(models: tuple[str, ...], backends: tuple[str, ...], **kwargs: object) -> BenchOptions:
    defaults = {"threads": 1, "frames": 2, "warmup": 1, "size": TINY_SIDE, "isolate": False}
    return BenchOptions(models=models, backends=backends, **(defaults | kwargs))  # type: ignore[arg-type]


def _check_stages(stages: StageTimes | None, dense_in_generator: bool) -> None:
    assert stages is not None
    assert [f.name for f in dataclasses.fields(stages)] == STAGE_NAMES
    assert (stages.dense_motion is None) == dense_in_generator
    assert all(getattr(stages, name) > 0 for name in STAGE_NAMES if name != "dense_motion" or not dense_in_generator)
    assert stages.fps == pytest.approx(1000.0 / stages.total)


def test_time_stages_restores_the_model() -> None:
    model = build_model(config_from_dict(tiny_fomm_document(), "fomm"))
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, TINY_SIDE, TINY_SIDE, 3), dtype=np.uint8)
    stages, source_ms = time_stages(Animator(model, device="cpu"), BenchInputs(frames[0], frames), warmup=1)
    _check_stages(stages, dense_in_generator=False)
    assert source_ms > 0
    assert "motion" not in vars(model.generator.dense_motion_network)  # the timing wrapper is gone


def test_clip_order_plays_forwards_then_backwards() -> None:
    assert clip_order(3, 9) == [0, 1, 2, 1, 0, 1, 2, 1, 0]
    assert clip_order(1, 3) == [0, 0, 0]


@needs_assets
def test_torch_backend_report(tiny_models: dict[str, str]) -> None:
    report = run_bench(_options((tiny_models["fomm"], tiny_models["lite"]), ("torch",)))
    assert [(r.family, r.backend) for r in report.results] == [("fomm", "torch"), ("lite", "torch")]
    for result in report.results:
        _check_stages(result.stages, dense_in_generator=False)
        assert result.source_ms is not None and result.source_ms > 0
        assert result.gflop_frame is not None and result.gflop_frame > 0
        assert result.peak_rss_mib is not None and result.peak_rss_mib > 0
        assert not result.random_weights and not result.isolated
    table = report.to_markdown()
    for label in ("pre-processing", "driving keypoints", "dense motion", "generator", "post-processing", "**fps**"):
        assert f"| {label} |" in table or f"| **{label.strip('*')}** |" in table
    assert "fomm.safetensors torch" in table and "machine:" in table and "target 30 fps" in table
    data = json.loads(json.dumps(report.to_dict()))
    assert data["results"][0]["stages"]["fps"] == pytest.approx(report.results[0].stages.fps)  # type: ignore[union-attr]


@needs_assets
def test_onnx_backend_runs_dense_motion_in_the_generator(tiny_models: dict[str, str], tmp_path: Path) -> None:
    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("onnxruntime is not installed")
    report = run_bench(_options((tiny_models["fomm"],), ("onnx",), onnx_cache=tmp_path))
    (result,) = report.results
    assert result.unavailable is None, result.unavailable
    _check_stages(result.stages, dense_in_generator=True)
    assert "| dense motion | in generator |" in report.to_markdown()


@needs_assets
def test_onnx_rows_say_why_they_are_unavailable(
    tiny_models: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for package in ("onnx", "onnxruntime"):  # importing them now fails, as without the export extra
        monkeypatch.setitem(sys.modules, package, None)
    report = run_bench(_options((tiny_models["fomm"],), ("torch", "onnx"), onnx_cache=tmp_path))
    torch_row, onnx_row = report.results
    assert torch_row.stages is not None and onnx_row.stages is None
    assert onnx_row.unavailable
    table = report.to_markdown()
    assert "unavailable [1]" in table and f"[1] fomm.safetensors onnx unavailable: {onnx_row.unavailable}" in table


@needs_assets
def test_cli_isolated_run_writes_json(tiny_models: dict[str, str], tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "--models", tiny_models["fomm"], "--backend", "torch", "--threads", "1", "--frames", "2"]
    assert main([*args, "--warmup", "1", "--size", str(TINY_SIDE), "--json", str(out), "-q"]) == 0
    assert "| **total** |" in capsys.readouterr().out
    (result,) = json.loads(out.read_text())["results"]
    assert result["isolated"] and result["peak_rss_mib"] > 0 and result["stages"]["total"] > 0
    assert torch.get_num_threads() >= 1  # the parent's thread count is left alone


def test_cli_bad_arguments_exit_2(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--backend", "tensorrt"])
    assert exit_info.value.code == 2
    assert "unknown name 'tensorrt'" in capsys.readouterr().err
    assert main(["bench", "--models", str(tmp_path / "missing.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("enliven: error:") and "is neither a model name nor a file" in err and err.count("\n") == 0
    assert main(["bench", "--json", str(tmp_path / "no" / "such" / "out.json")]) == 2
    assert "--json" in capsys.readouterr().err


def test_default_inputs_are_the_bundled_assets() -> None:
    assert BenchOptions().source == DEFAULT_SOURCE and DEFAULT_SOURCE.name == "source-astronaut.jpg"
