"""The fine mesh warp over the eyes and lips (enliven.models.lite.fine): which triangles, how exact, how it blends."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from enliven.config.lite import LITE_2, LiteConfig
from enliven.face_mesh import LEFT_EYE, OUTER_LIPS, RIGHT_EYE
from enliven.models.lite.fine import (
    EYE_REGIONS,
    MOUTH_REGION,
    REGION_GRID,
    TRIANGLES_PER_REGION,
    fine_warp,
    refine_grid,
    region_triangles,
)
from enliven.models.lite.model import fine_regions
from enliven.models.lite.motion import mesh_warp_flow, resize_grid, sample_flow, source_triangles
from enliven.motion.pose import canonical_face

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: Upper-lid points (in RIGHT_EYE / LEFT_EYE order, after the far corner) and the lower-lid points below them.
UPPER_LIDS = (RIGHT_EYE[10:15], LEFT_EYE[10:15])
LOWER_LIDS = (RIGHT_EYE[6:1:-1], LEFT_EYE[6:1:-1])


def frontal_face() -> torch.Tensor:
    """``1 x 468 x 2`` the mean face, frontal, filling the middle of the frame as a face crop does."""
    face = canonical_face()[:, :2]
    face = face - face.mean(axis=0)
    face = face / np.abs(face).max() * 0.6
    return torch.from_numpy(face.astype(np.float32))[None]


def blinking(face: torch.Tensor, amount: float) -> torch.Tensor:
    """``face`` with each upper lid moved ``amount`` of the way down to its lower lid."""
    moved = face.clone()
    for upper, lower in zip(UPPER_LIDS, LOWER_LIDS, strict=True):
        moved[0, list(upper)] += amount * (face[0, list(lower)] - face[0, list(upper)])
    return moved


def test_regions_are_the_eyes_and_lips_of_mesh_warp_models() -> None:
    assert fine_regions(LiteConfig()) == EYE_REGIONS + MOUTH_REGION  # all 468 points: indices are face-mesh indices
    assert fine_regions(LITE_2) == EYE_REGIONS  # its mouth moves its own way
    assert fine_regions(LiteConfig(fine_regions=False)) == ()
    assert fine_regions(LiteConfig(keypoints="learned", piecewise=False, face_margin=None)) == ()


def test_region_triangles_gather_the_mesh_around_each_region() -> None:
    face = frontal_face()
    triangles = source_triangles(face)
    chosen = region_triangles(face, triangles, EYE_REGIONS + MOUTH_REGION)
    assert chosen.shape == (1, 3, TRIANGLES_PER_REGION, 3) and chosen.dtype == torch.int64
    assert int(chosen.max()) < 468  # mesh points only, no border anchors
    known = {tuple(t) for t in triangles[0].tolist()}
    assert all(tuple(t) in known for t in chosen[0].reshape(-1, 3).tolist())  # triangles of the source's own mesh
    for region, indices in enumerate((RIGHT_EYE, LEFT_EYE, OUTER_LIPS)):
        centroids = face[0][chosen[0, region]].mean(1)
        centre = face[0, list(indices)].mean(0)
        side = float((face[0, list(indices)].amax(0) - face[0, list(indices)].amin(0)).max())
        assert float((centroids - centre).norm(dim=-1).max()) < 1.5 * side  # around the region, not across the face
    # A face squeezed sideways (a head turned far away) makes the eyes' boxes overlap: still no triangle is shared.
    squeezed = face * torch.tensor([0.1, 1.0])
    chosen = region_triangles(squeezed, source_triangles(squeezed), EYE_REGIONS + MOUTH_REGION)
    sets = [{tuple(t) for t in region.tolist()} for region in chosen[0]]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])


@torch.no_grad()
def test_a_still_face_keeps_its_flow_exactly() -> None:
    face = frontal_face()
    chosen = region_triangles(face, source_triangles(face), EYE_REGIONS + MOUTH_REGION)
    fine = fine_warp(face, face, chosen)
    assert fine.values.shape == (1, 3, 3, REGION_GRID, REGION_GRID)
    coverage = fine.values[:, :, 2]
    assert 0.3 < float(coverage.mean()) < 1 and set(coverage.unique().tolist()) == {0.0, 1.0}
    grid = torch.rand(1, 64, 64, 2) * 2 - 1  # any flow outside the regions stays as it is
    refined = refine_grid(grid, fine)
    from enliven.geometry import make_coordinate_grid

    identity = make_coordinate_grid((64, 64))[None]
    covered = refined - grid
    # Where the regions cover, the still face's flow is the identity; elsewhere the given flow is untouched.
    far = (identity[..., 1] < -0.8).unsqueeze(-1).expand_as(covered)
    assert float(covered[far].abs().max()) == 0
    torch.testing.assert_close(refine_grid(identity, fine), identity, atol=1e-5, rtol=0)


@torch.no_grad()
def test_a_blink_moves_the_lid_where_the_coarse_grid_only_narrows_the_eye() -> None:
    """The driving upper lid, sampled in the refined flow, lands near the source's upper lid (the mesh warp is exact
    at mesh points; sampling the 256 px flow between them costs one to two pixels where the closing lid squeezes five
    source pixels into one); the coarse 32 x 32 flow, resized, misses it by half as much again or more."""
    face = frontal_face()
    closed = blinking(face, 0.8)
    triangles = source_triangles(face)
    coarse = resize_grid(mesh_warp_flow(face, closed, triangles, 32).flow, 256)
    refined = refine_grid(coarse, fine_warp(face, closed, region_triangles(face, triangles, EYE_REGIONS)))
    lids = [i for lid in UPPER_LIDS for i in lid]
    target = face[:, lids]
    pixel = 2 / 255
    fine_error = float((sample_flow(refined, closed[:, lids]) - target).norm(dim=-1).max()) / pixel
    coarse_error = float((sample_flow(coarse, closed[:, lids]) - target).norm(dim=-1).max()) / pixel
    assert fine_error < 2.0, fine_error
    assert coarse_error > 1.5 * fine_error, (coarse_error, fine_error)
