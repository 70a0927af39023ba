"""enliven-lite: the real-time face model (see :mod:`enliven.models.lite.model`)."""

from enliven.models.lite.model import LiteModel, LiteSourceEncoding

__all__ = ["LiteModel", "LiteSourceEncoding"]
