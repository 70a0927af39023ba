"""Plane geometry on numpy arrays (no torch: data preparation and pre-processing import it too)."""

from __future__ import annotations

import numpy as np


def convex_hull_area(points: np.ndarray) -> float:
    """Area of the convex hull of ``N x 2`` points (Andrew's monotone chain, then the shoelace formula); 0 for fewer
    than 3 points or collinear ones. The same number as ``scipy.spatial.ConvexHull(points).volume``, without the
    ~0.3 s import of ``scipy.spatial`` on the way to the first frame."""
    pts = np.unique(np.asarray(points, dtype=np.float64).reshape(-1, 2), axis=0)  # sorted by x, then y
    if len(pts) < 3:
        return 0.0

    def half(ordered: np.ndarray) -> list[np.ndarray]:
        chain: list[np.ndarray] = []
        for p in ordered:
            while len(chain) >= 2:
                (ax, ay), (bx, by) = chain[-2], chain[-1]
                if (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax) > 0:  # a left turn: keep b
                    break
                chain.pop()
            chain.append(p)
        return chain

    hull = np.array(half(pts)[:-1] + half(pts[::-1])[:-1])  # lower then upper chain, each without its last point
    x, y = hull[:, 0], hull[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)
