"""The families that ship with enliven, described for :mod:`enliven.families` (heavy parts named, not imported)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from enliven.families import Family, KeypointCount


def _with_num_kp(config: Any, count: int) -> Any:
    return replace(config, num_kp=count)


def _with_num_tps(config: Any, count: int) -> Any:
    return replace(config, common=replace(config.common, num_tps=count))


FOMM = Family(
    "fomm",
    config="enliven.config.fomm:FommConfig",
    model="enliven.models.fomm:FommModel",
    objective="enliven.train.families:FommObjective",
    checkpoint_entries=("kp_detector", "generator"),
    checkpoint_signature=("generator", "kp_detector"),
    config_signature="num_kp",
    dense_motion=("generator.dense_motion_network", "motion"),
    keypoint_count=KeypointCount(lambda config: config.num_kp, _with_num_kp),
)

TPSMM = Family(
    "tpsmm",
    config="enliven.config.tpsmm:TpsmmConfig",
    model="enliven.models.tpsmm:TpsmmModel",
    objective="enliven.train.families:TpsmmObjective",
    checkpoint_entries=("kp_detector", "dense_motion_network", "inpainting_network", "avd_network"),
    checkpoint_signature=("inpainting_network",),
    config_signature="num_tps",
    dense_motion=("dense_motion_network", "forward"),
    keypoint_count=KeypointCount(lambda config: config.common.num_tps, _with_num_tps),
)

LITE = Family(
    "lite",
    config="enliven.config.lite:LiteConfig",
    model="enliven.models.lite:LiteModel",
    objective="enliven.train.families:LiteObjective",
    dense_motion=("dense_motion", "forward"),
    host_source_inputs="enliven.models.lite.model:lite_host_source_inputs",
)
