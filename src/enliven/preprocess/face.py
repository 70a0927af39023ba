"""Face detection, face-mesh landmarks and the face crop box (MediaPipe, imported lazily).

Coordinates are pixels in the convention of :mod:`enliven.preprocess.boxes` (``(x, y)``, pixel ``(i, j)``
covers ``[i, i + 1) x [j, j + 1)``). MediaPipe's normalised outputs are multiplied by the image width/height.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from enliven.errors import NoFaceError
from enliven.preprocess._deps import import_mediapipe_solutions, native_stderr_silenced
from enliven.preprocess.boxes import Box
from enliven.preprocess.resize import crop_and_resize

DetectorModel = Literal["auto", "full", "short"]

#: Names of the 6 keypoints of :class:`FaceDetection`, in order (the subject's right eye comes first).
FACE_KEYPOINT_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion", "left_ear_tragion")

#: Crop side as a multiple of the detector's face box side. MediaPipe's box spans roughly brows to chin and
#: ear to ear. With the shift below, the face box fills the central 53% of the crop side with its centre at
#: 56% of the height, leaving room for hair above and chin and neck below. Chosen by viewing crops of 18
#: photos and clips of the shared data and by matching VoxCeleb-style 256 px crops (LIA's demo clips and
#: photos, trained on FOMM's VoxCeleb), where MediaPipe's box is 46-53% of the side, centred at 51-59% of
#: the height. (VoxCeleb2's own 224 px crops, e.g. PC-AVS's, are tighter: 57-61%, centred at 40-43%.)
FACE_CROP_SCALE = 1.9
#: Upward shift of the crop centre, as a fraction of the face box height (hair needs more room than chin).
FACE_CROP_SHIFT_UP = 0.12


@dataclass(frozen=True, eq=False)
class FaceDetection:
    """One detected face.

    Attributes:
        box: face box in pixels (may extend beyond the image).
        score: detector confidence in ``[0, 1]``.
        keypoints: ``6 x 2`` float64 ``(x, y)`` pixel positions, in the order of :data:`FACE_KEYPOINT_NAMES`.
    """

    box: Box
    score: float
    keypoints: np.ndarray

    def shifted(self, dx: float, dy: float) -> FaceDetection:
        """The same detection moved by ``(dx, dy)`` pixels (e.g. from a tile to the whole image)."""
        return FaceDetection(self.box.shifted(dx, dy), self.score, self.keypoints + np.array([dx, dy]))

    @property
    def rank(self) -> float:
        """Sort key of :meth:`FaceDetector.detect`: score times box side, so big confident faces come first."""
        return self.score * float(np.sqrt(self.box.area))


#: What a new graph is first run on (see :class:`MediaPipeGraphs`): small, so the run takes a few milliseconds.
_BLANK_IMAGE = np.zeros((64, 64, 3), dtype=np.uint8)


def _check_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 RGB image, got {image.dtype} array of shape {image.shape}")
    return np.ascontiguousarray(image)


def pose_found(result: Any) -> bool:
    """Whether a MediaPipe pose result found a person (its landmark path, and its one-time messages, have run)."""
    return result.pose_landmarks is not None


class MediaPipeGraphs:
    """Owns MediaPipe solution graphs and closes them (they hold native resources and threads).

    A graph's native side prints its messages while its calculators open, which its worker threads do after the
    constructor has returned, and when its landmark path first runs, on the first image with a face; never again.
    So :meth:`_new` builds each graph and runs it once on a blank image with stderr silenced
    (:func:`native_stderr_silenced`), which waits for the opening, and :meth:`_process` keeps silencing only until
    a result shows the landmark path has run: no frame after that pays for it, and Python's own stderr output is
    dropped only in those few windows.
    """

    def __init__(self) -> None:
        self._graphs: list[Any] = []
        self._unsettled: set[int] = set()  # ids of graphs that may still print their start-up messages

    def _new(
        self, make: Callable[..., Any], settled: Callable[[Any], bool] = lambda result: True, **options: Any
    ) -> Any:
        """Build a graph with ``make(**options)``, run it once on a blank image, quietly, and own it.

        ``settled(result)`` says whether a result shows that the graph has printed all it prints (see
        :meth:`_process`).
        """
        with native_stderr_silenced():
            graph = make(**options)
            try:
                warm_up = graph.process(_BLANK_IMAGE)
            except BaseException:
                graph.close()
                raise
        self._graphs.append(graph)
        if not settled(warm_up):
            self._unsettled.add(id(graph))
        return graph

    def _new_pose(self, *, static_image_mode: bool) -> Any:
        """A MediaPipe pose graph (33 body landmarks), built as :meth:`_new` does. Model complexity 1 is the landmark
        model the wheel ships; the others would be downloaded on first use."""
        solutions = import_mediapipe_solutions()
        return self._new(
            solutions.pose.Pose,
            pose_found,
            static_image_mode=static_image_mode,
            model_complexity=1,
            min_detection_confidence=0.5,
        )

    def _process(self, graph: Any, image: np.ndarray, settled: Callable[[Any], bool] = lambda result: True) -> Any:
        """``graph.process(image)``, quietly until ``settled(result)`` says its one-time messages are behind it."""
        if id(graph) not in self._unsettled:
            return graph.process(image)
        with native_stderr_silenced():
            result = graph.process(image)
        if settled(result):
            self._unsettled.discard(id(graph))
        return result

    def close(self) -> None:
        """Release the MediaPipe graphs; the object cannot be used afterwards."""
        for graph in self._graphs:
            graph.close()
        self._graphs = []
        self._unsettled.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FaceDetector(MediaPipeGraphs):
    """MediaPipe face detector (BlazeFace) for photos and video frames.

    MediaPipe ships two models: ``"short"`` (128 px input) for faces filling ~20-100% of the frame, and
    ``"full"`` (the sparse full-range model, 192 px input) for smaller faces, which misses some faces that
    fill most of the frame (5 of the 129 face photos of the shared data, close-up portraits). ``"auto"``
    (default) runs ``"full"`` and falls back to ``"short"`` when it finds nothing: it found a face in all
    129 photos. Small faces in large frames are still missed by a whole-frame pass (in 1920 x 1080 frames,
    faces of 64 / 96 px were found in 33% / 88% of 24 test placements), so with ``tiles`` a frame of at
    least :attr:`TILE_MIN_SIDE` px without a face is searched again in 2 x 2 overlapping tiles (60% of each
    side) with the full-range model: then 64 px faces and larger were found in all placements, 48 px in 75%.
    The tiles cost 4 more passes, only on frames where no face was found.

    Args:
        min_confidence: minimum detection score in ``[0, 1]``.
        model: ``"auto"``, ``"full"`` or ``"short"``.
        tiles: search large frames in tiles when the whole frame has no face (not with ``"short"``).

    Raises:
        MissingDependencyError: MediaPipe is not installed.
    """

    TILE_MIN_SIDE = 1000
    TILE_FRACTION = 0.6

    def __init__(self, min_confidence: float = 0.5, model: DetectorModel = "auto", tiles: bool = True) -> None:
        super().__init__()
        if model not in ("auto", "full", "short"):
            raise ValueError(f"model must be 'auto', 'full' or 'short', got {model!r}")
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        solutions = import_mediapipe_solutions()
        self.model = model
        self.min_confidence = min_confidence
        self.tiles = tiles and model != "short"
        self._make = solutions.face_detection.FaceDetection
        self._full = None if model == "short" else self._graph(1)
        # In "auto" mode the short-range graph is a fallback: built when the full-range one first finds nothing,
        # which keeps its start-up cost (~40 ms) off the many runs that never need it.
        self._short = self._graph(0) if model == "short" else None

    def _graph(self, model_selection: int) -> Any:
        return self._new(self._make, model_selection=model_selection, min_detection_confidence=self.min_confidence)

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Detect faces in an ``H x W x 3`` uint8 RGB image; best first (see :attr:`FaceDetection.rank`)."""
        image = _check_rgb(image)
        faces: list[FaceDetection] = []
        if self._full is not None:
            faces = self._run(self._full, image)
        if not faces and self.model != "full":
            if self._short is None:
                self._short = self._graph(0)
            faces = self._run(self._short, image)
        if not faces and self.tiles and max(image.shape[:2]) >= self.TILE_MIN_SIDE:
            faces = self._detect_in_tiles(image)
        return sorted(faces, key=lambda f: f.rank, reverse=True)

    def detect_one(self, image: np.ndarray) -> FaceDetection:
        """The best-ranked face of an image (see :meth:`detect`).

        Raises:
            NoFaceError: no face was found.
        """
        faces = self.detect(image)
        if not faces:
            raise NoFaceError(
                "No face was found in the image: use a photo with a clearly visible face, or turn face cropping off."
            )
        return faces[0]

    def _detect_in_tiles(self, image: np.ndarray) -> list[FaceDetection]:
        h, w = image.shape[:2]
        th, tw = round(h * self.TILE_FRACTION), round(w * self.TILE_FRACTION)
        faces = []
        for y in (0, h - th):
            for x in (0, w - tw):
                tile = np.ascontiguousarray(image[y : y + th, x : x + tw])
                faces += [f.shifted(x, y) for f in self._run(self._full, tile)]
        return _suppress_duplicates(faces)

    def _run(self, graph: Any, image: np.ndarray) -> list[FaceDetection]:
        h, w = image.shape[:2]
        result = graph.process(image)  # the detector prints nothing after its warm-up run (MediaPipeGraphs._new)
        faces = []
        for det in result.detections or []:
            rel = det.location_data.relative_bounding_box
            if rel.width <= 0 or rel.height <= 0:
                continue
            box = Box(rel.xmin * w, rel.ymin * h, (rel.xmin + rel.width) * w, (rel.ymin + rel.height) * h)
            kps = np.array([[k.x * w, k.y * h] for k in det.location_data.relative_keypoints], dtype=np.float64)
            faces.append(FaceDetection(box=box, score=float(det.score[0]), keypoints=kps.reshape(-1, 2)))
        return faces


