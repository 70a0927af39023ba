"""The bundled example inputs: a public-domain portrait and a GRID speaker clip (``assets/``, see its
``ATTRIBUTION.md``). They live beside the package in a source checkout (the README's commands, the benchmarks, the
notebook); ``ENLIVEN_ASSETS`` points elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

from enliven.io.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES

#: The repository's ``assets`` folder (``ENLIVEN_ASSETS`` overrides it).
ASSETS_DIR = Path(os.environ.get("ENLIVEN_ASSETS") or Path(__file__).resolve().parents[2] / "assets")
EXAMPLE_SOURCE = ASSETS_DIR / "source-astronaut.jpg"
EXAMPLE_DRIVING = ASSETS_DIR / "driving-grid-bbaf2n.mpg"


def example_photos() -> dict[str, Path]:
    """The bundled photos by file name (empty where the assets folder is missing, e.g. a wheel install)."""
    return _listed(IMAGE_SUFFIXES)


def example_clips() -> dict[str, Path]:
    """The bundled driving clips by file name."""
    return _listed(VIDEO_SUFFIXES)


def _listed(suffixes: frozenset[str]) -> dict[str, Path]:
    if not ASSETS_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(ASSETS_DIR.iterdir()) if p.suffix.lower() in suffixes}
