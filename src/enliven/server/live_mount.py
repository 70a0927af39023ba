"""The live page inside the REST server: ``enliven serve --live PHOTO`` answers ``/live/`` with the page of
``enliven live --serve`` (the browser's webcam animates the photo over WebRTC), beside the job API.

The live page's own server (:class:`~enliven.live.web.LiveWebServer`, aiohttp and aiortc) runs in this process on a
loopback port of its own; the FastAPI app forwards ``/live/...`` requests to it (the page, its script, ``offer``
and ``api/...``: small HTTP requests; the video itself then flows between the browser and aiortc, not through
the proxy). The page uses relative addresses, so it works under ``/live/`` as at the root of ``enliven live``. With
a server token, the browser opens ``/live/?token=TOKEN`` once and keeps it in a cookie (a page cannot send a
bearer header itself).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from enliven.errors import InputError

logger = logging.getLogger(__name__)

#: The cookie that carries the server's token for the live page's own requests.
TOKEN_COOKIE = "enliven_token"
#: Request and reply headers passed through (everything else is the proxy's business).
PASSED_HEADERS = ("content-type",)


class LiveMount:
    """The live page's server, started with the REST app and stopped with it.

    Args:
        avatars: the photos (or a folder of them) the page animates.
        model: the model (``None``: the default).
    """

    def __init__(self, avatars: Sequence[str | Path], model: str | None = None) -> None:
        try:
            import aiohttp  # noqa: F401
            import aiortc  # noqa: F401
        except ImportError as error:
            raise InputError(
                f"--live needs the live extra as well as the server extra: pip install 'enliven[live,server]' "
                f"({error})."
            ) from None
        self.avatars = [str(a) for a in avatars]
        self.model = model
        self._session = None
        self._server = None
        self._client = None

    def start(self) -> LiveMount:
        """Load the model and the photos, and start the live page's server on a free loopback port."""
        from enliven.live import LiveSession
        from enliven.live.web import LiveWebServer

        self._session = LiveSession.load(self.avatars if len(self.avatars) > 1 else self.avatars[0], model=self.model)
        self._server = LiveWebServer(self._session, host="127.0.0.1", port=0).start()
        return self

    @property
    def url(self) -> str:
        """The live page's own address (loopback)."""
        if self._server is None:
            raise RuntimeError("the live page is not started")
        return self._server.url

    async def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes, str]:
        """Send one request to the live page's server; its status, body and content type."""
        import aiohttp

        if self._client is None:  # made on the serving loop, where it is used
            self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        passed = {k: v for k, v in headers.items() if k.lower() in PASSED_HEADERS}
        async with self._client.request(method, self.url + path, headers=passed, data=body or None) as reply:
            return reply.status, await reply.read(), reply.headers.get("Content-Type", "application/octet-stream")

    async def close_client(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._session is not None:
            self._session.close()
            self._session = None