def _suppress_duplicates(faces: list[FaceDetection], max_iou: float = 0.3) -> list[FaceDetection]:
    """Greedy non-maximum suppression: drop faces overlapping a higher-scored one by more than ``max_iou``."""
    kept: list[FaceDetection] = []
    for face in sorted(faces, key=lambda f: f.score, reverse=True):
        if all(face.box.iou(other.box) <= max_iou for other in kept):
            kept.append(face)
    return kept


class FaceLandmarker(MediaPipeGraphs):
    """MediaPipe face mesh: 468 landmarks (478 with ``refine_landmarks``, adding the irises) of one face.

    Face mesh finds faces with the short-range detector, so a small face in a large frame needs ``box``
    (e.g. from :func:`face_crop_box`) in :meth:`landmarks`.

    Args:
        refine_landmarks: add the 10 iris landmarks and refine eyes and lips.
        video: track the face from frame to frame (smoother and faster for consecutive frames of one clip)
            instead of detecting it anew in every image.
        min_confidence: minimum detection and tracking confidence in ``[0, 1]``.
        crop_size: side of the crop the mesh runs on when a ``box`` is given.

    Raises:
        MissingDependencyError: MediaPipe is not installed.
    """

    def __init__(
        self,
        refine_landmarks: bool = False,
        video: bool = False,
        min_confidence: float = 0.5,
        crop_size: int = 384,
    ) -> None:
        super().__init__()
        solutions = import_mediapipe_solutions()
        self.crop_size = crop_size
        self.num_landmarks = 478 if refine_landmarks else 468
        self._mesh = self._new(
            solutions.face_mesh.FaceMesh,
            settled=_has_landmarks,
            static_image_mode=not video,
            max_num_faces=1,
            refine_landmarks=refine_landmarks,
            min_detection_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
        )

    def landmarks(self, image: np.ndarray, box: Box | None = None) -> np.ndarray | None:
        """Face-mesh landmarks of the most prominent face.

        Args:
            image: ``H x W x 3`` uint8 RGB image.
            box: optional region to look in; it is cropped, resized to ``crop_size`` and the landmarks are
                mapped back to ``image`` pixels.

        Returns:
            ``N x 2`` float64 ``(x, y)`` pixel positions (``N`` = 468 or 478), or ``None`` if no face was found.
        """
        image = _check_rgb(image)
        if box is None:
            return self._run(image)
        ibox = box.to_int()
        points = self._run(crop_and_resize(image, box, self.crop_size))
        if points is None:
            return None
        return points * np.array([ibox.width, ibox.height]) / self.crop_size + np.array([ibox.x0, ibox.y0])

    def _run(self, image: np.ndarray) -> np.ndarray | None:
        # The landmark path warns the first time it runs: on the first image with a face.
        result = self._process(self._mesh, image, settled=_has_landmarks)
        if not result.multi_face_landmarks:
            return None
        h, w = image.shape[:2]
        marks = result.multi_face_landmarks[0].landmark
        return np.array([[p.x * w, p.y * h] for p in marks], dtype=np.float64)


