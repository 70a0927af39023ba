"""Live animation: a camera (or a web page's webcam) drives a photo in real time.

* :class:`LiveSession`: the model, the avatars and the settings; :meth:`~LiveSession.track` and
  :meth:`~LiveSession.render` a frame;
* :class:`Camera`: a device, stream URL or video file read on its own thread, newest frame only;
* :func:`run_live`: camera → track → render → outputs on two threads, with :class:`LiveStats`;
* outputs: :class:`WindowOutput` (OpenCV window, hotkeys), :class:`RecordOutput`, :class:`StreamOutput`
  (RTMP/SRT), :class:`VirtualCameraOutput` (pyvirtualcam), and the web page (:mod:`enliven.live.web`);
* :mod:`enliven.live.overlay`: picture-in-picture, paste over the face, readouts, frame-index stamps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

_LAZY = {
    "Camera": "camera",
    "CameraFrame": "camera",
    "CameraLost": "camera",
    "Latest": "camera",
    "LiveReport": "loop",
    "LiveStats": "loop",
    "run_live": "loop",
    "Corner": "overlay",
    "Overlay": "overlay",
    "RecordOutput": "outputs",
    "StreamOutput": "outputs",
    "VirtualCameraOutput": "outputs",
    "Avatar": "avatars",
    "LiveFrame": "session",
    "LiveSession": "session",
    "LiveSettings": "session",
    "WindowOutput": "window",
}

__all__ = [
    "Avatar",
    "Camera",
    "CameraFrame",
    "CameraLost",
    "Corner",
    "Latest",
    "LiveFrame",
    "LiveReport",
    "LiveSession",
    "LiveSettings",
    "LiveStats",
    "Overlay",
    "RecordOutput",
    "StreamOutput",
    "VirtualCameraOutput",
    "WindowOutput",
    "run_live",
]

if TYPE_CHECKING:
    from enliven.live.avatars import Avatar
    from enliven.live.camera import Camera, CameraFrame, CameraLost, Latest
    from enliven.live.loop import LiveReport, LiveStats, run_live
    from enliven.live.outputs import RecordOutput, StreamOutput, VirtualCameraOutput
    from enliven.live.overlay import Corner, Overlay
    from enliven.live.session import LiveFrame, LiveSession, LiveSettings
    from enliven.live.window import WindowOutput


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"enliven.live.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'enliven.live' has no attribute {name!r}")
