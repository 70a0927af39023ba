"""What the notebook app shows, as plain functions: images as JPEG, the photo's boxes, the models to offer,
library messages in the app's words, a download link."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import ipywidgets as w

from enliven.preprocess import Box
from enliven.weights import PRESETS

#: What the library's messages call command-line flags, in the app's words.
_FLAG_CONTROLS = {
    "use --no-crop to": "untick “crop the face” to",
    "pass --force to": "tick “any face size” to",
    "with --model": "from the Model menu",
    "(see 'enliven models')": "(the Model menu)",
}


def fractions(box: Box | None, width: int, height: int) -> list[float]:
    """``box`` as ``[x0, y0, x1, y1]`` fractions of the image's width and height (``[]`` for ``None``)."""
    if box is None:
        return []
    return [box.x0 / width, box.y0 / height, box.x1 / width, box.y1 / height]


def available_models(current: str | None = None) -> list[str]:
    """Preset names whose weights are here (bundled, or in the models folder), plus ``current`` if it is another."""
    names = []
    for name, preset in PRESETS.items():
        path = preset.weights_path()
        if path is not None and (preset.bundled or path.exists()):
            names.append(name)
    if current and current not in names:
        names.append(current)
    return names


def titled(title: str, widget: w.Widget) -> w.VBox:
    return w.VBox([w.HTML(f"<b>{html.escape(title)}</b>"), widget])


def in_app_words(sentence: str, work_dir: Path) -> str:
    """A library message as the app says it: uploads by their names, command-line flags by their controls."""
    sentence = re.sub(re.escape(str(work_dir)) + r"/upload-[^/]+/", "", sentence)
    for flag, control in _FLAG_CONTROLS.items():
        sentence = sentence.replace(flag, control)
    return sentence


def download_link(path: Path, data: bytes) -> str:
    """HTML: a link that saves ``data`` as ``path``'s name (a data URL: it works in Voila and remote kernels),
    with its size and where the file is on the kernel's machine."""
    encoded = base64.b64encode(data).decode("ascii")
    name = html.escape(path.name)
    return (
        f"<a download='{name}' href='data:video/mp4;base64,{encoded}'>Download {name}</a> "
        f"({len(data) / 2**20:.1f} MB; also at {html.escape(str(path))})"
    )
