"""``EnlivenApp``: the notebook's widget app (ipywidgets 8), a thin face over :class:`~enliven.notebook.Studio`.

Layout, top to bottom: a message line; the photo (bundled or uploaded; its face box drawn and dragged with the mouse,
sliders that move and scale it, the crop the model sees); the options of ``enliven animate``; then tabs, one per way
of driving the photo: *Driving video* (a clip, a frame slider answered by one model call, render with progress,
cancel, an inline player and a download link), *Webcam* (the browser's webcam, :class:`WebcamAvatar`) and
*Generated motion* (:class:`~enliven.notebook.motion.MotionTab`); other ways of driving are added with
:meth:`EnlivenApp.add_tab`. Expression and pose sliders (an edit, :mod:`enliven.motion.edits`) apply to all three.

Every handler reports a problem in the message line in one sentence and leaves the app usable; unexpected errors
are logged with their traceback (``logging``), not printed into the notebook.
"""

from __future__ import annotations

import contextlib
import functools
import html
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import ipywidgets as w
import numpy as np

from enliven.errors import EnlivenError, InputError
from enliven.examples import example_clips, example_photos
from enliven.inference import AnimateOptions, Animator
from enliven.inference.options import AUTO
from enliven.io import encode_jpeg as jpeg
from enliven.live.overlay import Overlay
from enliven.motion.edits import ExpressionEdit
from enliven.notebook.box_editor import BoxEditor
from enliven.notebook.inputs import BoxAdjustment, shrunk
from enliven.notebook.motion import MotionStudio, MotionTab, edit_sliders
from enliven.notebook.render_panel import RenderPanel
from enliven.notebook.studio import Studio
from enliven.notebook.upload import FilePicker
from enliven.notebook.views import available_models, fractions, in_app_words, titled
from enliven.notebook.webcam import WebcamAvatar
from enliven.types import MotionMode

logger = logging.getLogger(__name__)

#: Uploads larger than these are refused in the browser, before anything is sent.
MAX_PHOTO_BYTES = 25 * 2**20
MAX_CLIP_BYTES = 100 * 2**20
#: Model sizes offered besides the model's own.
SIZES = (128, 192, 256, 384, 512)
VIEW = "256px"
#: The reference frame's choices (``AnimateOptions.find_best_frame``): label -> the option's value.
REFERENCE_VALUES: dict[str, bool | None] = {"auto (bodies: best)": None, "first frame": False, "best match": True}
REFERENCE_CHOICES = list(REFERENCE_VALUES)


def _reference_name(find_best_frame: bool | None) -> str:
    return next(name for name, value in REFERENCE_VALUES.items() if value is find_best_frame)


