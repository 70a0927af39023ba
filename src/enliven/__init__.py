"""enliven: bring a still image to life with the motion of a driving video."""

from __future__ import annotations

__version__ = "0.1.0"
