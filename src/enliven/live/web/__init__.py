"""The live web page (aiortc WebRTC on aiohttp): :class:`LiveWebServer`. Needs ``pip install 'enliven[live]'``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["LiveWebServer"]

if TYPE_CHECKING:
    from enliven.live.web.server import LiveWebServer


def __getattr__(name: str) -> Any:
    if name == "LiveWebServer":
        try:
            from enliven.live.web.server import LiveWebServer
        except ImportError as err:
            if err.name not in ("aiortc", "aiohttp", "av"):
                raise
            from enliven.preprocess._deps import MissingDependencyError

            raise MissingDependencyError(
                f"--serve needs {err.name}, which is not installed: run pip install 'enliven[live]'."
            ) from err
        return LiveWebServer
    raise AttributeError(f"module 'enliven.live.web' has no attribute {name!r}")
