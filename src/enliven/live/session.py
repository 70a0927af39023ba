"""``LiveSession``: one photo (or a set of avatars) animated by a live stream of camera frames.

The session owns the model (an :class:`~enliven.inference.Animator`, each avatar encoded once when chosen), a
streaming :class:`~enliven.inference.FaceCropper` (the face box of every camera frame smoothed by the One-Euro
filter; the same class crops files in :func:`~enliven.inference.animate_file`), and the settings a user changes
while it runs (avatar, overlay, paste-back, motion mode, recalibration). It works in two steps, so that a loop can
run them on two threads and overlap them on two cores (:func:`~enliven.live.loop.run_live`):

* :meth:`LiveSession.track` — a camera frame's face crop and driving keypoints (MediaPipe);
* :meth:`LiveSession.render` — the animated avatar and the frame to show (overlay on the camera frame, or alone).

Relative motion is measured against a neutral-pose reference: the first frame with a face after start, and again
after :meth:`LiveSession.recalibrate` (avatarify's calibration key). While the face is lost the last good avatar is
held and :attr:`LiveFrame.face_found` says so.

Every setter is safe to call from any thread (a web page's handler, a window's key); changes that touch the model
are applied by the render step between two frames.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from enliven.errors import InputError, NoFaceError
from enliven.inference.choice import ModelChoice
from enliven.inference.cropper import Crop, FaceCropper
from enliven.inference.pipeline import edit_keypoints
from enliven.live.avatars import Avatar, make_avatar, read_avatars
from enliven.live.camera import CameraFrame
from enliven.live.overlay import (
    Corner,
    Overlay,
    face_mask,
    fit,
    paste_over_face,
    picture_in_picture,
    read_stamp,
    stamp_index,
)
from enliven.motion.edits import ExpressionEdit
from enliven.types import Keypoints, MotionMode

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveSettings:
    """What a live session shows; every field can change while it runs (:meth:`LiveSession.update`).

    Attributes:
        overlay: the avatar alone, picture-in-picture on the camera frame, or pasted over the live face (while
            the face is lost, picture-in-picture: there is no face to paste over).
        corner: where the picture-in-picture goes.
        pip_scale: the picture-in-picture's height as a fraction of the frame's.
        paste_back: show the animated face pasted back into the whole avatar photo (else the square crop).
        mode: relative (default: the movement since the neutral reference) or absolute motion.
        show_stats: draw the fps / latency readout (windows).
        stamp: copy the camera frame's index stamp onto the shown frame (latency benchmarks).
        edit: expression and pose controls on the driving face (e.g. ``expression=1.5`` exaggerates the streamer's
            expression, ``0.5`` calms it; :mod:`enliven.motion.edits`), for face-mesh models; text is parsed.
    """

    overlay: Overlay = Overlay.NONE
    corner: Corner = Corner.BOTTOM_RIGHT
    pip_scale: float = 0.33
    paste_back: bool = True
    mode: MotionMode = MotionMode.RELATIVE
    show_stats: bool = True
    stamp: bool = False
    edit: ExpressionEdit | None = None

    def __post_init__(self) -> None:
        if isinstance(self.edit, str):
            object.__setattr__(self, "edit", ExpressionEdit.parse(self.edit))
        object.__setattr__(self, "overlay", Overlay(self.overlay))
        object.__setattr__(self, "corner", Corner(self.corner))
        object.__setattr__(self, "mode", MotionMode(self.mode))
        if not 0.05 <= self.pip_scale <= 1.0:
            raise ValueError(f"pip_scale must be between 0.05 and 1, got {self.pip_scale}")


@dataclass(frozen=True, eq=False)
class Tracked:
    """A camera frame after :meth:`LiveSession.track`: its face crop and driving keypoints (``None``: no face)."""

    frame: CameraFrame
    crop: Crop
    keypoints: Keypoints | None
    tracked_at: float


@dataclass(frozen=True, eq=False)
class LiveFrame:
    """A frame to show.

    Attributes:
        image: ``H x W x 3`` uint8 RGB, the camera frame's size.
        avatar: the animated avatar alone (the photo with the face pasted back, or the ``size x size`` crop).
        camera: the camera frame it answers.
        face_found: the face was found in the camera frame (``False``: the last good avatar is held).
        avatar_name: which avatar is shown.
        rendered_at: ``time.perf_counter()`` when the frame was ready.
    """

    image: np.ndarray
    avatar: np.ndarray
    camera: CameraFrame
    face_found: bool
    avatar_name: str
    rendered_at: float = field(default_factory=time.perf_counter)

    @property
    def latency(self) -> float:
        """Seconds from capture to this frame being ready."""
        return self.rendered_at - self.camera.captured_at


class LiveSession:
    """Animate avatars with live frames (see the module docstring).

    Args:
        animator: the model, wrapped once (:meth:`LiveSession.load` makes one from a model name).
        avatars: photos (``H x W x 3`` uint8 RGB arrays, or :class:`Avatar`), at least one.
        content: ``face`` crops camera frames around the face (face models); ``other`` pads them to a square.
        fps: the camera's frame rate (the One-Euro filter's time step).
        settings: what to show (changeable later with :meth:`update`).
        names: names of array avatars (default ``avatar 1``, ``avatar 2``...).

    Raises:
        NoFaceError: a face model and no avatar shows a face.
    """

    def __init__(
        self,
        animator,
        avatars: Sequence[np.ndarray | Avatar],
        *,
        content: str = "face",
        fps: float = 25.0,
        settings: LiveSettings | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        if not avatars:
            raise InputError("a live session needs at least one source image.")
        self.animator = animator
        self.settings = settings or LiveSettings()
        self._cropper = FaceCropper(animator.size, content=content, fps=fps)  # type: ignore[arg-type]
        self._source_cropper = FaceCropper(animator.size, content=content, detector=None)
        self._lock = threading.RLock()  # the tracking state (cropper, face mesh) and the avatar list
        self._pending: list[Callable[[], None]] = []  # model changes, applied by render between frames
        self.model_choice: ModelChoice | None = None  # what --model auto picked (set by load), or None
        self._avatars: list[Avatar] = []
        for number, item in enumerate(avatars):
            if isinstance(item, Avatar):
                self._avatars.append(item)
            else:
                name = names[number] if names is not None else f"avatar {number + 1}"
                self._avatars.append(self.make_avatar(item, name))
        self._index = 0
        self._held: np.ndarray | None = None
        self._face_mask: np.ndarray | None = None
        self._encoded: int | None = None
        self._apply_mode(self.settings.mode)
        self._encode(0)

    # -- construction ------------------------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        sources: str | Path | Sequence[str | Path],
        *,
        model: str | None = None,
        backend: str = "torch",
        device: str = "auto",
        threads: int | None = None,
        size: int | None = None,
        adapt_scale: bool = True,
        fps: float = 25.0,
        settings: LiveSettings | None = None,
    ) -> LiveSession:
        """A session from a model name and source paths: an image, several images, or a folder of images (each
        unreadable image, or one without a face, is skipped with a warning). ``model`` ``auto`` (or ``None``): the
        model :mod:`enliven.inference.choice` picks for the first image (the session's ``model_choice``).

        Raises:
            InputError: no usable image among ``sources``; a bad model name.
        """
        from enliven.inference import AnimateOptions, Animator, load_for_options
        from enliven.inference.choice import resolve_auto

        settings = settings or LiveSettings()
        images, names = read_avatars(sources)
        options = AnimateOptions(model=model, backend=backend, device=device, threads=threads, size=size)
        options, choice = resolve_auto(options, images[0])
        loaded, device_name = load_for_options(options)
        animator = Animator(
            loaded.model, device=device_name, mode=MotionMode.RELATIVE, adapt_scale=adapt_scale, size=size
        )
        content = loaded.metadata.get("content", "face")
        session_avatars: list[Avatar] = []
        with FaceCropper(animator.size, content=content) as cropper:  # type: ignore[arg-type]
            for image, name in zip(images, names, strict=True):
                try:
                    session_avatars.append(make_avatar(image, name, cropper))
                except NoFaceError:
                    logger.warning("skipping %s: no face was found in it", name)
        if not session_avatars:
            animator.close()
            raise NoFaceError(
                "no face was found in any source image; give a photo with a clearly visible face (or a folder "
                "holding one)."
            )
        session = cls(animator, session_avatars, content=content, fps=fps, settings=settings)
        session.model_choice = choice
        return session

    def make_avatar(self, image: np.ndarray, name: str) -> Avatar:
        """An avatar from a photo for this session's model (see :func:`make_avatar`)."""
        return make_avatar(image, name, self._source_cropper)

    # -- what a user changes -----------------------------------------------------------------------------------
    @property
    def avatars(self) -> list[str]:
        """The avatars' names, in order."""
        with self._lock:
            return [avatar.name for avatar in self._avatars]

    @property
    def avatar_index(self) -> int:
        return self._index

    def select(self, index: int) -> None:
        """Show avatar ``index`` (wraps around: ``-1`` is the last); it is encoded before the next frame."""
        with self._lock:
            self._index = index % len(self._avatars)
            self._pending.append(lambda: self._encode(self._index))

    def next_avatar(self) -> None:
        self.select(self._index + 1)

    def previous_avatar(self) -> None:
        self.select(self._index - 1)

    def add_avatar(self, image: np.ndarray, name: str, *, show: bool = True) -> int:
        """Add a photo (e.g. an upload) to the avatars; returns its index.

        Raises:
            NoFaceError: a face model and no face in the photo (the avatars are unchanged).
        """
        avatar = self.make_avatar(image, name)
        with self._lock:
            self._avatars.append(avatar)
            index = len(self._avatars) - 1
        if show:
            self.select(index)
        return index

    def recalibrate(self) -> None:
        """Take the next frame with a face as the neutral-pose reference (relative mode)."""
        with self._lock:
            self._pending.append(self.animator.reset_reference)

    def update(self, **changes: object) -> LiveSettings:
        """Change settings (the fields of :class:`LiveSettings`); returns the new settings.

        Raises:
            ValueError: an unknown field or a bad value.
        """
        with self._lock:
            settings = replace(self.settings, **changes)  # type: ignore[arg-type]
            if settings.mode is not self.settings.mode:
                if settings.mode not in self.animator.model.supported_modes:
                    raise ValueError(f"this model does not support the {settings.mode.value} mode")
                self._pending.append(lambda: self._apply_mode(settings.mode))
            self.settings = settings
            return settings

    # -- per frame ---------------------------------------------------------------------------------------------
    def track(self, frame: CameraFrame) -> Tracked:
        """The face crop (smoothed box) and driving keypoints of a camera frame (``keypoints`` ``None``: no face)."""
        with self._lock:
            crop = self._cropper.crop_frame(frame.image)
            keypoints = None
            if crop.face_found or not self._cropper.finds_faces:
                found = self.animator.driving_keypoints(crop.image)
                if not bool(found.value.isnan().any()):
                    keypoints = found
        return Tracked(frame, crop, keypoints, time.perf_counter())

    def render(self, tracked: Tracked) -> LiveFrame:
        """The animated avatar for a tracked frame and the frame to show (see :class:`LiveSettings`)."""
        self._apply_pending()
        settings = self.settings
        avatar = self._avatars[self._encoded or 0]
        if tracked.keypoints is not None:
            keypoints = tracked.keypoints
            if settings.edit is not None and not settings.edit.is_identity and self.animator.uses_face_mesh:
                keypoints = edit_keypoints(keypoints, settings.edit, self.animator)
            animated = self.animator.animate_keypoints(keypoints)[0]
            self._held = animated
        elif self._held is None:
            animated = avatar.crop.image  # no face yet: the avatar as it is
        else:
            animated = self._held  # face lost: hold the last good frame
        camera = tracked.frame.image
        height, width = camera.shape[:2]
        if settings.paste_back and avatar.crop.box is not None and self._source_cropper.content == "body":
            shown_avatar = self._source_cropper.paste(avatar.image, animated, avatar.crop.box)  # by the person mask
        elif settings.paste_back and avatar.crop.box is not None:
            shown_avatar = paste_over_face(avatar.image, animated, avatar.crop.box, self._cropper.feather)
        else:
            shown_avatar = animated
        if settings.overlay is Overlay.FACE and tracked.crop.box is not None and tracked.keypoints is not None:
            image = paste_over_face(camera, animated, tracked.crop.box, mask=self._face_mask)
        elif settings.overlay is Overlay.PIP or settings.overlay is Overlay.FACE:
            image = picture_in_picture(camera, shown_avatar, corner=settings.corner, scale=settings.pip_scale)
        else:
            image = fit(shown_avatar, (width, height))
            if image is shown_avatar:
                image = image.copy()
        if settings.stamp and (index := read_stamp(camera)) is not None:
            stamp_index(image, index)
        return LiveFrame(image, shown_avatar, tracked.frame, tracked.keypoints is not None, avatar.name)

    def process(self, frame: CameraFrame) -> LiveFrame:
        """:meth:`track` then :meth:`render` on this thread."""
        return self.render(self.track(frame))

    def restart(self) -> None:
        """Forget the face track and the reference (the camera changed): the next face starts afresh."""
        with self._lock:
            self._cropper.reset()
            self._pending.append(self.animator.restart_tracking)

    def close(self) -> None:
        self._cropper.close()
        self._source_cropper.close()
        self.animator.close()

    def __enter__(self) -> LiveSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------------------------
    def _apply_pending(self) -> None:
        if not self._pending:
            return
        with self._lock:  # the tracking step waits: set_source restarts the face mesh's track
            pending, self._pending = self._pending, []
            for change in pending:
                change()

    def _encode(self, index: int) -> None:
        if self._encoded == index:
            return
        avatar = self._avatars[index]
        self.animator.set_source(avatar.crop.image)
        self._encoded = index
        self._held = None
        # Face-mesh models: the avatar's face outline, so the face overlay lays the face, not the photo's background,
        # over the live face. Other models' few keypoints outline no face: the whole square is laid.
        points = self.animator.source_keypoints
        self._face_mask = face_mask(points, self.animator.size) if self.animator.uses_face_mesh else None

    def _apply_mode(self, mode: MotionMode) -> None:
        self.animator.mode = MotionMode(mode)
        self.animator.reset_reference()
