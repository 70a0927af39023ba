"""Expression and pose controls on face-mesh landmarks: ``smile=0.6,yaw=15``.

An :class:`ExpressionEdit` changes landmarks before they drive the renderer, so one edit serves a driving video, a
webcam, and generated motion alike. Landmarks are split into head pose and expression (:mod:`enliven.motion.pose`);
pose edits turn the head (degrees), expression edits move groups of landmarks on the frontal face (in inter-ocular
units) and the landmarks around them follow with a smooth fall-off, while nearby parts that should stay (the upper
lip when the jaw opens, the eyes when the brows rise) are held; then the landmarks are composed again.

The 468-point mesh has no irises, so gaze cannot be edited (nor estimated) from these landmarks.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import cache

import numpy as np

from enliven.errors import InputError
from enliven.face_mesh import MIDDLE_LIP_RINGS
from enliven.motion.pose import HeadPose, canonical_face, compose, decompose

# Face-mesh indices. "Left"/"right" are the image's (the subject's right eye is on the image's left).
MOUTH_CORNERS = (61, 291)
INNER_MOUTH_CORNERS = (78, 308)
UPPER_LIP = (0, 37, 39, 40, 185, 267, 269, 270, 409, 13, 82, 81, 80, 191, 312, 311, 310, 415, 164, 2)
LOWER_INNER_LIP = (95, 88, 178, 87, 14, 317, 402, 318, 324)
UPPER_INNER_LIP = (191, 80, 81, 82, 13, 312, 311, 310, 415)  # the upper partner of each LOWER_INNER_LIP point
LOWER_OUTER_LIP = (146, 91, 181, 84, 17, 314, 405, 321, 375)
# The lips' middle rings (face_mesh.MIDDLE_LIP_RINGS) split into the upper lip's, the lower lip's and their corners:
# each lip moves whole, or opening the jaw stretches the lips (the upper one held by its outer and inner rings only
# grew 4.6 to 6.8 times thicker with mouth=1 on the bundled photo).
UPPER_LIP_MIDDLE = tuple(i for ring in MIDDLE_LIP_RINGS for i in ring[1:10])
LOWER_LIP_MIDDLE = tuple(i for ring in MIDDLE_LIP_RINGS for i in ring[11:])
MIDDLE_MOUTH_CORNERS = tuple(i for ring in MIDDLE_LIP_RINGS for i in (ring[0], ring[10]))
CHIN = (152, 148, 176, 149, 150, 377, 400, 378, 379, 199, 175, 200, 18)
NOSE = (1, 2, 4, 5, 195, 197, 6, 168)
#: What the mouth control moves (the lower lip whole and the chin) and what it holds (the upper lip whole, the nose).
JAW = LOWER_INNER_LIP + LOWER_LIP_MIDDLE + LOWER_OUTER_LIP + CHIN
HELD_BY_JAW_MOVES = UPPER_LIP + UPPER_LIP_MIDDLE + NOSE
EYE_UPPER_LIDS = ((246, 161, 160, 159, 158, 157, 173), (398, 384, 385, 386, 387, 388, 466))
EYE_LOWER_LIDS = ((7, 163, 144, 145, 153, 154, 155), (382, 381, 380, 374, 373, 390, 249))
EYE_CORNER_POINTS = (33, 133, 263, 362)
BROWS = ((70, 63, 105, 66, 107, 55, 65, 52, 53, 46), (300, 293, 334, 296, 336, 285, 295, 282, 283, 276))

#: How far each expression control moves its landmarks at 1 (inter-ocular units of the frontal face).
MOUTH_OPEN_DROP = 0.28
SMILE_OUT, SMILE_UP = 0.07, 0.06
BROW_RISE = 0.07


@dataclass(frozen=True)
class ExpressionEdit:
    """Changes applied to face landmarks (all default to no change).

    Attributes:
        yaw, pitch, roll: turn the head by these degrees (yaw + towards the image's right, pitch + up, roll +
            clockwise).
        mouth: ``(0, 1]`` opens the jaw (1: wide open), ``[-1, 0)`` closes an open mouth (-1: lips together).
        smile: ``(0, 1]`` pulls the mouth corners out and up, ``[-1, 0)`` down (a frown).
        blink: ``(0, 1]`` closes the eyes (1: shut), ``[-1, 0)`` opens them wider.
        brows: ``(0, 1]`` raises the eyebrows, ``[-1, 0)`` lowers them.
        expression: scales the expression's change from the reference frame (0: frozen, 0.5: calmer, 1.5:
            exaggerated); needs a reference.
        head: scales the head's movement from the reference frame (the same way); needs a reference.
    """

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    mouth: float = 0.0
    smile: float = 0.0
    blink: float = 0.0
    brows: float = 0.0
    expression: float = 1.0
    head: float = 1.0

    def __post_init__(self) -> None:
        for name in ("mouth", "smile", "blink", "brows"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"the edit {name}={getattr(self, name):g} is out of range; use a value in [-1, 1].")
        for name in ("yaw", "pitch", "roll"):
            if not -45.0 <= getattr(self, name) <= 45.0:
                raise InputError(
                    f"the edit {name}={getattr(self, name):g} is out of range; turn by at most 45 degrees."
                )
        for name in ("expression", "head"):
            if not 0.0 <= getattr(self, name) <= 3.0:
                raise InputError(f"the edit {name}={getattr(self, name):g} is out of range; use a scale in [0, 3].")

    @classmethod
    def parse(cls, text: str) -> ExpressionEdit:
        """From ``name=value`` pairs separated by commas, e.g. ``smile=0.6,yaw=15``.

        Raises:
            InputError: an unknown name or a value that is not a number or out of range.
        """
        names = [f.name for f in fields(cls)]
        values: dict[str, float] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, value = item.partition("=")
            name = name.strip().replace("-", "_")
            if not sep or name not in names:
                raise InputError(
                    f"cannot read the edit {item!r}; write name=value pairs separated by commas, with names from "
                    f"{', '.join(names)} (e.g. smile=0.6,yaw=15)."
                )
            try:
                values[name] = float(value)
            except ValueError:
                raise InputError(f"the edit {item!r} needs a number after '='.") from None
        return cls(**values)

    def __str__(self) -> str:
        default = ExpressionEdit()
        return ",".join(
            f"{f.name}={getattr(self, f.name):g}"
            for f in fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        )

    @property
    def is_identity(self) -> bool:
        """Whether the edit changes nothing."""
        return self == ExpressionEdit()

    @property
    def needs_reference(self) -> bool:
        """Whether :meth:`apply` needs the reference frame (the expression or head scales are not 1)."""
        return self.expression != 1.0 or self.head != 1.0

    def apply(self, landmarks: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
        """The edited landmarks.

        Args:
            landmarks: ``T x 468 x 2`` (or ``468 x 2``) face-mesh landmarks, any units (pixels, or ``[-1, 1]``);
                NaN rows (no face) are returned as they are.
            reference: ``468 x 2`` the reference frame's landmarks (relative motion's reference): the expression and
                head scales act on the change from it. ``None``: the first row with a face.

        Returns:
            The same shape, float32.
        """
        points = np.asarray(landmarks, dtype=np.float64)
        single = points.ndim == 2
        points = points[None] if single else points
        out = points.copy()
        found = ~np.isnan(points).reshape(len(points), -1).any(axis=1)
        if self.is_identity or not found.any():
            return out[0].astype(np.float32) if single else out.astype(np.float32)
        pose, expression = decompose(points[found])
        if self.needs_reference:
            ref_pose, ref_expression = decompose(
                points[found][:1] if reference is None else np.asarray(reference, np.float64).reshape(1, -1, 2)
            )
            expression = ref_expression + self.expression * (expression - ref_expression)
            pose = HeadPose.from_array(_scale_pose_change(pose.as_array(), ref_pose.as_array()[0], self.head))
        expression = expression + self._displacement(expression)
        pose = replace(pose, yaw=pose.yaw + self.yaw, pitch=pose.pitch + self.pitch, roll=pose.roll + self.roll)
        out[found] = compose(pose, expression)
        return out[0].astype(np.float32) if single else out.astype(np.float32)

    def _displacement(self, expression: np.ndarray) -> np.ndarray:
        """``T x 468 x 2`` offsets of the frontal face's landmarks for the expression controls."""
        total = np.zeros_like(expression)
        face = canonical_face()[:, :2]
        if self.mouth > 0:
            moves = {i: (0.0, MOUTH_OPEN_DROP * self.mouth) for i in JAW}
            corners = MOUTH_CORNERS + MIDDLE_MOUTH_CORNERS + INNER_MOUTH_CORNERS
            moves.update({i: (0.0, 0.5 * MOUTH_OPEN_DROP * self.mouth) for i in corners})
            total += _spread(moves, HELD_BY_JAW_MOVES, 0.18)[None]
        elif self.mouth < 0:  # lips together: the lower lip rises by its gap to the upper, per frame
            current = face[None] + expression
            gap = current[:, UPPER_INNER_LIP, 1] - current[:, LOWER_INNER_LIP, 1]  # negative when open
            rise = -self.mouth * np.minimum(gap, 0.0).mean(axis=1)  # T, negative: up
            unit = _spread({i: (0.0, 1.0) for i in JAW}, HELD_BY_JAW_MOVES, 0.18)
            total += rise[:, None, None] * unit[None]
        if self.smile:
            left, right = MOUTH_CORNERS
            inner_left, inner_right = INNER_MOUTH_CORNERS
            out, up = SMILE_OUT * self.smile, -SMILE_UP * self.smile
            moves = {left: (-out, up), inner_left: (-out, up), right: (out, up), inner_right: (out, up)}
            total += _spread(moves, NOSE + (0, 17, 13, 14) + CHIN[:1], 0.12)[None]
        if self.brows:
            moves = {i: (0.0, -BROW_RISE * self.brows) for side in BROWS for i in side}
            held = EYE_CORNER_POINTS + tuple(i for side in EYE_UPPER_LIDS for i in side) + NOSE
            total += _spread(moves, held, 0.15)[None]
        if self.blink:  # lids move by their gap (per frame), and the skin above and below follows
            current = face[None] + expression
            upper = tuple(i for side in EYE_UPPER_LIDS for i in side)
            lower = tuple(i for side in EYE_LOWER_LIDS for i in side)
            gap = current[:, lower, 1] - current[:, upper, 1]  # T x 14, positive: the eye's opening
            close = self.blink if self.blink > 0 else 0.6 * self.blink  # widening stops well before a stare
            moves = np.concatenate([0.85 * close * gap, -0.15 * close * gap], axis=1)  # T x 28 (down +)
            weights = _spread_weights(upper + lower, EYE_CORNER_POINTS + tuple(i for b in BROWS for i in b), 0.08)
            total[:, :, 1] += moves @ weights.T
        return total


