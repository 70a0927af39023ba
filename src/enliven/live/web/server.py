"""``LiveWebServer``: the live page. The browser's webcam goes to the server over WebRTC (aiortc), the animated
stream comes back; a second page shows the avatar alone for OBS.

Routes (JSON errors are ``{"error": "one sentence"}`` with a 4xx status):

* ``GET /`` the page (camera beside the animation, controls); ``GET /avatar`` the avatar alone, full-frame;
* ``POST /offer`` ``{"sdp", "type", "role": "drive" | "view"}`` → the answer. One driving browser at a time: a new
  one replaces the old (the face track restarts); any number of viewers;
* ``GET /api/state``; ``POST /api/avatar {"index"}``; ``POST /api/upload`` (multipart ``image``: content sniffed,
  not the extension; 20 MB at most); ``POST /api/recalibrate``; ``POST /api/settings {"overlay", "paste_back",
  "mode", "corner", "edit"}`` (``edit``: expression and pose controls as text, e.g. ``"expression=1.5,smile=0.3"``).

The server runs on its own asyncio loop in a thread, the live loop (:func:`~enliven.live.loop.run_live`) in another,
fed by :class:`~enliven.live.web.tracks.BrowserFeed`. It binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import io
import json
import logging
import threading
from pathlib import Path

import numpy as np
from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription

from enliven.errors import EnlivenError, InputError, OutputError
from enliven.live.loop import LiveReport, LiveStats, Output, run_live
from enliven.live.session import LiveSession
from enliven.live.web.tracks import BrowserFeed, OutgoingTrack, WebOutput

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
#: Largest source image an upload may carry.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
SETTINGS = ("overlay", "paste_back", "mode", "corner", "edit")


class LiveWebServer:
    """Serve the live page for ``session`` (see the module docstring).

    Args:
        session: what to animate (the server drives it; the caller closes it).
        host: address to bind (``127.0.0.1``: this machine only).
        port: TCP port (0: any free one; see :attr:`url`).
        outputs: more outputs fed with the same frames (a recording, a stream, a virtual camera).
        stop: set to stop :meth:`serve_forever` (e.g. by Ctrl-C); set by :meth:`stop`.
    """

    def __init__(
        self,
        session: LiveSession,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        outputs: list[Output] | tuple[Output, ...] = (),
        stop: threading.Event | None = None,
    ) -> None:
        self.session = session
        self.host = host
        self.port = port
        self.stop_event = stop or threading.Event()
        self.feed = BrowserFeed()
        self.output = WebOutput()
        self.stats = LiveStats(self.feed)
        self._outputs = [self.output, *outputs]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._live: threading.Thread | None = None
        self._report: LiveReport | None = None
        self._live_error: BaseException | None = None
        self._runner: web.AppRunner | None = None
        self._peers: set[RTCPeerConnection] = set()
        self._driver: RTCPeerConnection | None = None

    # -- lifetime ----------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def add_output(self, output: Output) -> None:
        """Feed ``output`` the page's frames too (before :meth:`start`); e.g. a window that reads :attr:`stats`."""
        if self._live is not None:
            raise RuntimeError("add outputs before start()")
        self._outputs.append(output)

    def start(self) -> LiveWebServer:
        """Bind and serve in the background.

        Raises:
            OutputError: the port is in use (or the address cannot be bound).
        """
        ready: concurrent.futures.Future = concurrent.futures.Future()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="enliven-web", daemon=True)
        self._thread.start()
        try:
            ready.result(timeout=30)
        except BaseException:
            self._thread.join(timeout=5)
            raise
        self._live = threading.Thread(target=self._run_live, name="enliven-web-live", daemon=True)
        self._live.start()
        return self

    def _serve(self, ready: concurrent.futures.Future) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._bind())
        except BaseException as err:  # noqa: BLE001 - handed to start()
            ready.set_exception(err)
            self._loop.close()
            return
        ready.set_result(True)
        self._loop.run_forever()
        self._loop.run_until_complete(self._shutdown())
        self._loop.close()

    async def _bind(self) -> None:
        app = web.Application(client_max_size=MAX_UPLOAD_BYTES + 1024 * 1024, middlewares=[_json_errors])
        app.add_routes(
            [
                web.get("/", _page("index.html")),
                web.get("/avatar", _page("avatar.html")),
                web.get("/favicon.ico", _no_icon),
                web.static("/static", STATIC),
                web.post("/offer", self._offer),
                web.get("/api/state", self._state),
                web.post("/api/avatar", self._select),
                web.post("/api/upload", self._upload),
                web.post("/api/recalibrate", self._recalibrate),
                web.post("/api/settings", self._settings),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as err:
            await self._runner.cleanup()
            if err.errno == errno.EADDRINUSE:
                raise OutputError(
                    f"{self.host}:{self.port} is already in use (another enliven live, or another server); pick "
                    "another port with --port."
                ) from err
            raise OutputError(f"cannot serve on {self.host}:{self.port} ({err.strerror}); check --host.") from err
        if self.port == 0:
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _shutdown(self) -> None:
        await asyncio.gather(*(peer.close() for peer in list(self._peers)), return_exceptions=True)
        self._peers.clear()
        if self._runner is not None:
            await self._runner.cleanup()

    def _run_live(self) -> None:
        try:
            self._report = run_live(self.session, self.feed, self._outputs, stop=self.stop_event, stats=self.stats)
        except BaseException as err:  # noqa: BLE001 - raised by serve_forever / stop
            self._live_error = err
            self.stop_event.set()

    def serve_forever(self, seconds: float | None = None) -> LiveReport:
        """Block until :attr:`stop_event` is set (Ctrl-C in the CLI) or ``seconds`` pass; stop; return the figures.

        Raises:
            EnlivenError: an output failed (e.g. the stream's server went away).
        """
        waited = 0.0
        while not self.stop_event.wait(0.25):
            waited += 0.25
            if seconds is not None and waited >= seconds:
                break
        return self.stop()

    def stop(self) -> LiveReport:
        """Close the peers, stop serving and the live loop (outputs are closed: recordings finished)."""
        self.stop_event.set()
        self.feed.close()
        if self._live is not None:
            self._live.join(timeout=30)
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
        if self._live_error is not None:
            raise self._live_error
        return self._report or self.stats.report()

    def __enter__(self) -> LiveWebServer:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        except EnlivenError:
            if exc[0] is None:
                raise

    # -- WebRTC ------------------------------------------------------------------------------------------------
    async def _offer(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        role = body.get("role", "drive")
        if role not in ("drive", "view") or not isinstance(body.get("sdp"), str) or body.get("type") != "offer":
            raise web.HTTPBadRequest(reason='expected {"sdp": ..., "type": "offer", "role": "drive" or "view"}')
        peer = RTCPeerConnection()
        self._peers.add(peer)

        @peer.on("connectionstatechange")
        async def closed() -> None:
            if peer.connectionState in ("failed", "closed"):
                self._peers.discard(peer)
                await peer.close()

        if role == "drive":
            if self._driver is not None:  # one driver: the newest browser takes over
                old, self._driver = self._driver, None
                self._peers.discard(old)
                await old.close()
            self._driver = peer
            self.session.restart()

            @peer.on("track")
            def on_track(track) -> None:
                if track.kind == "video":
                    asyncio.ensure_future(self._consume(peer, track))

        await peer.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type="offer"))
        for transceiver in peer.getTransceivers():
            if transceiver.kind == "video":
                peer.addTrack(OutgoingTrack(self.output, "shown" if role == "drive" else "avatar"))
                break
        await peer.setLocalDescription(await peer.createAnswer())
        answer = peer.localDescription
        return web.json_response({"sdp": answer.sdp, "type": answer.type})

    async def _consume(self, peer: RTCPeerConnection, track) -> None:
        """Decoded frames of the driving browser's camera into the feed, until the track ends."""
        try:
            while True:
                frame = await track.recv()
                if peer is self._driver:
                    self.feed.push(frame.to_ndarray(format="rgb24"))
        except Exception:  # noqa: BLE001 - the browser left (MediaStreamError), or the peer closed
            logger.debug("the driving track ended", exc_info=True)

    # -- JSON API ----------------------------------------------------------------------------------------------
    async def _state(self, request: web.Request) -> web.Response:
        settings = self.session.settings
        return web.json_response(
            {
                "avatars": self.session.avatars,
                "avatar": self.session.avatar_index,
                "settings": {
                    "overlay": settings.overlay.value,
                    "paste_back": settings.paste_back,
                    "mode": settings.mode.value,
                    "corner": settings.corner.value,
                    "edit": str(settings.edit or ""),
                },
                "modes": [mode.value for mode in self.session.animator.model.supported_modes],
                "driving": self._driver is not None and self.feed.delivered > 0,
                "fps": round(self.stats.fps, 1),
                "latency_ms": round(self.stats.latency_ms),
                "face_found": self.output.face_found,
            }
        )

    async def _select(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        index = body.get("index")
        if not isinstance(index, int) or not 0 <= index < len(self.session.avatars):
            raise web.HTTPBadRequest(reason=f"index must be a number from 0 to {len(self.session.avatars) - 1}")
        self.session.select(index)
        return await self._state(request)

    async def _upload(self, request: web.Request) -> web.Response:
        try:
            form = await request.post()
        except web.HTTPRequestEntityTooLarge as err:
            size = request.content_length or MAX_UPLOAD_BYTES + 1
            raise web.HTTPRequestEntityTooLarge(
                max_size=MAX_UPLOAD_BYTES, actual_size=size, reason="the image is larger than 20 MB"
            ) from err
        field = form.get("image")
        if field is None or not hasattr(field, "file"):
            raise web.HTTPBadRequest(reason="send the photo as the multipart field 'image'")
        data = field.file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise web.HTTPRequestEntityTooLarge(
                max_size=MAX_UPLOAD_BYTES, actual_size=len(data), reason="the image is larger than 20 MB"
            )
        image = _decode_image(data)
        name = Path(field.filename or "upload").name
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.session.add_avatar, image, name)
        except InputError as err:  # NoFaceError included
            raise web.HTTPUnprocessableEntity(reason=str(err)) from err
        return await self._state(request)

    async def _recalibrate(self, request: web.Request) -> web.Response:
        self.session.recalibrate()
        return await self._state(request)

    async def _settings(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        unknown = sorted(set(body) - set(SETTINGS))
        if unknown:
            raise web.HTTPBadRequest(reason=f"unknown setting {unknown[0]!r}; settings are {', '.join(SETTINGS)}")
        if "paste_back" in body and not isinstance(body["paste_back"], bool):
            raise web.HTTPBadRequest(reason="paste_back must be true or false")
        if "edit" in body and not isinstance(body["edit"], str):
            raise web.HTTPBadRequest(reason="edit must be text such as 'expression=1.5,smile=0.3' ('' for none)")
        try:
            self.session.update(**body)
        except (ValueError, InputError) as err:
            raise web.HTTPBadRequest(reason=str(err)) from err
        return await self._state(request)


def _page(name: str):
    async def handler(_: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / name)

    return handler


async def _no_icon(_: web.Request) -> web.Response:
    return web.Response(status=204)  # no icon: no 404 in the browser's console


def _decode_image(data: bytes) -> np.ndarray:
    """An uploaded photo as ``H x W x 3`` uint8 RGB, recognised by its content (415 when it is not an image)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    from enliven.io.media import pil_to_rgb

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return pil_to_rgb(ImageOps.exif_transpose(image))  # phone photos: upright as they were taken
    except (UnidentifiedImageError, OSError, ValueError) as err:
        reason = "the upload is not an image enliven can read (jpg, png, webp...)"
        raise web.HTTPUnsupportedMediaType(reason=reason) from err


async def _json_body(request: web.Request) -> dict:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise web.HTTPBadRequest(reason="the request body must be JSON") from err
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(reason="the request body must be a JSON object")
    return body


@web.middleware
async def _json_errors(request: web.Request, handler) -> web.StreamResponse:
    """4xx answers of the API and of /offer as ``{"error": "..."}`` (pages keep aiohttp's own)."""
    try:
        return await handler(request)
    except web.HTTPException as err:
        if err.status < 400 or not (request.path.startswith("/api/") or request.path == "/offer"):
            raise
        reason = err.reason.rstrip(".") + "."
        return web.json_response({"error": reason}, status=err.status)
