"""Sources cached for ``POST /v1/animate-frame``: a photo is sent once (``POST /v1/sources``), encoded once, and
then animated by one driving frame per request, as a live session does it (the live command's
:class:`~enliven.live.LiveSession`: the face box smoothed from frame to frame, relative motion against the first
frame, ``reset`` takes a new neutral pose). The least recently used sources are dropped beyond the capacity."""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict

import numpy as np

from enliven.errors import InputError


class FrameSessions:
    """Cached sources, each a live session with its own lock (one frame at a time per source)."""

    def __init__(self, model: str | None, capacity: int) -> None:
        self.model, self.capacity = model, capacity
        self._lock = threading.Lock()
        self._loaded = None
        self._sessions: OrderedDict[str, tuple[object, threading.Lock]] = OrderedDict()
        self._frames = 0

    def _load(self):
        from enliven.inference import AnimateOptions, load_for_options

        with self._lock:
            if self._loaded is None:
                self._loaded = load_for_options(AnimateOptions(model=self.model))[0]
            return self._loaded

    def add(self, image: np.ndarray) -> str:
        """Encode a photo; its id for :meth:`animate`.

        Raises:
            NoFaceError: no usable face in it (face models).
        """
        from enliven.inference import Animator
        from enliven.live import LiveSession, LiveSettings

        loaded = self._load()
        settings = LiveSettings(paste_back=False, show_stats=False)
        session = LiveSession(
            Animator(loaded.model), [image], content=loaded.metadata.get("content", "face"), settings=settings
        )
        source_id = uuid.uuid4().hex
        with self._lock:
            self._sessions[source_id] = (session, threading.Lock())
            while len(self._sessions) > self.capacity:
                _, (old, _lock) = self._sessions.popitem(last=False)
                old.close()  # type: ignore[attr-defined]
        return source_id

    def animate(
        self, source_id: str, frame: np.ndarray, *, paste_back: bool = False, reset: bool = False
    ) -> np.ndarray:
        """The source animated by ``frame`` (``H x W x 3`` uint8 RGB): the square crop, or with ``paste_back`` the
        whole photo.

        Raises:
            InputError: an unknown (or dropped) source id.
        """
        from enliven.live.camera import CameraFrame

        with self._lock:
            entry = self._sessions.get(source_id)
            if entry is None:
                raise InputError(f"no source {source_id!r} here (unknown, or dropped as least recently used); "
                                 "send it again with POST /v1/sources.")  # fmt: skip
            self._sessions.move_to_end(source_id)
            self._frames += 1
            index = self._frames
        session, lock = entry
        with lock:
            if session.settings.paste_back != paste_back:  # type: ignore[attr-defined]
                session.update(paste_back=paste_back)  # type: ignore[attr-defined]
            if reset:
                session.recalibrate()  # type: ignore[attr-defined]
            shown = session.process(CameraFrame(frame, index, time.perf_counter()))  # type: ignore[attr-defined]
        return shown.avatar

    def close(self) -> None:
        with self._lock:
            for session, _lock in self._sessions.values():
                session.close()  # type: ignore[attr-defined]
            self._sessions.clear()
