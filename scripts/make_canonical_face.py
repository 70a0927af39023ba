"""Build ``src/enliven/motion/canonical_face.npy``: the mean 3D face-mesh shape (468 x 3) of frontal training faces.

MediaPipe's face mesh gives each landmark a relative depth; its wheel does not carry the canonical face model, so
we average our own: frames from the training clips of ``../shared/data`` (MEAD neutral, talking heads), each shape
aligned to the first by a 3D similarity (Procrustes), then the mean turned to face the camera (the best-fit plane's
normal along +z, the eye line along x) and scaled to an inter-ocular distance (outer eye corners) of 1.

    python scripts/make_canonical_face.py ../shared/data
"""

from __future__ import annotations

import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np

CLIPS = [
    "faces/dreamtalk-MEAD/videos/M030_front_neutral_level1_001.mp4",
    "faces/dreamtalk-MEAD/videos/W009_front_neutral_level1_001.mp4",
    "faces/LIA/videos/obama.mov",
    "faces/EDTalk/videos/pose_source2.mp4",
    "faces/EDTalk/videos/mouth_source.mp4",
    "faces/DPE/videos/s.mp4",
]


def similarity_align(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``points`` (N x 3) moved by the similarity that best maps them onto ``target`` (Umeyama)."""
    mu_p, mu_t = points.mean(0), target.mean(0)
    p, t = points - mu_p, target - mu_t
    u, s, vt = np.linalg.svd(t.T @ p)
    d = np.sign(np.linalg.det(u @ vt))
    rotation = u @ np.diag([1, 1, d]) @ vt
    scale = (s * [1, 1, d]).sum() / (p**2).sum()
    return scale * p @ rotation.T + mu_t


def main(data: Path) -> None:
    import mediapipe as mp

    shapes = []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1) as mesh:
        for name in CLIPS:
            frames = iio.imread(data / name, plugin="pyav")
            for frame in frames[:: max(1, len(frames) // 20)]:
                result = mesh.process(np.ascontiguousarray(frame))
                if not result.multi_face_landmarks:
                    continue
                h, w = frame.shape[:2]
                marks = result.multi_face_landmarks[0].landmark
                shapes.append(np.array([[p.x * w, p.y * h, p.z * w] for p in marks[:468]]))
    reference = shapes[0]
    for _ in range(3):  # align to the running mean, a few rounds
        aligned = np.stack([similarity_align(s, reference) for s in shapes])
        reference = aligned.mean(0)
    mean = reference - reference.mean(0)
    mean[:, 1:] *= -1  # image axes (x right, y down, z away) -> x right, y up, z towards the camera
    _, _, vt = np.linalg.svd(mean)
    normal = vt[2] * np.sign(vt[2][2])
    eye_line = mean[263] - mean[33]
    x_axis = eye_line - eye_line @ normal * normal
    x_axis /= np.linalg.norm(x_axis)
    rotation = np.stack([x_axis, np.cross(normal, x_axis), normal])
    canonical = mean @ rotation.T
    canonical /= np.linalg.norm(canonical[263] - canonical[33])
    canonical[:, 1:] *= -1  # back to image axes: y down, z away from the camera
    out = Path(__file__).resolve().parents[1] / "src/enliven/motion/canonical_face.npy"
    np.save(out, canonical.astype(np.float32))
    print(f"{len(shapes)} faces averaged; wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
