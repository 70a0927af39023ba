"""``animate_motion``: a photo and a :class:`~enliven.motion.sequence.FaceMotion` (generated, varied, or taken
from a clip) in, an animated video out, through the same renderer, crop and paste-back as :func:`animate_file`.

The motion becomes the landmarks of a virtual face (:meth:`FaceMotion.landmarks`) that drive the model in relative
mode against that face at rest (:meth:`FaceMotion.reference_landmarks`): the photo keeps its own pose and
expression at rest and moves as the motion moves away from rest. Only models driven by face-mesh landmarks
(enliven-lite) can be driven this way.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from enliven.face_mesh import pixels_to_normalized
from enliven.inference.animate import AnimateResult, _resolve_model, check_editable, detail_crop
from enliven.inference.animator import Animator
from enliven.inference.cropper import Crop, FaceCropper
from enliven.inference.driving import checked_image, read_source
from enliven.inference.options import AnimateOptions
from enliven.inference.pipeline import CancelFlag, ProgressCallback, animate_frames, batched_points
from enliven.io import check_output_path
from enliven.models.base import MotionTransferModel
from enliven.motion.edits import ExpressionEdit
from enliven.motion.sequence import FaceMotion
from enliven.preprocess import Box
from enliven.types import MotionMode
from enliven.weights import LoadedModel


def motion_keypoints(
    motion: FaceMotion, size: int, edit: ExpressionEdit | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The driving keypoints of ``motion`` for a face-mesh model at ``size``: ``T x 468 x 2`` and the ``468 x 2``
    reference, in ``[-1, 1]``, with ``edit`` applied to the driving ones."""
    reference = motion.reference_landmarks(size)
    points = motion.landmarks(size)
    if edit is not None and not edit.is_identity:
        points = edit.apply(points, reference)
    return (
        pixels_to_normalized(points, size, size).astype(np.float32),
        pixels_to_normalized(reference, size, size).astype(np.float32),
    )


def animate_motion(
    source: str | Path | np.ndarray,
    motion: FaceMotion,
    output: str | Path,
    options: AnimateOptions | None = None,
    *,
    edit: ExpressionEdit | None = None,
    model: LoadedModel | MotionTransferModel | None = None,
    on_progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
    source_box: Box | None = None,
) -> AnimateResult:
    """Animate ``source`` with ``motion`` and write ``output`` (see the module docstring).

    Args:
        source: an image path, or an ``H x W x 3`` uint8 RGB array.
        motion: the motion (its frame rate is the video's).
        output: ``.mp4``/``.webm``/``.gif`` file, or a folder ending with ``/`` for PNG frames.
        options: how to animate (:class:`AnimateOptions`; the mode is relative whatever it says, and the options
            about a driving clip do not apply).
        edit: expression and pose controls applied on top of the motion.
        model, on_progress, cancel, source_box: as for :func:`~enliven.inference.animate.animate_file`.

    Raises:
        InputError: the model is not driven by face-mesh landmarks, or the source has no usable face.
        OutputError: the output cannot be written. Cancelled: ``cancel`` was set.
    """
    started = time.perf_counter()
    options = options or AnimateOptions()
    output = check_output_path(output, inputs=[source] if isinstance(source, (str, Path)) else [])
    source_image = read_source(Path(source)) if isinstance(source, (str, Path)) else checked_image(source)
    loaded, device = _resolve_model(model, options)
    with (
        Animator(
            loaded.model, device=device, mode=MotionMode.RELATIVE, adapt_scale=options.adapt_scale, size=options.size
        ) as animator,
        FaceCropper(
            animator.size, content="face", crop=options.crop, fps=motion.fps, any_face=options.force
        ) as cropper,
    ):
        check_editable(animator, loaded)
        what = f"the source {source}" if isinstance(source, (str, Path)) else "the source"
        if source_box is not None:
            source_crop = Crop(cropper.cut(source_image, source_box), source_box, cropper.finds_faces)
        else:
            source_crop = cropper.crop_source(source_image, what)
        animator.set_source(source_crop.image, detail=detail_crop(source_image, source_crop.box, animator, options))
        points, reference = motion_keypoints(motion, animator.size, edit)
        animator.set_reference_keypoints(reference)
        written = animate_frames(
            batched_points(iter(points), options.batch_size),
            animator=animator,
            finish=(lambda animated: cropper.paste(source_image, animated, source_crop.box))
            if options.paste_back
            else None,
            output=output,
            fps=motion.fps,
            audio=None,
            total=len(points),
            on_progress=on_progress,
            cancel=cancel,
        )
    return AnimateResult(
        output,
        written,
        float(motion.fps),
        time.perf_counter() - started,
        source_crop.box,
        None,
        loaded.metadata.get("untrained") == "true",
    )