def _scale_pose_change(pose: np.ndarray, reference: np.ndarray, scale: float) -> np.ndarray:
    """``T x 6`` pose rows moved towards (scale < 1) or away from (> 1) the reference row; scale as a ratio."""
    changed = reference + scale * (pose - reference)
    changed[:, 3] = reference[3] * (pose[:, 3] / reference[3]) ** scale
    return changed


@cache
def _spread_weights(handles: tuple[int, ...], held: tuple[int, ...], sigma: float) -> np.ndarray:
    """``468 x len(handles)`` weights: how much of each handle's move every landmark follows.

    Gaussian in the frontal face's distance, normalised against the held landmarks (which pull towards no move)
    and a floor, so a landmark next to a held part moves little and a distant one not at all; handles move fully.
    """
    face = canonical_face()[:, :2]
    anchors = np.array(handles + held)
    distance2 = ((face[:, None] - face[anchors][None]) ** 2).sum(-1)
    gauss = np.exp(-distance2 / (2 * sigma**2))
    floor = np.exp(-(2.5**2) / 2)  # beyond 2.5 sigma from every anchor nothing moves
    weights = gauss[:, : len(handles)] / (gauss.sum(1, keepdims=True) + floor)
    for column, index in enumerate(handles):
        weights[index] = 0.0
        weights[index, column] = 1.0
    for index in held:
        weights[index] = 0.0
    return weights


def _spread(moves: dict[int, tuple[float, float]], held: tuple[int, ...], sigma: float) -> np.ndarray:
    """``468 x 2`` offsets: ``moves`` (landmark -> (dx, dy)) spread to the landmarks around them."""
    handles = tuple(moves)
    held = tuple(i for i in held if i not in moves)
    weights = _spread_weights(handles, held, sigma)
    return weights @ np.array([moves[i] for i in handles])
