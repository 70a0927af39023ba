"""``Studio``: the notebook app's state and work, without widgets (unit-tested on its own).

A studio holds one photo, one driving clip and the :class:`~enliven.inference.AnimateOptions` a user picks, and
answers two questions: *what does driving frame i make of the photo* (:meth:`Studio.preview`, one model call, the
source encoded once) and *the whole clip, please* (:meth:`Studio.render`, :func:`~enliven.inference.animate_file`
with the same model, crop box and options).

A preview is the frame the render writes: the clip's frames are cut with the box a render uses, their keypoints
are tracked once in clip order (as a render tracks them) when the clip is loaded, and relative motion is measured
against the render's reference frame (the first frame with a face, or the best-matching one). Clips longer than
the preview's memory budget are previewed at evenly spaced frames (tracked in that order).

Everything that costs time is cached and redone only when an option it depends on changes: the model (name,
backend, size), the animator (motion mode, adapt scale), the source encoding (photo, box, paste-back), the clip's
crops and keypoints (clip, model, crop), the reference frame.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from enliven.errors import InputError
from enliven.inference import AnimateOptions, AnimateResult, Animator, FaceCropper, animate_file, load_for_options
from enliven.inference.animate import check_editable, detail_crop, find_best_frame
from enliven.inference.choice import ModelChoice, choose_model
from enliven.inference.driving import DrivingClip, box_at, read_source
from enliven.inference.options import is_auto, wants_best_frame
from enliven.inference.pipeline import CancelFlag, ProgressCallback, edit_keypoints
from enliven.notebook.inputs import BoxAdjustment, Clip, Photo, Preview, cut_clip, cut_photo, safe_name, shrunk
from enliven.preprocess import Box
from enliven.preprocess.best_frame import best_model_pose_frame
from enliven.types import LandmarkKind, MotionMode
from enliven.weights import DEFAULT_MODEL, LoadedModel

#: Options that change which model runs (reloaded) or its input size.
_MODEL_OPTIONS = {"model", "config", "backend", "size", "device", "threads"}
#: Options that change how the photo and the clip are cut.
_CROP_OPTIONS = {"crop", "smooth_track", "force"}


class Studio:
    """One photo, one clip, the options, and the model loaded once (see the module docstring).

    Args:
        options: the starting options (``enliven animate``'s flags).
        preview_memory_mb: the clip's preview crops take at most this many MiB (longer clips are sampled).
        max_preview_side: paste-back previews are composed in the photo shrunk to at most this side (renders use the
            photo's full resolution).
        work_dir: where uploads and renders go (default: a new temporary folder).
    """

    def __init__(
        self,
        options: AnimateOptions | None = None,
        *,
        preview_memory_mb: int = 256,
        max_preview_side: int = 1024,
        work_dir: str | Path | None = None,
    ) -> None:
        self._options = options or AnimateOptions()
        self.preview_memory_mb = preview_memory_mb
        self.max_preview_side = max_preview_side
        self.work_dir = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="enliven-notebook-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._loaded: LoadedModel | None = None
        self._loaded_for: str | None = None  # the model name self._loaded was loaded for
        self._choice: ModelChoice | None = None  # what model "auto" picked for the photo
        self._device = "cpu"
        self._animator: Animator | None = None
        self._encoded = False
        self._reference_set = False
        self._photo_source: tuple[np.ndarray, str] | None = None
        self._adjustment = BoxAdjustment()
        self._photo: Photo | None = None
        self._clip_path: tuple[Path, str] | None = None
        self._clip: Clip | None = None
        self._best_frame: int | None = None
        self._shrunk: tuple[Photo, np.ndarray, Box | None] | None = None  # the photo as previews paste into it

    # -- what is loaded ----------------------------------------------------------------------------------------
    @property
    def options(self) -> AnimateOptions:
        return self._options

    @property
    def photo(self) -> Photo | None:
        return self._photo

    @property
    def clip(self) -> Clip | None:
        return self._clip

    @property
    def adjustment(self) -> BoxAdjustment:
        return self._adjustment

    @property
    def loaded_model(self) -> LoadedModel:
        """The model the options name (``auto``: the one chosen for the photo), loaded on first use, and again after
        a model option or ``auto``'s choice changes."""
        if self._loaded is None:
            options = self._resolved_options()
            self._loaded, self._device = load_for_options(options)
            self._loaded_for = options.model
        return self._loaded

    @property
    def model_choice(self) -> ModelChoice | None:
        """What ``auto`` picked for the photo (:mod:`enliven.inference.choice`); ``None`` when the options name a
        model or there is no photo yet."""
        self._resolved_options()
        return self._choice if is_auto(self._options.model) else None

    def _resolved_options(self) -> AnimateOptions:
        """The options with ``auto`` replaced by the model chosen for the photo (the face model before any photo)."""
        options = self._options
        if not is_auto(options.model) or options.config is not None:
            return options
        if self._choice is None and self._photo_source is not None:
            self._choice = choose_model(self._photo_source[0])
        return replace(options, model=self._choice.model if self._choice is not None else DEFAULT_MODEL)

    @property
    def content(self) -> str:
        return str(self.loaded_model.metadata.get("content", "face"))

    @property
    def size(self) -> int:
        return self._get_animator().size

    @property
    def best_frame(self) -> int | None:
        """The clip frame used as the reference when it is the best-matching one (``find_best_frame``; by default for a
        body model), found on first use."""
        return self._best_frame

    # -- inputs ------------------------------------------------------------------------------------------------
    def save_upload(self, name: str, data: bytes) -> Path:
        """Write uploaded bytes to a new file in :attr:`work_dir` (a safe version of ``name``) and return it."""
        stem, suffix = safe_name(name)
        folder = Path(tempfile.mkdtemp(prefix="upload-", dir=self.work_dir))
        path = folder / f"{stem}{suffix}"
        path.write_bytes(data)
        return path

    def load_photo(self, source: str | Path | np.ndarray, name: str | None = None) -> Photo:
        """Read and cut a photo (its face found, the box adjustment reset). On error the previous photo stays.

        Raises:
            InputError: unreadable, or no usable face (:class:`~enliven.errors.NoFaceError`,
                :class:`~enliven.errors.FaceTooSmallError`, with what to do).
        """
        if isinstance(source, (str, Path)):
            path = Path(source)
            if not path.is_file():
                raise InputError(f"the photo {path} does not exist; pick a bundled photo or upload one.")
            image, name = read_source(path), name or path.name
        else:
            image, name = np.ascontiguousarray(source), name or "photo"
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise InputError(f"a photo must be an H x W x 3 uint8 RGB array, got {image.dtype} {image.shape}.")
        with self._all_or_nothing():
            before = self._animator
            if is_auto(self._options.model) and self._options.config is None:
                self._choice = choose_model(image)  # the photo may need another model (a face, a body, an animal)
                if self._choice.model != self._loaded_for:
                    self._loaded, self._animator = None, None
            photo = self._cut_photo(image, name, BoxAdjustment())
            if self._animator is not before and self._clip_path is not None:  # cut again for the new model
                self._clip = self._cut_clip(*self._clip_path, None)
        self._photo_source, self._adjustment, self._photo = (image, name), BoxAdjustment(), photo
        self._forget_encoding()
        self._best_frame = None
        return photo

    def adjust_box(self, adjustment: BoxAdjustment) -> Photo:
        """Move or scale the photo's crop box (relative to the detected one)."""
        photo = self._need_photo()
        if photo.detected is None:
            raise InputError("the photo is taken whole (crop is off), so there is no box to adjust.")
        self._adjustment = adjustment
        box = adjustment.apply(photo.detected)
        cropper = FaceCropper(self.size, content=self.content, crop=True, detector=None)  # type: ignore[arg-type]
        self._photo = replace(photo, box=box, crop=cropper.cut(photo.image, box))
        self._forget_encoding()
        self._best_frame = None
        return self._photo

    def load_clip(
        self, source: str | Path, name: str | None = None, on_progress: ProgressCallback | None = None
    ) -> Clip:
        """Decode a driving clip, cut its frames and track their keypoints (``on_progress(done, total)``).

        Raises:
            InputError: unreadable, empty, or no face in it (face models with crop).
        """
        path = Path(source)
        if not path.is_file():
            raise InputError(f"the driving clip {path} does not exist; pick a bundled clip or upload one.")
        clip = self._cut_clip(path, name or path.name, on_progress)
        self._clip_path, self._clip = (path, clip.name), clip
        self._reference_set = False
        self._best_frame = None
        return clip

    # -- options -----------------------------------------------------------------------------------------------
    def update(self, **changes: object) -> AnimateOptions:
        """Change options (the names of :class:`~enliven.inference.AnimateOptions`) and drop what they invalidate;
        the work is redone on the next preview. If the new model cannot be loaded or does not take the photo, the
        old options stay and the error is raised.

        Raises:
            ValueError: an unknown option. InputError / CheckpointError: the model or the inputs do not fit.
        """
        known = {f.name for f in fields(AnimateOptions)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown options {sorted(unknown)}; the options are {sorted(known)}")
        new = replace(self._options, **changes)  # type: ignore[arg-type]
        changed = {name for name in changes if getattr(new, name) != getattr(self._options, name)}
        if not changed:
            return self._options
        with self._all_or_nothing():
            self._options = new
            if changed & _MODEL_OPTIONS:
                self._loaded = None
                self.loaded_model  # noqa: B018 - load now: a bad name or file is reported by this call
            if changed & (_MODEL_OPTIONS | {"mode", "adapt_scale"}):
                self._check_mode(explicit="mode" in changed)
                self._animator = None
                self._get_animator()  # now: what does not fit this model is reported by this call
            if changed & (_MODEL_OPTIONS | _CROP_OPTIONS):
                self._recut()
        if changed - {"edit"}:  # an edit changes the driving keypoints only: the encoding and reference stay
            self._forget_encoding()
        if changed & {"find_best_frame"} or changed & (_MODEL_OPTIONS | _CROP_OPTIONS):
            self._best_frame = None
        return self._options

    @contextlib.contextmanager
    def _all_or_nothing(self) -> Iterator[None]:
        """What changes inside stays only if nothing fails: on an error the options, model, animator, photo and clip
        before come back (a new animator is closed); on success an animator that was replaced is closed."""
        saved = (self._options, self._choice, self._loaded, self._loaded_for, self._device, self._animator,
                 self._photo, self._clip)  # fmt: skip
        try:
            yield
        except Exception:
            if self._animator is not None and self._animator is not saved[5]:
                self._animator.close()
            (self._options, self._choice, self._loaded, self._loaded_for, self._device, self._animator, self._photo,
             self._clip) = saved  # fmt: skip
            raise
        if saved[5] is not None and self._animator is not saved[5]:
            saved[5].close()

    # -- work --------------------------------------------------------------------------------------------------
    def preview(self, position: int) -> Preview:
        """The animated frame for slider ``position`` (``0 .. len(clip.frame_indices) - 1``), exactly what a
        render writes for that frame (same crop, keypoints and reference).

        Raises:
            InputError: no photo or no clip yet. IndexError: ``position`` outside the clip.
        """
        photo, clip = self._need_photo(), self._need_clip()
        if not 0 <= position < len(clip.frame_indices):
            raise IndexError(f"frame position {position} is outside 0..{len(clip.frame_indices) - 1}")
        animator = self._ready()
        started = time.perf_counter()
        keypoints = clip.keypoints.index(position)
        if self._options.edit is not None and not self._options.edit.is_identity:
            check_editable(animator, self.loaded_model)
            keypoints = edit_keypoints(keypoints, self._options.edit, animator)  # as the render edits them
        animated = animator.animate_keypoints(keypoints)[0]
        result = self.finish(animated)
        return Preview(
            position,
            clip.frame_indices[position],
            photo.crop,
            clip.crops[position],
            result,
            time.perf_counter() - started,
        )

    def render(
        self,
        output: str | Path | None = None,
        *,
        on_progress: ProgressCallback | None = None,
        cancel: CancelFlag | None = None,
    ) -> AnimateResult:
        """Animate the whole clip into ``output`` (default: ``<photo>-<clip>.mp4`` in :attr:`work_dir`), with the
        clip's sound, the loaded model and the preview's crop box.

        Raises:
            InputError: no photo or clip. Cancelled: ``cancel`` was set (nothing is written).
        """
        photo, clip = self._need_photo(), self._need_clip()
        if output is None:
            output = self.work_dir / f"{Path(photo.name).stem}-{Path(clip.name).stem}.mp4"
        return animate_file(
            photo.image,
            clip.path,
            output,
            replace(self._options, face_worker=False),
            model=self.loaded_model,
            on_progress=on_progress,
            cancel=cancel,
            source_box=photo.box,
        )

    def close(self) -> None:
        """Release MediaPipe's graphs."""
        if self._animator is not None:
            self._animator.close()
            self._animator = None

    def __enter__(self) -> Studio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------------------------
    def _check_mode(self, *, explicit: bool) -> None:
        """A motion mode the model does not support is refused when asked for, else (a new model) set to relative."""
        model = self.loaded_model.model
        mode = MotionMode(self._options.mode)
        if mode in model.supported_modes:
            return
        if explicit:
            names = " or ".join(m.value for m in model.supported_modes)
            raise InputError(f"{model.family} models animate in {names} mode, not {mode.value}; pick one of those.")
        self._options = replace(self._options, mode=MotionMode.RELATIVE)

    def _need_photo(self) -> Photo:
        if self._photo is None:
            raise InputError("no photo yet: pick a bundled photo or upload one.")
        return self._photo

    def _need_clip(self) -> Clip:
        if self._clip is None:
            raise InputError("no driving clip yet: pick a bundled clip or upload one.")
        return self._clip

    def _get_animator(self) -> Animator:
        if self._animator is None:
            loaded = self.loaded_model
            options = self._options
            self._animator = Animator(
                loaded.model, device=self._device, mode=options.mode, adapt_scale=options.adapt_scale, size=options.size
            )
            self._forget_encoding()
        return self._animator

    def _cropper(self) -> FaceCropper:
        options = self._options
        return FaceCropper(self.size, content=self.content, crop=options.crop, any_face=options.force)  # type: ignore[arg-type]

    def _cut_photo(self, image: np.ndarray, name: str, adjustment: BoxAdjustment) -> Photo:
        with self._cropper() as cropper:
            return cut_photo(image, name, cropper, adjustment)

    def _cut_clip(self, path: Path, name: str, on_progress: ProgressCallback | None) -> Clip:
        self._reference_set = False
        options = self._options
        with self._cropper() as cropper:
            return cut_clip(
                path,
                name,
                self._get_animator(),
                cropper,
                smooth_track=options.smooth_track,
                memory_budget_mb=options.memory_budget_mb,
                preview_memory_mb=self.preview_memory_mb,
                on_progress=on_progress,
            )

    def _recut(self) -> None:
        """Cut the photo and the clip again for new model or crop options (the adjustment kept where it can be)."""
        if self._photo_source is not None:
            image, name = self._photo_source
            self._photo = self._cut_photo(image, name, self._adjustment)
        if self._clip_path is not None:
            path, name = self._clip_path
            self._clip = self._cut_clip(path, name, None)

    def _forget_encoding(self) -> None:
        self._encoded = False
        self._reference_set = False

    def _ready(self) -> Animator:
        """The animator with the photo encoded and the render's reference frame set."""
        animator = self._get_animator()
        photo, clip = self._need_photo(), self._need_clip()
        if not self._encoded:
            image, box = self.preview_photo()
            animator.set_source(photo.crop, detail=detail_crop(image, box, animator, self._options))
            self._encoded, self._reference_set = True, False
        if not self._reference_set:
            best = wants_best_frame(self._options.find_best_frame, animator.landmark_kind)  # as animate_file's
            if best and animator.landmark_kind is LandmarkKind.POSE:
                if self._best_frame is None:  # a body: the frame posed most like the photo, of the clip's landmarks
                    points = clip.keypoints.value.detach().cpu().numpy()
                    self._best_frame = best_model_pose_frame(animator.source_keypoints, list(points))
                animator.set_reference_keypoints(clip.keypoints.index(self._best_frame))
            elif best:
                if self._best_frame is None:
                    self._best_frame = find_best_frame(
                        DrivingClip(clip.path, self._options.memory_budget_mb).frames(), photo.crop, clip.boxes
                    )
                frame = DrivingClip(clip.path, self._options.memory_budget_mb).frame_at(self._best_frame)
                with self._cropper() as cropper:
                    animator.set_reference(cropper.cut(frame, box_at(clip.boxes, self._best_frame)))
            else:
                found = ~np.isnan(clip.keypoints.value.flatten(1).cpu().numpy()).any(axis=1)
                first = int(found.argmax()) if found.any() else 0
                animator.set_reference_keypoints(clip.keypoints.index(first))
            self._reference_set = True
        return animator

    def preview_photo(self) -> tuple[np.ndarray, Box | None]:
        """The photo (and box) that paste-back previews compose in: shrunk to at most ``max_preview_side`` (once per
        photo and box)."""
        photo = self._need_photo()
        if self._shrunk is not None and self._shrunk[0] is photo:
            return self._shrunk[1], self._shrunk[2]
        image, factor = shrunk(photo.image, self.max_preview_side)
        box = photo.box if photo.box is None or factor == 1.0 else Box(*(v * factor for v in photo.box.as_array()))
        self._shrunk = (photo, image, box)
        return image, box

    def finish(self, animated: np.ndarray) -> np.ndarray:
        """An animated crop as previews show it: pasted back into the (shrunk) photo when the options say so."""
        if not self._options.paste_back:
            return animated
        image, box = self.preview_photo()
        with self._cropper() as cropper:
            return cropper.paste(image, animated, box)
