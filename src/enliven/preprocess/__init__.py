"""Image pre- and post-processing: face detection and crops, antialiased resizing, paste-back, best frame.

Images are ``H x W x 3`` uint8 RGB numpy arrays; boxes are :class:`Box` in pixels (see
:mod:`enliven.preprocess.boxes` for the convention). Only numpy/scipy are imported here: OpenCV
(``opencv-python-headless``) and MediaPipe (``enliven[face]``) are imported on first use and raise
:class:`MissingDependencyError` if absent.

Typical uses::

    with FaceDetector() as detector:                      # source photo
        faces = detector.detect(photo)
    crop = crop_and_resize(photo, face_crop_box(faces[0], w, h), 256)

    track = track_faces(frames, detector)                 # driving clip, streaming
    box = track.stable_box()                              # one box for the clip (FOMM crop-video)
    boxes = track.smoothed_boxes()                        # or one jitter-free box per frame

    frame_out = paste_back(frame, animated_crop, box)     # back into the full-resolution frame
"""

from enliven.preprocess._deps import MissingDependencyError
from enliven.preprocess.best_frame import best_matching_frame, face_alignment_features
from enliven.preprocess.boxes import Box, IntBox, center_square_box, square_pad_box
from enliven.preprocess.face import (
    FACE_CROP_SCALE,
    FACE_CROP_SHIFT_UP,
    FACE_KEYPOINT_NAMES,
    FaceDetection,
    FaceDetector,
    FaceLandmarker,
    face_crop_box,
    face_crop_boxes,
)
from enliven.preprocess.paste import feather_mask, paste_back
from enliven.preprocess.resize import compensate_resampling, crop_and_resize, extract_region, resize_image
from enliven.preprocess.track import FaceTrack, OneEuroBoxFilter, split_track, track_faces, track_faces_sampled

__all__ = [
    "FACE_CROP_SCALE",
    "FACE_CROP_SHIFT_UP",
    "FACE_KEYPOINT_NAMES",
    "Box",
    "FaceDetection",
    "FaceDetector",
    "FaceLandmarker",
    "FaceTrack",
    "IntBox",
    "MissingDependencyError",
    "OneEuroBoxFilter",
    "best_matching_frame",
    "center_square_box",
    "compensate_resampling",
    "crop_and_resize",
    "extract_region",
    "face_alignment_features",
    "face_crop_box",
    "face_crop_boxes",
    "feather_mask",
    "paste_back",
    "resize_image",
    "split_track",
    "square_pad_box",
    "track_faces",
    "track_faces_sampled",
]
