"""Face detection, face-mesh landmarks and the face crop box (MediaPipe, imported lazily).

Coordinates are pixels in the convention of :mod:`enliven.preprocess.boxes` (``(x, y)``, pixel ``(i, j)``
covers ``[i, i + 1) x [j, j + 1)``). MediaPipe's normalised outputs are multiplied by the image width/height.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from enliven.preprocess._deps import import_mediapipe_solutions
from enliven.preprocess.boxes import Box
from enliven.preprocess.resize import crop_and_resize

DetectorModel = Literal["auto", "full", "short"]

#: Names of the 6 keypoints of :class:`FaceDetection`, in order (the subject's right eye comes first).
FACE_KEYPOINT_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion", "left_ear_tragion")

#: Crop side as a multiple of the detector's face box side. MediaPipe's box spans roughly brows to chin and
#: ear to ear; 1.9x puts the face box in the central ~53% of the crop, which with the shift below leaves room
#: for the hair above and the chin and neck below, as in FOMM's VoxCeleb crops (chosen by viewing crops of
#: the photos and clips in the shared data, see ``tests/test_preprocess.py`` for the checks that remain).
FACE_CROP_SCALE = 1.9
#: Upward shift of the crop centre, as a fraction of the face box height (hair needs more room than chin).
FACE_CROP_SHIFT_UP = 0.12


@dataclass(frozen=True)
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

    @property
    def rank(self) -> float:
        """Sort key of :meth:`FaceDetector.detect`: score times box side, so big confident faces come first."""
        return self.score * float(np.sqrt(self.box.area))


def _check_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 RGB image, got {image.dtype} array of shape {image.shape}")
    return np.ascontiguousarray(image)


class _MediaPipeGraphs:
    """Owns MediaPipe solution graphs and closes them (they hold native resources and threads)."""

    def __init__(self) -> None:
        self._graphs: list[Any] = []

    def _own(self, graph: Any) -> Any:
        self._graphs.append(graph)
        return graph

    def close(self) -> None:
        """Release the MediaPipe graphs; the object cannot be used afterwards."""
        for graph in self._graphs:
            graph.close()
        self._graphs = []

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FaceDetector(_MediaPipeGraphs):
    """MediaPipe face detector (BlazeFace) for photos and video frames.

    MediaPipe ships two models: ``"short"`` (128 px input) finds faces filling ~20-100% of the frame and
    misses faces smaller than ~10% of a 1920 px frame; ``"full"`` (the sparse full-range model, 192 px input)
    finds faces down to ~64 px in a 1920 x 1080 frame but misses some faces that fill most of the frame (5
    of 129 photos in the shared data, e.g. close-up portraits). ``"auto"`` (default) runs ``"full"`` and
    falls back to ``"short"`` when it finds nothing: it found a face in all 129 face photos.

    Args:
        min_confidence: minimum detection score in ``[0, 1]``.
        model: ``"auto"``, ``"full"`` or ``"short"``.

    Raises:
        MissingDependencyError: MediaPipe is not installed.
    """

    def __init__(self, min_confidence: float = 0.5, model: DetectorModel = "auto") -> None:
        super().__init__()
        if model not in ("auto", "full", "short"):
            raise ValueError(f"model must be 'auto', 'full' or 'short', got {model!r}")
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        solutions = import_mediapipe_solutions()
        self.model = model
        self.min_confidence = min_confidence
        make = solutions.face_detection.FaceDetection
        self._full = self._own(make(model_selection=1, min_detection_confidence=min_confidence))
        self._short = None
        if model in ("auto", "short"):
            self._short = self._own(make(model_selection=0, min_detection_confidence=min_confidence))
        if model == "short":
            self._full = None

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Detect faces in an ``H x W x 3`` uint8 RGB image; best first (see :attr:`FaceDetection.rank`)."""
        image = _check_rgb(image)
        faces: list[FaceDetection] = []
        for graph in (self._full, self._short):
            if graph is not None:
                faces = self._run(graph, image)
                if faces:
                    break
        return sorted(faces, key=lambda f: f.rank, reverse=True)

    @staticmethod
    def _run(graph: Any, image: np.ndarray) -> list[FaceDetection]:
        h, w = image.shape[:2]
        result = graph.process(image)
        faces = []
        for det in result.detections or []:
            rel = det.location_data.relative_bounding_box
            if rel.width <= 0 or rel.height <= 0:
                continue
            box = Box(rel.xmin * w, rel.ymin * h, (rel.xmin + rel.width) * w, (rel.ymin + rel.height) * h)
            kps = np.array([[k.x * w, k.y * h] for k in det.location_data.relative_keypoints], dtype=np.float64)
            faces.append(FaceDetection(box=box, score=float(det.score[0]), keypoints=kps.reshape(-1, 2)))
        return faces


class FaceLandmarker(_MediaPipeGraphs):
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
        self._mesh = self._own(
            solutions.face_mesh.FaceMesh(
                static_image_mode=not video,
                max_num_faces=1,
                refine_landmarks=refine_landmarks,
                min_detection_confidence=min_confidence,
                min_tracking_confidence=min_confidence,
            )
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
        result = self._mesh.process(image)
        if not result.multi_face_landmarks:
            return None
        h, w = image.shape[:2]
        marks = result.multi_face_landmarks[0].landmark
        return np.array([[p.x * w, p.y * h] for p in marks], dtype=np.float64)


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
        keep_inside: move the crop (without resizing it) to lie inside the image where it fits, so that
            no padding is needed; the face is then off-centre in the crop. A crop larger than the image is
            centred on it along that axis.

    Returns:
        Square box in pixels; it extends beyond the image only where it is larger than the image
        (or ``keep_inside`` is false).
    """
    face = detection.box if isinstance(detection, FaceDetection) else detection
    side = scale * max(face.width, face.height)
    cx, cy = face.center
    box = Box.from_center(cx, cy - shift_up * face.height, side, side)
    return box.shifted_inside(image_w, image_h) if keep_inside else box
