"""``WindowOutput``: an OpenCV window showing the live frames, with hotkeys and an fps / latency readout.

Keys (shown in the window's title and by ``enliven live --help``):

====  =========================================================
c     recalibrate: take the current pose as the neutral reference
n, p  next / previous avatar
o     overlay: none → picture-in-picture → over the face
b     paste-back into the whole photo on / off
h     hide / show the readout
q     quit (also Esc, or closing the window)
====  =========================================================
"""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING

from enliven.errors import EnlivenError

if TYPE_CHECKING:  # kept light: the CLI's parser reads KEYS_HELP from here
    from enliven.live.loop import LiveStats
    from enliven.live.session import LiveFrame, LiveSession


def _gui_backend(cv2) -> str:
    """OpenCV's window toolkit from its build information: ``QT5``, ``GTK3``, ``WIN32UI``, ``COCOA``, or ``NONE``."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip() or "NONE"
    return "UNKNOWN"


KEYS_HELP = "c recalibrate | n/p avatar | o overlay | b paste-back | h readout | q quit"


class WindowOutput:
    """Show frames in a window and turn its keys into session changes (see the module docstring).

    Args:
        session: the session the keys change.
        stats: the run's counters, for the readout.
        stop: set when the user quits.
        title: the window's title.

    Raises:
        EnlivenError: this OpenCV has no window support (``opencv-python-headless`` alone), or there is no display.
    """

    name = "window"

    def __init__(self, session: LiveSession, stats: LiveStats, stop: threading.Event, title: str = "enliven") -> None:
        from enliven.preprocess._deps import import_cv2

        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            # Checked here: OpenCV's Qt aborts the whole process when it finds no display.
            raise EnlivenError(
                "--window needs a display and none is set (DISPLAY is empty); run it on a desktop, or use --record, "
                "--serve or --virtual-camera on a headless machine."
            )
        self._cv2 = import_cv2()
        if _gui_backend(self._cv2) == "NONE":
            raise EnlivenError(
                "no window can be opened: this OpenCV has no window support (opencv-python-headless); reinstall it "
                "with 'pip install --force-reinstall opencv-contrib-python==4.11.0.86', or use --record, --serve or "
                "--virtual-camera instead of --window."
            )
        self.session = session
        self.stats = stats
        self.stop = stop
        self.title = f"{title}  ({KEYS_HELP})"
        self._opened = False

    def _open(self) -> None:
        """Create the window: on the first frame, in the thread that shows frames. OpenCV's Qt windows belong to the
        thread that created them, and a call from another thread waits for that one to pump events (a deadlock
        when it is busy joining the loop, as in ``--serve``), so every window call stays on the showing thread."""
        try:
            # Resizable, aspect kept, without the Qt toolbar (it would cover the readout on small frames).
            flags = self._cv2.WINDOW_NORMAL | self._cv2.WINDOW_KEEPRATIO | self._cv2.WINDOW_GUI_NORMAL
            self._cv2.namedWindow(self.title, flags)
        except self._cv2.error as err:
            raise EnlivenError(
                f"no window can be opened on display {os.environ.get('DISPLAY', '')!r} ({err.err}); check the "
                "display, or use --record, --serve or --virtual-camera instead of --window."
            ) from err
        self._opened = True

    def show(self, frame: LiveFrame) -> None:
        from enliven.live.overlay import draw_status

        cv2 = self._cv2
        if not self._opened:
            self._open()
        image = frame.image
        settings = self.session.settings
        warning = None if frame.face_found else "face lost - holding the last frame"
        if settings.show_stats or warning:
            image = image.copy()
            lines = []
            if settings.show_stats:
                lines = [
                    f"{self.stats.fps:4.1f} fps  {self.stats.latency_ms:3.0f} ms",
                    f"{frame.avatar_name} | overlay {settings.overlay.value} | "
                    f"paste-back {'on' if settings.paste_back else 'off'}",
                ]
            draw_status(image, lines, warning=warning)
        cv2.imshow(self.title, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        self.idle()

    def idle(self) -> None:
        """Handle the window's events and keys (called after each frame, and while no frame comes)."""
        if not self._opened:
            return
        self.handle_key(self._cv2.waitKey(1) & 0xFF)
        if self._cv2.getWindowProperty(self.title, self._cv2.WND_PROP_VISIBLE) < 1:  # closed with the mouse
            self.stop.set()

    def handle_key(self, key: int) -> None:
        """Apply one key press (an ASCII code; 255: none)."""
        session = self.session
        char = chr(key).lower() if 0 < key < 255 else ""
        if char == "q" or key == 27:
            self.stop.set()
        elif char == "c":
            session.recalibrate()
        elif char == "n":
            session.next_avatar()
        elif char == "p":
            session.previous_avatar()
        elif char == "o":
            session.update(overlay=session.settings.overlay.next())
        elif char == "b":
            session.update(paste_back=not session.settings.paste_back)
        elif char == "h":
            session.update(show_stats=not session.settings.show_stats)

    def close(self) -> None:
        if self._opened:
            self._opened = False
            try:
                self._cv2.destroyWindow(self.title)
                self._cv2.waitKey(1)
            except self._cv2.error:
                pass
