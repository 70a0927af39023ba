"""``RenderPanel``: the widgets of a render (Render, Cancel, progress, a state line, the player, a download link) and
the thread that runs it, one render at a time. The *Driving video* and *Generated motion* tabs each have one."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import ipywidgets as w

from enliven.errors import EnlivenError
from enliven.inference import AnimateResult, Cancelled
from enliven.inference.pipeline import CancelFlag, ProgressCallback
from enliven.notebook.views import download_link

logger = logging.getLogger(__name__)

#: Renders a whole video: ``render(on_progress, cancel)``.
Render = Callable[[ProgressCallback, CancelFlag], AnimateResult]


class RenderPanel:
    """See the module docstring.

    Args:
        render: the work (called on the panel's thread).
        on_error: shows a sentence (the app's message line).
        css: the prefix of the widgets' CSS classes (``<css>-render``, ``-cancel``, ``-render-state``, ``-video``,
            ``-download``), which the browser harness finds them by.
        check: called before a render starts; a sentence it returns is shown instead of rendering.
    """

    def __init__(
        self,
        render: Render,
        on_error: Callable[[str], None],
        css: str = "enliven",
        check: Callable[[], str | None] | None = None,
    ) -> None:
        self._work, self._on_error, self._check = render, on_error, check
        self.render_button = w.Button(description="Render", button_style="primary").add_class(f"{css}-render")
        self.cancel_button = w.Button(description="Cancel", disabled=True).add_class(f"{css}-cancel")
        self.progress = w.IntProgress(min=0, max=1, value=0, description="")
        self.state = w.Label().add_class(f"{css}-render-state")
        self.video = w.Video(format="mp4", autoplay=False, controls=True, layout=w.Layout(max_width="512px"))
        self.video.add_class(f"{css}-video")
        self.download = w.HTML().add_class(f"{css}-download")
        self.controls = w.HBox([self.render_button, self.cancel_button, self.progress, self.state])
        self.thread: threading.Thread | None = None
        self._cancel: threading.Event | None = None
        self.render_button.on_click(lambda _b: self.start())
        self.cancel_button.on_click(lambda _b: self.cancel())

    @property
    def widgets(self) -> list[w.Widget]:
        """The controls, the player and the link, in the order a tab shows them."""
        return [self.controls, self.video, self.download]

    def show_progress(self, done: int, total: int | None) -> None:
        self.progress.max = max(1, total or 1)
        self.progress.value = min(done, self.progress.max)

    def start(self, wait: bool = False) -> None:
        """Press *Render* (``wait``: return when the render has finished); a running render is left alone."""
        if self.thread is not None and self.thread.is_alive():
            return
        problem = self._check() if self._check is not None else None
        if problem:
            self._on_error(problem)
            return
        self._cancel = threading.Event()
        self.render_button.disabled, self.cancel_button.disabled = True, False
        self.state.value = "rendering..."
        self.progress.value = 0
        self.thread = threading.Thread(target=self._run, args=(self._cancel,), daemon=True)
        self.thread.start()
        if wait:
            self.thread.join()

    def cancel(self) -> None:
        """Press *Cancel*: the render stops at its next frame and writes nothing."""
        if self._cancel is not None:
            self._cancel.set()

    def _run(self, cancel: threading.Event) -> None:
        try:
            result = self._work(self.show_progress, cancel)
            data = result.output.read_bytes()
            self.video.value = data
            self.download.value = download_link(result.output, data)
            self.state.value = f"{result.frames} frames in {result.seconds:.1f} s"
        except Cancelled:
            self.state.value = "cancelled: nothing was written"
        except EnlivenError as error:
            self.state.value = "failed"
            self._on_error(str(error))
        except Exception as error:
            logger.exception("the render failed")
            self.state.value = "failed"
            self._on_error(f"The render failed ({type(error).__name__}: {error}).")
        finally:
            self.render_button.disabled, self.cancel_button.disabled = False, True
