"""``FaceMotion``: a face's motion over time, apart from whose face it is.

Per frame: six head-pose channels relative to the clip (yaw, pitch, roll in degrees minus the clip's mean; the log
of the scale over the clip's mean scale; the face centre's offset from the clip's mean, in mean-scale units), and
the expression (:mod:`enliven.motion.pose`) as a change from a neutral face (a ``468 x 2`` offset of the frontal
face, inter-ocular units). Made from landmarks (a clip's, or a webcam's), made by the motion VAE, and turned back
into the landmarks of a virtual face (the mean face at a nominal size and place in a square frame) that drive the
renderer in relative mode: the photo then moves as the virtual face moves away from its neutral, unturned self
(:meth:`FaceMotion.reference_landmarks`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from enliven.motion.pose import HeadPose, compose, decompose

#: The virtual face's inter-ocular distance (outer eye corners) and centre, as fractions of the frame's side: the
#: median over the prepared training faces (86 px and (127, 140) at 256 x 256).
NOMINAL_SCALE = 0.336
NOMINAL_CENTRE = (0.495, 0.548)


@dataclass(frozen=True)
class FaceMotion:
    """``T`` frames of face motion (see the module docstring).

    Attributes:
        pose: ``T x 6`` float32: yaw, pitch, roll (degrees), log scale, x, y (mean-scale units), each relative to
            the clip.
        expression: ``T x 468 x 2`` float32, the change from the neutral face (frontal, inter-ocular units).
        fps: frames per second.
    """

    pose: np.ndarray
    expression: np.ndarray
    fps: float

    def __post_init__(self) -> None:
        if self.pose.ndim != 2 or self.pose.shape[1] != 6:
            raise ValueError(f"pose must be T x 6, got {self.pose.shape}")
        if self.expression.shape != (len(self.pose), 468, 2):
            raise ValueError(f"expression must be {len(self.pose)} x 468 x 2, got {self.expression.shape}")
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")

    def __len__(self) -> int:
        return len(self.pose)

    @property
    def seconds(self) -> float:
        return len(self) / self.fps

    @classmethod
    def from_landmarks(cls, landmarks: np.ndarray, fps: float, neutral: np.ndarray | None = None) -> FaceMotion:
        """From ``T x 468 x 2`` landmarks (any units; NaN rows, frames without a face, are filled from the nearest
        frames with one).

        Args:
            landmarks: the landmarks.
            fps: their frame rate.
            neutral: ``468 x 2`` the person's neutral expression (e.g. :meth:`neutral_of` their neutral clip);
                ``None``: the clip's mean expression.

        Raises:
            ValueError: no row has a face.
        """
        points = fill_missing(np.asarray(landmarks, dtype=np.float64))
        pose, expression = decompose(points)
        base = expression.mean(axis=0) if neutral is None else np.asarray(neutral, dtype=np.float64)
        return cls(relative_pose(pose).astype(np.float32), (expression - base).astype(np.float32), float(fps))

    @staticmethod
    def neutral_of(landmarks: np.ndarray) -> np.ndarray:
        """``468 x 2``: the mean expression of a clip's ``T x 468 x 2`` landmarks (a neutral clip's: the neutral)."""
        return decompose(fill_missing(np.asarray(landmarks, dtype=np.float64)))[1].mean(axis=0)

    def landmarks(self, size: int = 256) -> np.ndarray:
        """``T x 468 x 2`` pixel landmarks of the virtual face in a ``size x size`` frame, float32."""
        return compose(self._absolute_pose(self.pose, size), self.expression).astype(np.float32)

    def reference_landmarks(self, size: int = 256) -> np.ndarray:
        """``468 x 2`` pixel landmarks of the virtual face at rest (no head movement, neutral expression): the
        relative-motion reference that maps the photo's own pose and expression to rest."""
        rest = self._absolute_pose(np.zeros((1, 6)), size)
        return compose(rest, np.zeros((1, 468, 2)))[0].astype(np.float32)

    @staticmethod
    def _absolute_pose(pose: np.ndarray, size: int) -> HeadPose:
        scale = NOMINAL_SCALE * size
        yaw, pitch, roll, log_scale, x, y = (np.asarray(pose, dtype=np.float64)[:, i] for i in range(6))
        return HeadPose(
            yaw,
            pitch,
            roll,
            scale * np.exp(log_scale),
            NOMINAL_CENTRE[0] * size + scale * x,
            NOMINAL_CENTRE[1] * size + scale * y,
        )

    def resampled(self, fps: float) -> FaceMotion:
        """The same motion at another frame rate (linear interpolation in time)."""
        if abs(fps - self.fps) < 1e-6:
            return self
        count = max(1, int(round(len(self) * fps / self.fps)))
        times = np.arange(count) / fps * self.fps
        pose = interpolate_rows(self.pose, times)
        expression = interpolate_rows(self.expression.reshape(len(self), -1), times).reshape(count, 468, 2)
        return FaceMotion(pose.astype(np.float32), expression.astype(np.float32), float(fps))

    def looped(self, crossfade: int) -> FaceMotion:
        """A seamless loop: the last ``crossfade`` frames are dropped and blended into the first ones, so the last
        frame leads into the first as it led into the frames dropped (lengths: ``T - crossfade``)."""
        crossfade = int(crossfade)
        if not 0 < crossfade < len(self) // 2:
            raise ValueError(f"a loop's crossfade must be between 1 and half the motion ({len(self) // 2} frames)")
        keep = len(self) - crossfade
        weight = ((np.arange(crossfade) + 0.5) / crossfade)[:, None]  # 0 -> 1: from the tail into the head
        pose = self.pose[:keep].copy()
        expression = self.expression[:keep].copy()
        pose[:crossfade] = weight * self.pose[:crossfade] + (1 - weight) * self.pose[keep:]
        expression[:crossfade] = (
            weight[:, :, None] * self.expression[:crossfade] + (1 - weight[:, :, None]) * self.expression[keep:]
        )
        return FaceMotion(pose, expression, self.fps)


def relative_pose(pose: HeadPose) -> np.ndarray:
    """``T x 6`` pose channels relative to the clip (see the module docstring)."""
    mean_scale = float(np.exp(np.log(pose.scale).mean()))
    angles = np.stack([pose.yaw, pose.pitch, pose.roll], -1)
    return np.concatenate(
        [
            angles - angles.mean(axis=0),
            np.log(pose.scale / mean_scale)[:, None],
            (np.stack([pose.x, pose.y], -1) - np.array([pose.x.mean(), pose.y.mean()])) / mean_scale,
        ],
        axis=-1,
    )


def fill_missing(points: np.ndarray) -> np.ndarray:
    """``T x ...`` rows with NaN replaced by the last row before them without (leading ones by the first)."""
    missing = np.isnan(points.reshape(len(points), -1)).any(axis=1)
    if not missing.any():
        return points
    if missing.all():
        raise ValueError("no frame of the motion has a face")
    found = np.flatnonzero(~missing)
    before = np.searchsorted(found, np.arange(len(points)), side="right") - 1
    return points[found[np.maximum(before, 0)]]


def interpolate_rows(rows: np.ndarray, times: np.ndarray) -> np.ndarray:
    """``rows`` (``T x D``) at fractional row positions ``times`` (linear, clamped at the ends)."""
    times = np.clip(times, 0, len(rows) - 1)
    low = np.floor(times).astype(int)
    high = np.minimum(low + 1, len(rows) - 1)
    weight = (times - low)[:, None]
    return rows[low] * (1 - weight) + rows[high] * weight
