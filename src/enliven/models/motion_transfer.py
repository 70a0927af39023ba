"""Keypoint motion transfer: how driving keypoints move the source (pure functions).

FOMM Sec. 3.4 ("relative motion transfer"): ``kp_new = kp_source + s * (kp_driving - kp_reference)`` and
``J_new = J_driving @ J_reference^-1 @ J_source``, where ``s`` adapts the movement scale to the source by the
ratio of the keypoints' convex-hull areas (``sqrt(area_source / area_reference)``).
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from enliven.geometry import inverse_2x2
from enliven.polygons import convex_hull_area
from enliven.types import Keypoints


def _hull_area(points: Tensor) -> float:
    return convex_hull_area(points.detach().to("cpu").double().numpy())


def movement_scale(kp_source: Keypoints, kp_reference: Keypoints) -> float:
    """Return ``sqrt(hull_area(source) / hull_area(reference))`` for the first batch entry of each.

    Degenerate hulls (collinear keypoints) give a scale of 1.
    """
    src = _hull_area(kp_source.value[0])
    ref = _hull_area(kp_reference.value[0])
    if src <= 0.0 or ref <= 0.0:
        return 1.0
    return float(np.sqrt(src) / np.sqrt(ref))


def relative_keypoints(
    kp_source: Keypoints,
    kp_driving: Keypoints,
    kp_reference: Keypoints,
    scale: float = 1.0,
    relative_jacobian: bool = True,
) -> Keypoints:
    """Move the source keypoints by the driving frame's displacement from the reference frame.

    Args:
        kp_source: keypoints of the source, batch 1 or B.
        kp_driving: keypoints of B driving frames.
        kp_reference: keypoints of the reference driving frame (usually the first), batch 1 or B.
        scale: movement scale (see :func:`movement_scale`).
        relative_jacobian: also transfer jacobians relatively (FOMM ``use_relative_jacobian``).

    Returns:
        Keypoints of batch B.
    """
    value = (kp_driving.value - kp_reference.value) * scale + kp_source.value
    jacobian = kp_driving.jacobian
    if (
        relative_jacobian
        and kp_driving.jacobian is not None
        and kp_reference.jacobian is not None
        and kp_source.jacobian is not None
    ):
        jacobian_diff = kp_driving.jacobian @ inverse_2x2(kp_reference.jacobian)
        jacobian = jacobian_diff @ kp_source.jacobian
    return Keypoints(value, jacobian)
