"""MediaPipe face-mesh landmark conventions shared by data preparation, training and inference.

Nothing here imports MediaPipe: training reads landmarks that data preparation stored, and models only see numbers.

Storage convention (``<split>/<clip>.face_mesh.npy`` beside each prepared face clip): ``T x 468 x 2`` float32
``(x, y)`` pixel positions in the stored frames (pixel ``(i, j)`` covers ``[i, i + 1) x [j, j + 1)``), a row of NaN
where no face was found. Models take them in normalised coordinates (see :mod:`enliven.types`): ``-1`` at the
centre of the left/top pixel, ``+1`` at the centre of the right/bottom pixel.
"""

from __future__ import annotations

import numpy as np

#: Landmarks of MediaPipe's face mesh without iris refinement.
NUM_FACE_MESH_POINTS = 468

#: File name suffix of a clip's landmark sidecar: ``<split>/<clip name><suffix>``.
LANDMARKS_SUFFIX = ".face_mesh.npy"

#: The mesh points that carry expression and pose: MediaPipe's FACEMESH_CONTOURS (face oval, lips, eyes, brows;
#: 128 points) and FACEMESH_NOSE (24), sorted. Dense enough for lips and eyelids, a third of the mesh.
CONTOUR_AND_NOSE = (
    0, 1, 2, 4, 5, 6, 7, 10, 13, 14, 17, 19, 21, 33, 37, 39, 40, 45, 46, 48, 52, 53, 54, 55, 58, 61, 63, 64,
    65, 66, 67, 70, 78, 80, 81, 82, 84, 87, 88, 91, 93, 94, 95, 97, 98, 103, 105, 107, 109, 115, 127, 132, 133,
    136, 144, 145, 146, 148, 149, 150, 152, 153, 154, 155, 157, 158, 159, 160, 161, 162, 163, 168, 172, 173,
    176, 178, 181, 185, 191, 195, 197, 220, 234, 246, 249, 251, 263, 267, 269, 270, 275, 276, 278, 282, 283,
    284, 285, 288, 291, 293, 294, 295, 296, 297, 300, 308, 310, 311, 312, 314, 317, 318, 321, 323, 324, 326,
    327, 332, 334, 336, 338, 344, 356, 361, 362, 365, 373, 374, 375, 377, 378, 379, 380, 381, 382, 384, 385,
    386, 387, 388, 389, 390, 397, 398, 400, 402, 405, 409, 415, 440, 454, 466,
)  # fmt: skip


#: The inner lip line as a closed loop (MediaPipe's FACEMESH_LIPS, inner ring): upper lip from the right mouth corner
#: (78) to the left (308), then the lower lip back. Inside it, in a driving frame, is the mouth's interior.
INNER_LIPS = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
#: The middle of the upper inner lip (in INNER_LIPS): the upper teeth move with it.
UPPER_INNER_LIP_MIDDLE = (80, 81, 82, 13, 312, 311, 310)
#: The outer lip line as a closed loop (FACEMESH_LIPS, outer ring): the region the mouth loss weights.
OUTER_LIPS = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
#: The two rings of the lips between OUTER_LIPS and INNER_LIPS, outer first, each from its right corner along the upper
#: lip and back along the lower (like OUTER_LIPS). With the outer and inner rings they are exactly the mesh points
#: inside the outer lip line.
MIDDLE_LIP_RINGS = (
    (76, 184, 74, 73, 72, 11, 302, 303, 304, 408, 306, 307, 320, 404, 315, 16, 85, 180, 90, 77),
    (62, 183, 42, 41, 38, 12, 268, 271, 272, 407, 292, 325, 319, 403, 316, 15, 86, 179, 89, 96),
)
#: The eye outlines as closed loops (MediaPipe's FACEMESH_RIGHT_EYE and FACEMESH_LEFT_EYE: the corner, the lower lid,
#: the other corner, the upper lid back).
RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)

#: The mesh's openings, each as its two corners and the pairs of points facing each other across it (upper, lower),
#: corner to corner: each eye's lids and the inner lips. An opening's size is the pairs' distance across the line
#: between the corners, over the corners' distance (an eye aspect ratio, or the mouth's opening over its width).
EYE_AND_LIP_OPENINGS = (
    ((33, 133), ((246, 7), (161, 163), (160, 144), (159, 145), (158, 153), (157, 154), (173, 155))),
    ((263, 362), ((466, 249), (388, 390), (387, 373), (386, 374), (385, 380), (384, 381), (398, 382))),
    ((78, 308), ((191, 95), (80, 88), (81, 178), (82, 87), (13, 14), (312, 317), (311, 402), (310, 318), (415, 324))),
)


def pixels_to_normalized(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """``... x 2`` pixel positions (pixel ``i`` covers ``[i, i + 1)``) to ``[-1, 1]`` model coordinates."""
    scale = np.array([2.0 / (width - 1), 2.0 / (height - 1)])
    return (np.asarray(points, dtype=np.float64) - 0.5) * scale - 1.0


def normalized_to_pixels(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Inverse of :func:`pixels_to_normalized`."""
    scale = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    return (np.asarray(points, dtype=np.float64) + 1.0) * scale + 0.5


#: Anchor points per image side (corners included) that pin the border in piecewise-affine warps.
BORDER_ANCHORS_PER_SIDE = 5


def border_anchor_points(per_side: int = BORDER_ANCHORS_PER_SIDE) -> np.ndarray:
    """``4 * (per_side - 1) x 2`` points evenly spaced around the unit square's border, corners included, clockwise
    from the top-left corner; scale them to the image (pixel edges ``0 .. width``, or ``[-1, 1]`` model units)."""
    t = np.linspace(0.0, 1.0, per_side)[:-1]
    zeros, ones = np.zeros_like(t), np.ones_like(t)
    return np.concatenate([np.stack(side, axis=1) for side in ((t, zeros), (ones, t), (1 - t, ones), (zeros, 1 - t))])


def delaunay_triangles(points: np.ndarray) -> np.ndarray:
    """``T x 3`` vertex indices of the Delaunay triangulation of ``P x 2`` points (scipy's Qhull, on the host)."""
    from scipy.spatial import Delaunay

    return np.asarray(Delaunay(points).simplices, dtype=np.int64)
