"""``FaceCropper``: find the face, keep its box steady, cut the square the model sees, and paste the result back.

One class serves every interface: :func:`~enliven.inference.animate.animate_file` (a whole clip known in advance:
one stable box per clip, FOMM ``crop-video`` style, or a zero-phase smoothed track), live video and the notebook
(a stream: each frame's box smoothed causally by the One-Euro filter, the last box held while the face is lost).

    >>> with FaceCropper(256) as cropper:                       # doctest: +SKIP
    ...     source = cropper.crop_source(photo)                 # Crop(image 256 x 256 x 3, box, face_found)
    ...     for frame in camera:
    ...         crop = cropper.crop_frame(frame)                # streaming, One-Euro smoothed
    ...         shown = cropper.paste(frame, animate(crop.image), crop.box)

Images are ``H x W x 3`` uint8 RGB; boxes are :class:`~enliven.preprocess.Box` in pixels. Models that do not
animate faces get a square around the person instead (``content="body"``: MediaPipe pose, one box per clip as the
body training crops were cut) or the frame padded to a square (``content="other"``); with ``crop=False`` frames are
taken whole and only resized.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from enliven.errors import FaceTooSmallError, NoFaceError
from enliven.preprocess import (
    Box,
    FaceDetection,
    FaceDetector,
    OneEuroBoxFilter,
    crop_and_resize,
    face_crop_box,
    paste_back,
    resize_image,
    square_pad_box,
    track_faces,
    track_faces_sampled,
)
from enliven.preprocess._deps import import_cv2
from enliven.preprocess.person import PersonDetector, PersonSegmenter, body_box, track_people

Content = Literal["face", "body", "other"]
#: A stream's person is looked for in every this many frames (its box moves slowly; pose estimation is not free).
PERSON_STRIDE = 3
#: A body is pasted back where the person is (before or after moving), grown by this share of the crop's side and
#: softened as much: the model's own background next to the body (what it filled in) comes along, the rest of the
#: photo stays untouched.
PERSON_MARGIN = 0.04

#: Frames without a matching face after which any face found may restart a stream's track (as in ``track_faces``).
REACQUIRE_AFTER = 15
#: Least overlap of a face with the last tracked box to continue a stream's track.
MIN_IOU = 0.2
#: A source face smaller than this share of the image's shorter side is a body or a scene, not a portrait: every
#: portrait in ../shared/data faces has at least 0.178, nearly every full-body photo at most 0.15.
MIN_FACE_SHARE = 0.15
#: A source face of fewer pixels (the detector's box side) would be upscaled past recognition into the model's crop.
MIN_FACE_PIXELS = 64


def face_size(face: FaceDetection, width: int, height: int) -> tuple[float, float]:
    """The face box's side in pixels and as a share of the image's shorter side."""
    side = float(np.sqrt(face.box.area))
    return side, side / min(width, height)


def is_usable_face(face: FaceDetection, width: int, height: int) -> bool:
    """Whether a face model can animate this face well: not a body photo, a scene or a face of a few dozen pixels."""
    side, share = face_size(face, width, height)
    return share >= MIN_FACE_SHARE and side >= MIN_FACE_PIXELS


def check_usable_face(face: FaceDetection, width: int, height: int, what: str) -> None:
    """Refuse a face a face model cannot animate well (:func:`is_usable_face`).

    Raises:
        FaceTooSmallError: one sentence: what was found, and which model or option to use.
    """
    if is_usable_face(face, width, height):
        return
    side, share = face_size(face, width, height)
    why = f"{share:.0%} of the image's shorter side" if share < MIN_FACE_SHARE else f"only {side:.0f} pixels"
    raise FaceTooSmallError(
        f"the face in {what} is {why}, which looks like a body or a scene, not a portrait: a face model would "
        "animate a tiny blurred crop; use a model for bodies or whole images (see 'enliven models'), crop the photo "
        "to the face, or pass --force to animate this face anyway."
    )


@dataclass(frozen=True, eq=False)
class Crop:
    """A square model input cut from a frame.

    Attributes:
        image: ``size x size x 3`` uint8 RGB.
        box: the square's place in the frame, in pixels (it may extend past the frame: padded); ``None`` when the
            whole frame was resized (``crop=False``).
        face_found: a face was found in this frame (``False``: the box was held from an earlier frame, or there is
            no face to look for).
    """

    image: np.ndarray
    box: Box | None
    face_found: bool


class FaceCropper:
    """Detects, smooths, crops and pastes back (see the module docstring).

    Args:
        size: side of the square crops (the model's size).
        content: ``face`` crops around a detected face; ``body`` a square around the person (MediaPipe pose);
            ``other`` pads frames to a square.
        crop: ``False`` takes frames whole (resized to ``size``): pre-cropped inputs.
        fps: frame rate of streams given to :meth:`crop_frame` (the One-Euro filter's time step).
        min_cutoff: One-Euro cutoff at rest, Hz (lower: steadier, more lag when still).
        beta: One-Euro speed coefficient (higher: less lag in fast moves).
        feather: paste-back fade width as a fraction of the box side.
        detector: a face detector to use (and not close); by default one is made on first use.
        any_face: take a source face of any size (``--force``); by default a face too small to animate raises
            :class:`~enliven.errors.FaceTooSmallError` (:func:`check_usable_face`).

    Raises:
        MissingDependencyError: MediaPipe is missing (face content with ``crop``).
    """

    def __init__(
        self,
        size: int,
        *,
        content: Content = "face",
        crop: bool = True,
        fps: float = 25.0,
        min_cutoff: float = 1.0,
        beta: float = 1.0,
        feather: float = 0.1,
        detector: FaceDetector | None = None,
        any_face: bool = False,
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        if content not in ("face", "body", "other"):
            raise ValueError(f"content must be 'face', 'body' or 'other', got {content!r}")
        self.size = size
        self.content: Content = content
        self.crop = crop
        self.feather = feather
        self.any_face = any_face
        self.source_face_share: float | None = None  # the last source face's side over the photo's shorter side
        self._detector = detector
        self._owns_detector = detector is None
        self._filter = OneEuroBoxFilter(fps=fps, min_cutoff=min_cutoff, beta=beta)
        self._last_face: Box | None = None  # the tracked face box (detector framing), unsmoothed
        self._last_crop: Box | None = None
        self._missed = 0
        self._people: PersonDetector | None = None
        self._segmenter: PersonSegmenter | None = None
        # the last frame pasted into, its box, its crop and that crop's person mask (kept while the frame is)
        self._under: tuple[np.ndarray, Box, np.ndarray, np.ndarray | None] | None = None
        self._frames_seen = 0

    @property
    def finds_faces(self) -> bool:
        """Whether crops follow a detected face (face content, cropping on)."""
        return self.crop and self.content == "face"

    @property
    def detector(self) -> FaceDetector:
        """The face detector (MediaPipe), made on first use."""
        if self._detector is None:
            self._detector = FaceDetector()
        return self._detector

    # -- still images ------------------------------------------------------------------------------------------
    def source_box(self, image: np.ndarray, what: str = "the source") -> Box | None:
        """The crop box of a still image (``None`` with ``crop=False``).

        Raises:
            NoFaceError: face content and no face in the image.
            FaceTooSmallError: the face is too small to animate (a body or a scene) and not ``any_face``.
        """
        if not self.crop:
            return None
        height, width = image.shape[:2]
        if self.content == "body":
            with PersonDetector(video=False) as people:
                person = people.detect(image)
            if person is None:
                raise NoFaceError(
                    f"no person was found in {what}; this model animates people, so use --model auto (which picks a "
                    "model for other content) or --no-crop to animate the whole image."
                )
            return person.square().fitted_inside(width, height)
        if self.content != "face":
            return square_pad_box(width, height)
        faces = self.detector.detect(image)
        if not faces:
            raise NoFaceError(f"no face was found in {what}; use --no-crop to animate the whole image.")
        if not self.any_face:
            check_usable_face(faces[0], width, height, what)
        self.source_face_share = face_size(faces[0], width, height)[1]
        return face_crop_box(faces[0], width, height)

    def crop_source(self, image: np.ndarray, what: str = "the source") -> Crop:
        """Cut the model's square out of a still image (the best-ranked face, framed with hair and chin).

        Raises:
            NoFaceError: face content and no face in the image.
        """
        box = self.source_box(image, what)
        return Crop(self.cut(image, box), box, self.finds_faces)

    def cut(self, frame: np.ndarray, box: Box | None) -> np.ndarray:
        """``frame`` cut at ``box`` and resized to ``size x size`` (``None``: the whole frame resized)."""
        if box is None:
            if frame.shape[0] == frame.shape[1] == self.size:
                return frame
            return resize_image(frame, (self.size, self.size))
        return crop_and_resize(frame, box, self.size)

    # -- streams -----------------------------------------------------------------------------------------------
    def crop_frame(self, frame: np.ndarray) -> Crop:
        """The next frame of a stream, cut along the smoothed face track.

        The face continuing the track is the one overlapping the last box most (another person entering does not
        take over); after :data:`REACQUIRE_AFTER` frames without it, the best-ranked face restarts the track. A
        frame without the face keeps the last box (``face_found=False``); before the first face, the whole frame
        padded to a square is used.
        """
        height, width = frame.shape[:2]
        if self.crop and self.content == "body":
            return self._crop_person(frame)
        if not self.finds_faces:
            box = square_pad_box(width, height) if self.crop and (width != height) else None
            return Crop(self.cut(frame, box), box, False)
        face = self._continue_track(self.detector.detect(frame))
        if face is None:
            self._missed += 1
            box = self._last_crop or square_pad_box(width, height)
            return Crop(self.cut(frame, box), box, False)
        if self._missed > REACQUIRE_AFTER or self._last_face is None:
            self._filter.reset()  # a new track: do not glide from where the old face was
        self._last_face, self._missed = face.box, 0
        smoothed = self._filter.update(face.box)
        self._last_crop = face_crop_box(smoothed, width, height)
        return Crop(self.cut(frame, self._last_crop), self._last_crop, True)

    def _crop_person(self, frame: np.ndarray) -> Crop:
        """A stream's frame cut around its person, found every :data:`PERSON_STRIDE` frames and smoothed; the last
        box is held in between and while the person is lost (the whole frame padded before the first)."""
        height, width = frame.shape[:2]
        found = False
        if self._frames_seen % PERSON_STRIDE == 0:
            if self._people is None:
                self._people = PersonDetector(video=True)
            person = self._people.detect(frame)
            if person is not None:
                found = True
                if self._last_face is None:
                    self._filter.reset()
                self._last_face = person
                square = self._filter.update(person).square()
                self._last_crop = square.fitted_inside(width, height)
        self._frames_seen += 1
        box = self._last_crop or square_pad_box(width, height)
        return Crop(self.cut(frame, box), box, found or self._last_crop is not None)

    def _continue_track(self, faces: list[FaceDetection]) -> FaceDetection | None:
        if not faces:
            return None
        if self._last_face is None or self._missed > REACQUIRE_AFTER:
            return faces[0]
        overlaps = [face.box.iou(self._last_face) for face in faces]
        best = int(np.argmax(overlaps))
        return faces[best] if overlaps[best] >= MIN_IOU else None

    def reset(self) -> None:
        """Forget the stream's track (a new clip, or the camera restarted)."""
        self._filter.reset()
        self._last_face = self._last_crop = None
        self._missed = 0
        self._frames_seen = 0
        if self._people is not None:
            self._people.close()  # its tracking belongs to the old stream
            self._people = None

    # -- whole clips -------------------------------------------------------------------------------------------
    def clip_boxes(
        self,
        frames: Sequence[np.ndarray] | Iterable[np.ndarray],
        *,
        smooth_track: bool = False,
        what: str = "the driving video",
    ) -> list[Box] | None:
        """Crop boxes of a whole clip: one stable box around the moving face (FOMM ``crop-video``), or with
        ``smooth_track`` a zero-phase smoothed box per frame. Models that do not animate faces get the frame padded
        to a square. ``None``: frames are taken whole.

        A clip held in memory (a sequence) is searched in every third frame, and in every frame only where the face
        moved (:func:`~enliven.preprocess.track_faces_sampled`); an iterable is read once and searched in every
        frame.

        Raises:
            NoFaceError: face content and no face in any frame.
        """
        if not self.crop:
            return None
        if self.content == "body":
            with PersonDetector(video=True) as people:
                track = track_people(frames, people, stride=PERSON_STRIDE)
            if track.num_detected == 0:
                raise NoFaceError(f"no person was found in {what}; use --no-crop to use whole frames.")
            return [body_box(track)]
        if self.content != "face":
            first = next(iter(frames), None)
            if first is None or first.shape[0] == first.shape[1]:
                return None
            return [square_pad_box(first.shape[1], first.shape[0])]
        if isinstance(frames, Sequence):
            track = track_faces_sampled(frames, self.detector)
        else:
            track = track_faces(iter(frames), self.detector)
        if track.num_detected == 0:
            raise NoFaceError(f"no face was found in {what}; use --no-crop to use whole frames.")
        return track.smoothed_boxes() if smooth_track else [track.stable_box()]

    # -- back into the frame -----------------------------------------------------------------------------------
    def paste(self, frame: np.ndarray, animated: np.ndarray, box: Box | None) -> np.ndarray:
        """``animated`` (a crop's animation, any size) blended into a copy of ``frame`` where ``box`` was cut, with
        a feathered edge; ``None`` box: ``animated`` resized to the whole frame. A body (``content="body"``) is
        pasted where the person is in the animation or was in the frame (what the motion uncovers), by MediaPipe's
        selfie segmentation: the photo's background stays the photo's."""
        if box is None:
            height, width = frame.shape[:2]
            box = Box(0.0, 0.0, float(width), float(height))
        mask = None
        if self.content == "body":
            if self._under is None or self._under[0] is not frame or self._under[1] != box:  # a photo: once
                self._under = (frame, box, self.cut(frame, box), None)
            mask = self.person_mask(self._under[2], animated)
        return paste_back(frame, animated, box, self.feather, mask)

    def person_mask(self, under: np.ndarray, animated: np.ndarray) -> np.ndarray:
        """``S x S`` float32 weights in ``[0, 1]``: the person of ``animated`` and of ``under`` (the frame's crop
        beneath it, ``S x S x 3``), grown and softened by :data:`PERSON_MARGIN`."""
        cv2 = import_cv2()
        if self._segmenter is None:
            self._segmenter = PersonSegmenter()
        side = under.shape[0]
        moved = animated if animated.shape[:2] == under.shape[:2] else resize_image(animated, (side, side))
        if self._under is not None and self._under[2] is under:  # the photo pasted into: segmented once
            if self._under[3] is None:
                self._under = (*self._under[:3], self._segmenter.mask(under))
            beneath = self._under[3]
        else:
            beneath = self._segmenter.mask(under)
        union = np.maximum(beneath, self._segmenter.mask(moved))
        size = 2 * max(1, round(PERSON_MARGIN * side)) + 1
        grown = cv2.dilate(union, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
        return cv2.GaussianBlur(grown, (size, size), 0)

    def close(self) -> None:
        """Release the detectors' MediaPipe graphs (those this cropper made)."""
        if self._detector is not None and self._owns_detector:
            self._detector.close()
            self._detector = None
        for graphs in (self._people, self._segmenter):
            if graphs is not None:
                graphs.close()
        self._people = self._segmenter = None

    def __enter__(self) -> FaceCropper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
