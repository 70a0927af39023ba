"""``WebcamAvatar``: the browser's webcam drives the photo inside the notebook (anywidget, no ipywebrtc).

The browser opens the webcam (``getUserMedia``), draws each frame into a canvas and sends it to the kernel as a
JPEG; the kernel animates it with a :class:`~enliven.live.LiveSession` (the live command's session: smoothed face
box, neutral-pose calibration, overlays) and answers with the animated frame as a JPEG, which the page shows. One
or two frames are in flight at a time (the second arrives while the first is animated), so a slow kernel lowers the
frame rate instead of building a queue: the frame sent is always the camera's newest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import anywidget
import traitlets

from enliven.errors import EnlivenError
from enliven.io import decode_image, encode_jpeg
from enliven.live.camera import CameraFrame

logger = logging.getLogger(__name__)

_ESM = r"""
const IN_FLIGHT = 2;  // frames sent and not yet answered: the kernel decodes the next while it animates one

function render({ model, el }) {
  el.classList.add("enliven-webcam");
  const bar = document.createElement("div");
  const start = document.createElement("button");
  start.className = "jupyter-widgets jupyter-button widget-button enliven-webcam-start";
  start.textContent = "Start webcam";
  const calibrate = document.createElement("button");
  calibrate.className = "jupyter-widgets jupyter-button widget-button enliven-webcam-calibrate";
  calibrate.textContent = "Recalibrate";
  const readout = document.createElement("span");
  readout.className = "enliven-webcam-readout";
  readout.style.marginLeft = "8px";
  bar.append(start, calibrate, readout);
  const row = document.createElement("div");
  row.style.display = "flex";
  row.style.gap = "8px";
  const video = document.createElement("video");
  video.className = "enliven-webcam-camera";
  video.muted = true;
  video.playsInline = true;
  video.width = model.get("width");
  const shown = document.createElement("img");
  shown.className = "enliven-webcam-avatar";
  shown.width = model.get("width");
  row.append(video, shown);
  el.append(bar, row);
  const canvas = document.createElement("canvas");
  let stream = null, inFlight = 0, sent = 0, answered = 0, firstAnswer = 0, url = null;

  function sendFrame() {
    if (!stream || inFlight >= IN_FLIGHT || video.videoWidth === 0) return;
    const width = model.get("width");
    const height = Math.round((width * video.videoHeight) / video.videoWidth);
    canvas.width = width;
    canvas.height = height;
    canvas.getContext("2d").drawImage(video, 0, 0, width, height);
    inFlight += 1;
    canvas.toBlob(async (blob) => {
      const buffer = await blob.arrayBuffer();
      sent += 1;
      model.send({ kind: "frame", sent_at: performance.now() }, undefined, [buffer]);
    }, "image/jpeg", 0.8);
  }
  model.on("msg:custom", (content, buffers) => {
    if (content.kind !== "frame") return;
    inFlight = Math.max(0, inFlight - 1);
    if (buffers.length > 0) {
      if (url) URL.revokeObjectURL(url);
      url = URL.createObjectURL(new Blob([buffers[0]], { type: "image/jpeg" }));
      shown.src = url;
      answered += 1;
      if (!firstAnswer) firstAnswer = performance.now();
      const seconds = (performance.now() - firstAnswer) / 1000;
      const rate = seconds > 0 ? (answered - 1) / seconds : 0;
      readout.textContent = `${rate.toFixed(1)} fps, ${Math.round(performance.now() - content.sent_at)} ms round trip` +
        (content.face ? "" : " (no face: holding the last frame)");
      el.dataset.answered = String(answered);
    }
    requestAnimationFrame(sendFrame);
  });
  start.onclick = async () => {
    if (stream) {
      stream.getTracks().forEach((track) => track.stop());
      stream = null;
      start.textContent = "Start webcam";
      model.send({ kind: "stop" });
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
    } catch (error) {
      readout.textContent = `The browser gave no webcam: ${error.message}`;
      return;
    }
    video.srcObject = stream;
    await video.play();
    start.textContent = "Stop webcam";
    model.send({ kind: "start" });
    inFlight = 0;
    sendFrame();
    sendFrame();
  };
  calibrate.onclick = () => model.send({ kind: "recalibrate" });
}
export default { render };
"""


class WebcamAvatar(anywidget.AnyWidget):
    """The browser's webcam beside the animated photo (see the module docstring).

    Args:
        session_factory: makes the live session when the webcam starts (the app's current photo, model and
            options); it may raise :class:`~enliven.errors.EnlivenError`, which is shown in ``status``.
        on_error: called with a sentence for the app's message line.

    Traits:
        width: the width of the frames sent and shown, px.
        status: the last problem, or empty.
    """

    _esm = _ESM
    width = traitlets.Int(320).tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        session_factory: Callable[[], object],
        on_error: Callable[[str], None] | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        self._factory = session_factory
        self._on_error = on_error
        self._session = None
        self._index = 0
        self.frames_answered = 0
        self.on_msg(self._receive)

    @property
    def session(self):
        """The running live session (``None`` while the webcam is off)."""
        return self._session

    def restart(self) -> None:
        """Drop the session: the next frame makes a new one (the photo, model or options changed)."""
        self.stop()

    def stop(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def answer(self, jpeg: bytes) -> tuple[bytes | None, bool]:
        """Animate one camera frame (JPEG bytes): the shown frame as JPEG and whether the face was found
        (``None`` when there is no session and none can be made)."""
        if self._session is None:
            try:
                self._session = self._factory()
            except EnlivenError as error:
                self._report(str(error))
                return None, False
        image = decode_image(jpeg)
        if image is None:
            return None, False
        frame = CameraFrame(image, self._index, time.perf_counter())
        self._index += 1
        shown = self._session.process(frame)
        self.frames_answered += 1
        return encode_jpeg(shown.image, 85), shown.face_found

    def _receive(self, _widget: object, content: dict, buffers: list) -> None:
        kind = content.get("kind")
        if kind == "frame" and buffers:
            try:
                jpeg, face = self.answer(bytes(buffers[0]))
            except Exception as error:  # the webcam keeps going; the message says what broke
                logger.exception("webcam frame failed")
                self._report(f"a webcam frame failed ({type(error).__name__}: {error}).")
                jpeg, face = None, False
            reply = {"kind": "frame", "sent_at": content.get("sent_at", 0), "face": face}
            self.send(reply, [jpeg] if jpeg is not None else None)
        elif kind == "recalibrate" and self._session is not None:
            self._session.recalibrate()
        elif kind == "stop":
            self.stop()

    def _report(self, sentence: str) -> None:
        self.status = sentence
        if self._on_error is not None:
            self._on_error(sentence)
