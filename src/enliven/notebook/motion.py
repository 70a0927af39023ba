"""Generated motion in the notebook: :class:`MotionStudio` (no widgets) and the app's *Generated motion* tab.

The studio samples motion with the motion VAE (:class:`~enliven.motion.generator.MotionGenerator`), previews any
frame of it on the studio's photo with one model call (the photo encoded once, with the studio's crop box and
options, edits included), and renders the whole motion with :func:`~enliven.inference.motion.animate_motion`, the
function ``enliven animate --motion`` calls.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import ipywidgets as w
import numpy as np

from enliven.errors import EnlivenError, InputError
from enliven.inference import AnimateResult, Animator
from enliven.inference.animate import check_editable, detail_crop
from enliven.inference.motion import animate_motion, motion_keypoints
from enliven.inference.pipeline import CancelFlag, ProgressCallback
from enliven.io import encode_jpeg as jpeg
from enliven.motion.generator import MotionGenerator
from enliven.motion.sequence import FaceMotion
from enliven.notebook.render_panel import RenderPanel
from enliven.notebook.studio import Studio
from enliven.notebook.views import titled
from enliven.types import MotionMode


class MotionStudio:
    """Generate motion for a :class:`Studio`'s photo, preview it frame by frame, render it.

    Args:
        studio: the studio whose photo, options (edits included) and model are used.
        generator: the motion generator (default: the bundled motion VAE, loaded on first use).
    """

    def __init__(self, studio: Studio, generator: MotionGenerator | None = None) -> None:
        self.studio = studio
        self._generator = generator
        self.motion: FaceMotion | None = None
        self._animator: Animator | None = None
        self._encoded_for: tuple[object, object] | None = None  # (photo, options) the animator encoded
        self._points: tuple[object, np.ndarray, np.ndarray] | None = None  # (edit, points, reference)

    @property
    def generator(self) -> MotionGenerator:
        if self._generator is None:
            self._generator = MotionGenerator.from_pretrained()
        return self._generator

    @property
    def labels(self) -> list[str]:
        """What :meth:`generate` takes: ``none`` (unlabelled), ``idle``, then the model's labels."""
        return ["none", "idle", *self.generator.labels[1:]]

    def generate(
        self, label: str = "none", seconds: float = 6.0, seed: int | None = None, loop: bool = False
    ) -> FaceMotion:
        """Sample new motion (see :meth:`MotionGenerator.sample`) and make it the one previewed and rendered."""
        self.motion = self.generator.sample(seconds, None if label == "none" else label, seed=seed, loop=loop)
        self._points = None
        return self.motion

    def preview(self, position: int) -> np.ndarray:
        """Frame ``position`` of the motion on the photo, as the render shows it (pasted back if asked).

        Raises:
            InputError: no photo, or no motion generated yet.
        """
        motion = self._need_motion()
        if not 0 <= position < len(motion):
            raise IndexError(f"frame position {position} is outside 0..{len(motion) - 1}")
        animator = self._ready()
        points, _ = self._keypoints(animator.size)
        return self.studio.finish(animator.animate_keypoints(points[position]))

    def render(
        self,
        output: str | Path | None = None,
        *,
        on_progress: ProgressCallback | None = None,
        cancel: CancelFlag | None = None,
    ) -> AnimateResult:
        """The whole motion on the photo, written to ``output`` (default ``<photo>-motion.mp4`` in the work dir)."""
        motion = self._need_motion()
        photo = self.studio.photo
        if photo is None:
            raise InputError("no photo yet: pick a bundled photo or upload one.")
        options = self.studio.options
        output = output or self.studio.work_dir / f"{Path(photo.name).stem}-motion.mp4"
        return animate_motion(
            photo.image, motion, output, options, edit=options.edit, model=self.studio.loaded_model,
            on_progress=on_progress, cancel=cancel, source_box=photo.box,
        )  # fmt: skip

    def close(self) -> None:
        if self._animator is not None:
            self._animator.close()
            self._animator = None

    def _need_motion(self) -> FaceMotion:
        if self.motion is None:
            raise InputError("no motion yet: press Generate.")
        return self.motion

    def _ready(self) -> Animator:
        """An animator of the studio's model with the photo encoded (again when the photo or options changed)."""
        photo, options = self.studio.photo, self.studio.options
        if photo is None:
            raise InputError("no photo yet: pick a bundled photo or upload one.")
        loaded = self.studio.loaded_model
        if (
            self._animator is None
            or self._animator.model is not loaded.model
            or self._encoded_for is None
            or (self._encoded_for[1] is not options and _without_edit(self._encoded_for[1]) != _without_edit(options))
        ):
            self.close()
            self._animator = Animator(loaded.model, device=options.device, mode=MotionMode.RELATIVE,
                                      adapt_scale=options.adapt_scale, size=options.size)  # fmt: skip
            check_editable(self._animator, loaded)
            self._encoded_for = None
        if self._encoded_for is None or self._encoded_for[0] is not photo:
            image, box = self.studio.preview_photo()
            self._animator.set_source(photo.crop, detail=detail_crop(image, box, self._animator, options))
            self._points = None
        self._encoded_for = (photo, options)
        return self._animator

    def _keypoints(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        edit = self.studio.options.edit
        if self._points is None or self._points[0] != edit:
            points, reference = motion_keypoints(self._need_motion(), size, edit)
            self._points = (edit, points, reference)
            assert self._animator is not None
            self._animator.set_reference_keypoints(reference)
        return self._points[1], self._points[2]


def _without_edit(options: object) -> object:
    from dataclasses import replace

    return replace(options, edit=None)  # type: ignore[type-var]


class MotionTab(w.VBox):
    """The app's *Generated motion* tab: label, length, seed, loop, Generate; a frame slider (one model call per
    frame); Render with progress and cancel; the video and a download link.

    Args:
        motion_studio: what the tab drives.
        on_error: shows a sentence in the app's message line.
    """

    def __init__(self, motion_studio: MotionStudio, on_error: callable) -> None:  # type: ignore[valid-type]
        self.motion_studio = motion_studio
        self._on_error = on_error
        narrow = {"style": {"description_width": "60px"}, "layout": w.Layout(width="220px")}
        self.label = w.Dropdown(options=motion_studio.labels, value="none", description="Motion", **narrow)
        self.seconds = w.FloatSlider(value=6.0, min=1.0, max=20.0, step=0.5, description="Seconds",
                                     continuous_update=False, style={"description_width": "60px"},
                                     layout=w.Layout(width="300px"))  # fmt: skip
        self.seed = w.IntText(value=0, description="Seed", **narrow)
        self.loop = w.Checkbox(value=False, description="seamless loop", indent=False)
        self.generate_button = w.Button(description="Generate", button_style="primary").add_class("enliven-generate")
        self.frame = w.IntSlider(description="Frame", min=0, max=0, continuous_update=True).add_class(
            "enliven-motion-frame"
        )
        self.play = w.Play(interval=40, min=0, max=0, description="play")
        w.jslink((self.play, "value"), (self.frame, "value"))
        self.view = w.Image(format="jpeg", layout=w.Layout(width="256px")).add_class("enliven-motion-result")
        self.timing = w.Label().add_class("enliven-motion-timing")
        self.render_panel = RenderPanel(
            lambda progress, cancel: motion_studio.render(on_progress=progress, cancel=cancel),
            on_error,
            css="enliven-motion",
            check=lambda: None if motion_studio.motion is not None else "Press Generate before rendering.",
        )
        super().__init__([
            w.HTML("Motion the motion VAE generates, no video needed: unlabelled (mostly talking), idle (blinks, "
                   "small head movements, lips together) or an emotion. The expression sliders apply here too."),
            w.HBox([self.label, self.seconds, self.seed, self.loop, self.generate_button]),
            w.HBox([self.play, self.frame, self.timing]),
            titled("Result", self.view),
            *self.render_panel.widgets,
        ])  # fmt: skip
        self.generate_button.on_click(lambda _b: self._guarded(self.generate))
        self.frame.observe(lambda _c: self._guarded(self.show_frame), names="value")

    def generate(self) -> None:
        """Press *Generate*: new motion, shown from its first frame."""
        motion = self.motion_studio.generate(self.label.value, self.seconds.value, self.seed.value, self.loop.value)
        self.frame.max = self.play.max = len(motion) - 1
        self.play.interval = round(1000 / motion.fps)
        if self.frame.value:
            self.frame.value = 0  # the observer shows it
        else:
            self.show_frame()

    def show_frame(self) -> None:
        """Show the frame under the slider (nothing before the first Generate)."""
        if self.motion_studio.motion is None or self.motion_studio.studio.photo is None:
            return
        started = time.perf_counter()
        self.view.value = jpeg(self.motion_studio.preview(self.frame.value))
        total = len(self.motion_studio.motion)
        self.timing.value = f"frame {self.frame.value + 1} of {total}: {(time.perf_counter() - started) * 1000:.0f} ms"

    def start_render(self, wait: bool = False) -> None:
        """Press *Render* (``wait``: return when done)."""
        self.render_panel.start(wait)

    def _guarded(self, action: callable) -> None:  # type: ignore[valid-type]
        try:
            action()
        except (EnlivenError, IndexError) as error:
            self._on_error(str(error))


#: The expression and pose sliders: (name, minimum, maximum, step, default).
EDIT_SLIDERS = (
    ("yaw", -30.0, 30.0, 1.0, 0.0),
    ("pitch", -20.0, 20.0, 1.0, 0.0),
    ("roll", -20.0, 20.0, 1.0, 0.0),
    ("mouth", -1.0, 1.0, 0.05, 0.0),
    ("smile", -1.0, 1.0, 0.05, 0.0),
    ("blink", -1.0, 1.0, 0.05, 0.0),
    ("brows", -1.0, 1.0, 0.05, 0.0),
    ("expression", 0.0, 2.0, 0.05, 1.0),
    ("head", 0.0, 2.0, 0.05, 1.0),
)


def edit_sliders() -> dict[str, w.FloatSlider]:
    """One slider per expression or pose control (see :class:`~enliven.motion.edits.ExpressionEdit`)."""
    make = functools.partial(w.FloatSlider, continuous_update=False, readout_format=".2f",
                             layout=w.Layout(width="280px"), style={"description_width": "84px"})  # fmt: skip
    return {name: make(description=name, min=low, max=high, step=step, value=default)
            for name, low, high, step, default in EDIT_SLIDERS}  # fmt: skip