def _has_landmarks(result: Any) -> bool:
    """Whether a face mesh result holds a face (then its landmark path has run, and printed what it prints)."""
    return bool(result.multi_face_landmarks)


def face_crop_box(
    detection: FaceDetection | Box,
    image_w: int,
    image_h: int,
    scale: float = FACE_CROP_SCALE,
    shift_up: float = FACE_CROP_SHIFT_UP,
    keep_inside: bool = True,
) -> Box:
    """A square crop around a face, enlarged to include hair and chin (FOMM VoxCeleb-style framing).

    Args:
        detection: a detection, or a face box in the detector's framing (e.g. a tracked box).
        image_w: image width in pixels.
        image_h: image height in pixels.
        scale: crop side as a multiple of the larger side of the face box (:data:`FACE_CROP_SCALE`).
        shift_up: upward shift of the crop centre as a fraction of the face box height
            (:data:`FACE_CROP_SHIFT_UP`).
        keep_inside: make the crop need no padding (:meth:`Box.fitted_inside`): move it inside the image,
            and shrink it to the image's shorter side if it is larger (the face is then off-centre, or
            larger in the crop, which beats smeared or black borders). With ``False`` the face is always
            framed the same way and crops pad what lies outside the image.

    Returns:
        Square box in pixels.
    """
    face = detection.box if isinstance(detection, FaceDetection) else detection
    box = Box.from_array(face_crop_boxes(face.as_array()[None], scale, shift_up)[0])
    return box.fitted_inside(image_w, image_h) if keep_inside else box


def face_crop_boxes(
    face_boxes: np.ndarray, scale: float = FACE_CROP_SCALE, shift_up: float = FACE_CROP_SHIFT_UP
) -> np.ndarray:
    """Vectorised :func:`face_crop_box` with ``keep_inside=False``.

    Args:
        face_boxes: ``N x 4`` ``(x0, y0, x1, y1)`` face boxes in pixels.
        scale: crop side as a multiple of the larger side of each face box.
        shift_up: upward shift of the crop centre as a fraction of each face box's height.

    Returns:
        ``N x 4`` square crop boxes.
    """
    size = face_boxes[:, 2:] - face_boxes[:, :2]
    half = scale * size.max(axis=1) / 2
    cx = (face_boxes[:, 0] + face_boxes[:, 2]) / 2
    cy = (face_boxes[:, 1] + face_boxes[:, 3]) / 2 - shift_up * size[:, 1]
    return np.stack([cx - half, cy - half, cx + half, cy + half], axis=1)