class EnlivenApp(w.VBox):
    """The notebook app (see the module docstring); display it as a cell's last expression.

    Args:
        photo: a path to start with (default: the bundled portrait).
        clip: a driving clip path to start with (default: the bundled speaker).
        options: ``enliven animate``'s options to start with.
        studio: a studio to drive (default: a new one with ``options``).
    """

    def __init__(
        self,
        photo: str | Path | None = None,
        clip: str | Path | None = None,
        options: AnimateOptions | None = None,
        *,
        studio: Studio | None = None,
    ) -> None:
        self.studio = studio or Studio(options or AnimateOptions(paste_back=True))
        opts = self.studio.options
        self.message = w.HTML().add_class("enliven-message")
        photos, clips = example_photos(), example_clips()

        # the photo
        self.photo_choice = w.Dropdown(options=list(photos), description="Photo", value=None)
        self.photo_upload = FilePicker(
            description="Upload a photo",
            accept="image/*",
            max_bytes=MAX_PHOTO_BYTES,
            too_large_hint="save it smaller, or give its path from Python: app.load_photo(path)",
        )
        self.photo_view = BoxEditor(layout=w.Layout(max_width="320px"))
        self.crop_view = w.Image(format="jpeg", layout=w.Layout(width="128px")).add_class("enliven-crop")
        slider = functools.partial(w.FloatSlider, step=0.01, continuous_update=False, readout_format=".2f",
                                   layout=w.Layout(width="260px"), style={"description_width": "60px"})  # fmt: skip
        self.box_x = slider(description="box x", min=-0.5, max=0.5, value=0.0)
        self.box_y = slider(description="box y", min=-0.5, max=0.5, value=0.0)
        self.box_scale = slider(description="box size", min=0.5, max=2.0, value=1.0)
        self.box_reset = w.Button(description="Reset box", layout=w.Layout(width="120px"))
        photo_column = w.VBox(
            [self.photo_choice, self.photo_upload, self.photo_view], layout=w.Layout(margin="0 16px 0 0")
        )
        box_column = w.VBox([w.HTML("The crop the model sees:"), self.crop_view, self.box_x, self.box_y,
                             self.box_scale, self.box_reset], layout=w.Layout(margin="0 16px 0 0"))  # fmt: skip

        # the options
        model_names = [AUTO, *available_models(opts.model or AUTO)]
        narrow = {"layout": w.Layout(width="280px"), "style": {"description_width": "70px"}}
        self.model = w.Dropdown(options=list(dict.fromkeys(model_names)), value=opts.model or AUTO, description="Model",
                                **narrow)  # fmt: skip
        self.backend = w.Dropdown(options=["torch", "onnx"], value=opts.backend, description="Backend", **narrow)
        size_options = [("model's own", 0)] + [(f"{s} x {s}", s) for s in SIZES]
        self.size = w.Dropdown(options=size_options, value=opts.size or 0, description="Size", **narrow)
        self.mode = w.ToggleButtons(options=[m.value for m in MotionMode], value=MotionMode(opts.mode).value,
                                    style={"button_width": "80px"})  # fmt: skip
        check = functools.partial(w.Checkbox, indent=False)
        self.adapt_scale = check(value=opts.adapt_scale, description="adapt the movement's scale")
        # three states (a Dropdown's None would read as "nothing selected", so the values are names)
        self.find_best_frame = w.Dropdown(options=REFERENCE_CHOICES, value=_reference_name(opts.find_best_frame),
                                          description="Reference", **narrow)  # fmt: skip
        self.crop = check(value=opts.crop, description="crop the face")
        self.smooth_track = check(value=opts.smooth_track, description="follow the face (smoothed track)")
        self.force = check(value=opts.force, description="any face size (a body or a scene)")
        self.paste_back = check(value=opts.paste_back, description="paste back into the photo")
        self.edits = edit_sliders()
        self.edit_reset = w.Button(description="Reset expression", layout=w.Layout(width="160px"))
        expression = w.Accordion(children=[w.VBox([*self.edits.values(), self.edit_reset])])
        expression.set_title(0, "Expression and pose (every tab)")
        settings = w.VBox([
            w.HTML("<b>Options</b> (those of <code>enliven animate</code>)"),
            self.model, self.backend, self.size, w.HTML("Motion:"), self.mode,
            self.adapt_scale, self.find_best_frame, self.crop, self.smooth_track, self.force, self.paste_back,
            expression,
        ])  # fmt: skip

        # driving video
        self.clip_choice = w.Dropdown(options=list(clips), description="Clip", value=None)
        self.clip_upload = FilePicker(
            description="Upload a clip",
            accept="video/*,.gif",
            max_bytes=MAX_CLIP_BYTES,
            too_large_hint="shorten or re-encode it, give its path from Python (app.load_clip(path)), or use "
            "enliven animate",
        )
        self.frame = w.IntSlider(description="Frame", min=0, max=0, continuous_update=True).add_class("enliven-frame")
        self.play = w.Play(interval=40, min=0, max=0, description="play")
        w.jslink((self.play, "value"), (self.frame, "value"))
        self.source_view = w.Image(format="jpeg", layout=w.Layout(width=VIEW)).add_class("enliven-source")
        self.driving_view = w.Image(format="jpeg", layout=w.Layout(width=VIEW)).add_class("enliven-driving")
        self.result_view = w.Image(format="jpeg", layout=w.Layout(width=VIEW)).add_class("enliven-result")
        self.timing = w.Label().add_class("enliven-timing")
        views = w.HBox([titled("Source", self.source_view), titled("Driving", self.driving_view),
                        titled("Result", self.result_view)])  # fmt: skip
        self.render_panel = RenderPanel(
            lambda progress, cancel: self.studio.render(on_progress=progress, cancel=cancel),
            self.show_error,
            check=lambda: None if self.studio.photo and self.studio.clip else "Pick a photo and a driving clip first.",
        )
        panel = self.render_panel  # its widgets, by the names tests and scripts use
        self.render_button, self.cancel_button, self.progress = panel.render_button, panel.cancel_button, panel.progress
        self.render_state, self.video, self.download = panel.state, panel.video, panel.download
        driving_tab = w.VBox([
            w.HBox([self.clip_choice, self.clip_upload]),
            w.HBox([self.play, self.frame, self.timing]),
            views,
            *self.render_panel.widgets,
        ])  # fmt: skip
        self.webcam = WebcamAvatar(self._live_session, on_error=self.show_error)
        self.overlay = w.ToggleButtons(options=[o.value for o in Overlay], value=Overlay.NONE.value)
        webcam_tab = w.VBox([
            w.HTML("Your browser's webcam drives the photo (the first frame with a face is the neutral pose: "
                   "<i>Recalibrate</i> takes it again). Overlay: the avatar alone, picture-in-picture on the camera "
                   "frame, or pasted over your face."),
            self.overlay,
            self.webcam,
        ])  # fmt: skip
        self.tabs = w.Tab(children=[driving_tab, webcam_tab])
        self.tabs.set_title(0, "Driving video")
        self.tabs.set_title(1, "Webcam")
        self.motion_tab = MotionTab(MotionStudio(self.studio), on_error=self.show_error)
        self.add_tab("Generated motion", self.motion_tab)

        super().__init__([
            w.HTML("<h3 style='margin:0'>enliven: bring a photo to life</h3>"),
            self.message,
            w.HBox([photo_column, box_column, settings]),
            self.tabs,
        ])  # fmt: skip
        self.add_class("enliven-app")
        self._shown_source: np.ndarray | None = None  # what the views show already (not sent again)
        self._shown_photo: np.ndarray | None = None
        self._syncing = False  # widgets are being set to the studio's state: not a user's change
        self._wire()
        self._start(photo, clip, photos, clips)

    # -- public ------------------------------------------------------------------------------------------------
    def add_tab(self, title: str, widget: w.Widget) -> None:
        """Add a way of driving the photo (e.g. generated motion) as a tab beside *Driving video* and *Webcam*."""
        self.tabs.children = [*self.tabs.children, widget]
        self.tabs.set_title(len(self.tabs.children) - 1, title)

    def load_photo(self, path: str | Path) -> None:
        """Use the photo at ``path`` (as if uploaded)."""
        self._guarded(lambda: self._use_photo(path, Path(path).name))

    def load_clip(self, path: str | Path) -> None:
        """Use the driving clip at ``path``, of any size (uploads are limited to :data:`MAX_CLIP_BYTES`)."""
        self._guarded(lambda: self._use_clip(path, Path(path).name))

    def show_frame(self, position: int | None = None) -> None:
        """Show the animated frame at slider ``position`` (default: the slider's)."""
        if position is not None and position != self.frame.value:
            self.frame.value = position  # the observer shows it
            return
        self._guarded(self._show_frame)

    def render(self, wait: bool = False) -> None:
        """Press *Render* (``wait``: return when the render has finished)."""
        self.render_panel.start(wait)

    def cancel(self) -> None:
        """Press *Cancel*."""
        self.render_panel.cancel()

    def show_error(self, sentence: str) -> None:
        self.message.value = f"<span style='color:#b00020'>{html.escape(sentence)}</span>"

    def show_info(self, sentence: str) -> None:
        self.message.value = f"<span style='color:#555'>{html.escape(sentence)}</span>"

    # -- wiring ------------------------------------------------------------------------------------------------
    def _wire(self) -> None:
        on = self._on_change
        on(self.photo_choice, lambda v: self._use_photo(example_photos()[v], v) if v else None)
        on(self.clip_choice, lambda v: self._use_clip(example_clips()[v], v) if v else None)
        self.photo_upload.on_file(lambda name, data: self._guarded(lambda: self._upload_photo(name, data)))
        self.clip_upload.on_file(lambda name, data: self._guarded(lambda: self._upload_clip(name, data)))
        self.photo_upload.on_error(self.show_error)
        self.clip_upload.on_error(self.show_error)
        for slider in (self.box_x, self.box_y, self.box_scale):
            on(slider, lambda _v: self._adjust_box())
        self.box_reset.on_click(lambda _b: self._guarded(self._reset_box))
        on(self.photo_view, lambda v: self._box_dragged(v), name="box")
        on(self.model, lambda v: self._set_option(model=v))
        on(self.backend, lambda v: self._set_option(backend=v))
        on(self.size, lambda v: self._set_option(size=v or None))
        on(self.mode, lambda v: self._set_option(mode=MotionMode(v)))
        on(self.adapt_scale, lambda v: self._set_option(adapt_scale=v))
        on(self.find_best_frame, lambda v: self._set_option(find_best_frame=REFERENCE_VALUES[v]))
        on(self.crop, lambda v: self._set_option(crop=v))
        on(self.smooth_track, lambda v: self._set_option(smooth_track=v))
        on(self.force, lambda v: self._set_option(force=v))
        on(self.paste_back, lambda v: self._set_option(paste_back=v))
        on(self.frame, lambda _v: self._show_frame())
        on(self.overlay, lambda v: self.webcam.session.update(overlay=v) if self.webcam.session else None)
        for slider in self.edits.values():
            on(slider, lambda _v: self._set_edit())
        self.edit_reset.on_click(lambda _b: self._guarded(self._reset_edit))

    def _on_change(self, widget: w.Widget, action: Callable[[object], None], name: str = "value") -> None:
        def observer(change: dict) -> None:
            if not self._syncing:  # not a user's change: the app is showing the studio's state
                self._guarded(lambda: action(change["new"]))

        widget.observe(observer, names=name)

    def _guarded(self, action: Callable[[], None]) -> None:
        try:
            action()
        except EnlivenError as error:
            self.show_error(in_app_words(str(error), self.studio.work_dir))
        except Exception as error:
            logger.exception("the notebook app failed")
            self.show_error(f"Something went wrong ({type(error).__name__}: {error}); the app is still usable.")

    def _start(self, photo: str | Path | None, clip: str | Path | None, photos: dict, clips: dict) -> None:
        photo_path = Path(photo) if photo else next(iter(photos.values()), None)
        clip_path = Path(clip) if clip else next(iter(clips.values()), None)
        if photo_path is not None:
            self._guarded(lambda: self._use_photo(photo_path, photo_path.name))
        if clip_path is not None:
            self._guarded(lambda: self._use_clip(clip_path, clip_path.name))

    # -- actions -----------------------------------------------------------------------------------------------
    def _use_photo(self, path: str | Path, name: str) -> None:
        self.show_info(f"Finding the face in {name}...")
        self.studio.load_photo(path, name)
        with self._showing():
            self.photo_choice.value = name if name in self.photo_choice.options else None
        choice = self.studio.model_choice
        found = f"{choice.line}" if choice is not None else "the face is found"
        self._after_photo(f"{name}: {found}; move the frame slider or press Render.")

    def _upload_photo(self, name: str, data: bytes) -> None:
        self._use_photo(self.studio.save_upload(name, data), name)
        self.photo_upload.state = f"using {name}"

    def _use_clip(self, path: str | Path, name: str) -> None:
        self.show_info(f"Reading {name} and tracking its face...")
        clip = self.studio.load_clip(path, name, on_progress=self._progress)
        with self._showing():
            self.clip_choice.value = name if name in self.clip_choice.options else None
        last = len(clip.frame_indices) - 1
        self.frame.value = min(self.frame.value, last)
        self.frame.max = self.play.max = last
        self.play.interval = max(10, round(1000 / clip.fps * clip.length / len(clip.frame_indices)))
        sampled = "" if len(clip.frame_indices) == clip.length else f" (the slider shows {last + 1} of them)"
        self.show_info(f"{name}: {clip.length} frames at {clip.fps:g} fps{sampled}.")
        self._show_frame()

    def _upload_clip(self, name: str, data: bytes) -> None:
        self._use_clip(self.studio.save_upload(name, data), name)
        self.clip_upload.state = f"using {name}"

    def _after_photo(self, sentence: str) -> None:
        self._set_box_sliders(self.studio.adjustment)
        self._show_photo()
        self.webcam.restart()
        self.show_info(sentence)
        if self.studio.clip is not None:
            self._show_frame()

    def _set_box_sliders(self, adjustment: BoxAdjustment) -> None:
        with self._showing():
            self.box_x.value, self.box_y.value, self.box_scale.value = (
                adjustment.shift_x,
                adjustment.shift_y,
                adjustment.scale,
            )

    @contextlib.contextmanager
    def _showing(self) -> Iterator[None]:
        """Set widgets to the studio's state without their observers acting on it."""
        self._syncing, before = True, self._syncing
        try:
            yield
        finally:
            self._syncing = before

    def _adjust_box(self) -> None:
        if self.studio.photo is None:
            return
        self.studio.adjust_box(BoxAdjustment(self.box_x.value, self.box_y.value, self.box_scale.value))
        self._show_photo()
        self.webcam.restart()
        if self.studio.clip is not None:
            self._show_frame()

    def _box_dragged(self, box: list[float]) -> None:
        """The user let go of the box on the photo: the sliders follow it (within their ranges), then the crop."""
        photo = self.studio.photo
        if photo is None or photo.detected is None or len(box) != 4:
            return
        height, width = photo.image.shape[:2]
        found = photo.detected
        side_x, side_y = found.x1 - found.x0, found.y1 - found.y0
        shift_x = ((box[0] + box[2]) / 2 * width - (found.x0 + found.x1) / 2) / side_x
        shift_y = ((box[1] + box[3]) / 2 * height - (found.y0 + found.y1) / 2) / side_y
        scale = (box[2] - box[0]) * width / side_x
        clamp = lambda value, low, high: min(high, max(low, value))  # noqa: E731
        self._set_box_sliders(BoxAdjustment(clamp(shift_x, -0.5, 0.5), clamp(shift_y, -0.5, 0.5), clamp(scale, 0.5, 2)))
        self._adjust_box()

    def _reset_box(self) -> None:
        self._set_box_sliders(BoxAdjustment())
        self._adjust_box()

    def _set_option(self, **change: object) -> None:
        if change.keys() & {"model", "backend", "size"}:
            self.show_info("Loading the model (an ONNX export on first use takes a while)...")
        try:
            self.studio.update(**change)
        except Exception:
            self._show_options()  # back to what the studio still uses
            raise
        self._show_options()
        self._show_photo()
        self.webcam.restart()
        if self.studio.clip is not None:
            last = len(self.studio.clip.frame_indices) - 1
            self.frame.max = self.play.max = last
            self._show_frame()
        choice = self.studio.model_choice
        self.show_info("Options applied." + (f" {choice.line}." if choice is not None else ""))

    def _set_edit(self) -> None:
        """The expression sliders moved: the edit applies to the previews, renders and the webcam at once."""
        edit = ExpressionEdit(**{name: slider.value for name, slider in self.edits.items()})
        self.studio.update(edit=None if edit.is_identity else edit)
        if self.webcam.session is not None:
            self.webcam.session.update(edit=self.studio.options.edit)
        if self.studio.clip is not None:
            self._show_frame()
        self.motion_tab.show_frame()

    def _reset_edit(self) -> None:
        with self._showing():
            for name, slider in self.edits.items():
                slider.value = 1.0 if name in ("expression", "head") else 0.0
        self._set_edit()

    def _show_options(self) -> None:
        opts = self.studio.options
        modes = [m.value for m in self.studio.loaded_model.model.supported_modes]
        with self._showing():
            self._set_values(modes, opts)

    def _set_values(self, modes: list[str], opts: AnimateOptions) -> None:
        if list(self.mode.options) != modes:
            self.mode.options = modes
        for widget, value in ((self.model, opts.model or AUTO), (self.backend, opts.backend),
                              (self.size, opts.size or 0), (self.mode, MotionMode(opts.mode).value),
                              (self.adapt_scale, opts.adapt_scale),
                              (self.find_best_frame, _reference_name(opts.find_best_frame)),
                              (self.crop, opts.crop), (self.smooth_track, opts.smooth_track),
                              (self.force, opts.force), (self.paste_back, opts.paste_back)):  # fmt: skip
            if widget.value != value:
                widget.value = value

    def _show_photo(self) -> None:
        photo = self.studio.photo
        if photo is None:
            return
        height, width = photo.image.shape[:2]
        with self._showing():
            if photo.image is not self._shown_photo:
                self.photo_view.image = jpeg(shrunk(photo.image, 384)[0])
                self._shown_photo = photo.image
            self.photo_view.detected = fractions(photo.detected, width, height)
            self.photo_view.box = fractions(photo.box, width, height)
        self.crop_view.value = jpeg(photo.crop)

    def _show_frame(self) -> None:
        if self.studio.photo is None or self.studio.clip is None:
            return
        preview = self.studio.preview(self.frame.value)
        if preview.source is not self._shown_source:  # the same photo crop is not sent again with every frame
            self.source_view.value = jpeg(preview.source)
            self._shown_source = preview.source
        self.driving_view.value = jpeg(preview.driving)
        self.result_view.value = jpeg(preview.result)
        clip = self.studio.clip
        self.timing.value = f"frame {preview.frame + 1} of {clip.length}: {preview.seconds * 1000:.0f} ms"

    def _progress(self, done: int, total: int) -> None:
        self.render_panel.show_progress(done, total)

    # -- webcam ------------------------------------------------------------------------------------------------
    def _live_session(self):
        from enliven.live import LiveSession, LiveSettings

        photo = self.studio.photo
        if photo is None:
            raise InputError("pick a photo before starting the webcam.")
        loaded, opts = self.studio.loaded_model, self.studio.options
        animator = Animator(loaded.model, mode=MotionMode.RELATIVE, adapt_scale=opts.adapt_scale, size=opts.size)
        settings = LiveSettings(paste_back=opts.paste_back, overlay=Overlay(self.overlay.value), edit=opts.edit)
        return LiveSession(animator, [photo.image], content=self.studio.content, settings=settings, names=[photo.name])
