"""``FilePicker``: an upload button (anywidget) that checks the file's size in the browser and sends it in chunks.

ipywidgets' ``FileUpload`` sends a whole file in one message: the Jupyter server closes the kernel's websocket on a
message over 10 MiB (tornado's default), so a large photo or clip would silently break the notebook. This picker
refuses a file over ``max_bytes`` before reading it (one sentence, nothing sent) and sends the rest in 2 MiB
binary messages; :meth:`FilePicker.on_file` callbacks get the whole file once its last chunk arrived.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anywidget
import traitlets

logger = logging.getLogger(__name__)

#: Bytes per message: well under the server's 10 MiB websocket limit.
CHUNK_BYTES = 2 * 2**20

_ESM = r"""
function render({ model, el }) {
  const input = document.createElement("input");
  input.type = "file";
  input.accept = model.get("accept");
  input.className = "enliven-file-input";
  input.style.display = "none";
  const button = document.createElement("button");
  button.className = "jupyter-widgets jupyter-button widget-button enliven-file-button";
  button.textContent = model.get("description");
  button.onclick = () => input.click();
  const state = document.createElement("span");
  state.className = "enliven-file-state";
  state.style.marginLeft = "8px";
  el.append(input, button, state);
  model.on("change:state", () => { state.textContent = model.get("state"); });
  input.addEventListener("change", async () => {
    const file = input.files[0];
    input.value = "";
    if (!file) return;
    const limit = model.get("max_bytes");
    if (file.size > limit) {
      model.send({ kind: "refused", name: file.name, size: file.size });
      return;
    }
    const chunk = model.get("chunk_bytes");
    const count = Math.max(1, Math.ceil(file.size / chunk));
    model.send({ kind: "start", name: file.name, size: file.size, count: count });
    for (let index = 0; index < count; index++) {
      const buffer = await file.slice(index * chunk, (index + 1) * chunk).arrayBuffer();
      model.send({ kind: "chunk", index: index }, undefined, [buffer]);
      state.textContent = `sending ${file.name}: ${Math.round((100 * (index + 1)) / count)} %`;
    }
  });
}
export default { render };
"""


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.0f} MB" if size >= 2**20 else f"{size / 1024:.0f} kB"


class FilePicker(anywidget.AnyWidget):
    """A file button for one file at a time (see the module docstring).

    Args:
        too_large_hint: what to do with a file over ``max_bytes`` (the end of the sentence shown).

    Traits:
        description: the button's label.
        accept: the browser's file filter, e.g. ``"image/*"``.
        max_bytes: larger files are refused in the browser.
        state: the line shown beside the button (the app sets it, e.g. to the loaded file's name).
    """

    _esm = _ESM
    description = traitlets.Unicode("Upload").tag(sync=True)
    accept = traitlets.Unicode("").tag(sync=True)
    max_bytes = traitlets.Int(100 * 2**20).tag(sync=True)
    chunk_bytes = traitlets.Int(CHUNK_BYTES).tag(sync=True)
    state = traitlets.Unicode("").tag(sync=True)

    def __init__(self, *, too_large_hint: str = "use a smaller file", **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.too_large_hint = too_large_hint  #: what to do instead, ending the sentence for a refused file
        self._file_callbacks: list[Callable[[str, bytes], None]] = []
        self._error_callbacks: list[Callable[[str], None]] = []
        self._incoming: tuple[str, int, int, list[bytes]] | None = None
        self.on_msg(self._receive)

    def on_file(self, callback: Callable[[str, bytes], None]) -> None:
        """Call ``callback(name, data)`` for each whole file received."""
        self._file_callbacks.append(callback)

    def on_error(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(sentence)`` when a file is refused or arrives incomplete."""
        self._error_callbacks.append(callback)

    def receive(self, content: dict, buffers: list) -> None:
        """Handle one message from the browser (public so that tests can play the browser's part)."""
        kind = content.get("kind")
        if kind == "refused":
            name, size = str(content.get("name", "the file")), int(content.get("size", 0))
            self._error(
                f"{name} is {_megabytes(size)}; the notebook takes files up to {_megabytes(self.max_bytes)}: "
                f"{self.too_large_hint}."
            )
        elif kind == "start":
            name, size, count = str(content["name"]), int(content["size"]), int(content["count"])
            self._incoming = (name, size, count, [])
        elif kind == "chunk" and self._incoming is not None:
            name, size, count, parts = self._incoming
            if int(content.get("index", -1)) != len(parts) or len(buffers) != 1:
                self._incoming = None
                self._error(f"{name} arrived out of order; upload it again.")
                return
            parts.append(bytes(buffers[0]))
            self.state = f"received {name}: {round(100 * len(parts) / count)} %"
            if len(parts) == count:
                self._incoming = None
                data = b"".join(parts)
                if len(data) != size:
                    self._error(f"{name} arrived incomplete ({len(data)} of {size} bytes); upload it again.")
                    return
                for callback in self._file_callbacks:
                    callback(name, data)

    def _receive(self, _widget: object, content: dict, buffers: list) -> None:
        self.receive(content, buffers)

    def _error(self, sentence: str) -> None:
        self.state = ""
        for callback in self._error_callbacks:
            callback(sentence)
