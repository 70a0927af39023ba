"""The REST server (``enliven serve``, the ``server`` extra: FastAPI and uvicorn): jobs kept in SQLite and run by
worker processes, results downloaded, one-frame animation for low-latency clients. See :mod:`enliven.server.app`."""

from enliven.server.config import ServerConfig

__all__ = ["ServerConfig", "create_app"]


def __getattr__(name: str):
    if name == "create_app":
        from enliven.server.app import create_app

        return create_app
    raise AttributeError(f"module 'enliven.server' has no attribute {name!r}")
