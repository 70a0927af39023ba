"""``BoxEditor``: the photo with its crop boxes drawn, and the crop box moved and resized with the mouse (anywidget).

The detected box is drawn grey, the box used green. Dragging inside the green box moves it; dragging its corner
handle (bottom right) resizes it about its centre, kept square. When the mouse is released, :attr:`BoxEditor.box`
(the new box as fractions of the photo's width and height) is sent to the kernel; the app turns it into a
:class:`~enliven.notebook.inputs.BoxAdjustment`.
"""

from __future__ import annotations

import anywidget
import traitlets

_ESM = r"""
function render({ model, el }) {
  el.classList.add("enliven-box-editor");
  const canvas = document.createElement("canvas");
  canvas.style.cursor = "move";
  canvas.style.maxWidth = "100%";
  canvas.style.touchAction = "none";
  el.append(canvas);
  const image = new Image();
  let box = null, drag = null;
  const HANDLE = 10;

  function draw() {
    if (!image.naturalWidth) return;
    canvas.width = image.naturalWidth;
    canvas.height = image.naturalHeight;
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0);
    const [W, H] = [canvas.width, canvas.height];
    const detected = model.get("detected");
    context.lineWidth = 2;
    if (detected.length === 4) {
      context.strokeStyle = "rgb(150,150,150)";
      const [x0, y0, x1, y1] = detected;
      context.strokeRect(x0 * W, y0 * H, (x1 - x0) * W, (y1 - y0) * H);
    }
    el.dataset.box = JSON.stringify(box);  // where the box is, for tests driving the page
    if (box && box.length === 4) {
      context.strokeStyle = "rgb(0,200,80)";
      context.strokeRect(box[0] * W, box[1] * H, (box[2] - box[0]) * W, (box[3] - box[1]) * H);
      context.fillStyle = "rgb(0,200,80)";
      context.fillRect(box[2] * W - HANDLE, box[3] * H - HANDLE, HANDLE, HANDLE);
    }
  }
  function load() {
    box = model.get("box").slice();
    const bytes = model.get("image");
    if (!bytes || bytes.byteLength === 0) return;
    const url = URL.createObjectURL(new Blob([bytes], { type: "image/jpeg" }));
    image.onload = () => { URL.revokeObjectURL(url); draw(); };
    image.src = url;
  }
  function at(event) {
    const rect = canvas.getBoundingClientRect();
    return [(event.clientX - rect.left) / rect.width, (event.clientY - rect.top) / rect.height];
  }
  canvas.addEventListener("pointerdown", (event) => {
    if (!box || box.length !== 4) return;
    const [x, y] = at(event);
    const rect = canvas.getBoundingClientRect();
    const nearCorner =
      Math.abs(x - box[2]) * rect.width < 2 * HANDLE && Math.abs(y - box[3]) * rect.height < 2 * HANDLE;
    const inside = x > box[0] && x < box[2] && y > box[1] && y < box[3];
    if (!nearCorner && !inside) return;
    drag = { kind: nearCorner ? "resize" : "move", x, y, start: box.slice() };
    canvas.setPointerCapture(event.pointerId);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const [x, y] = at(event);
    const s = drag.start;
    if (drag.kind === "move") {
      const [dx, dy] = [x - drag.x, y - drag.y];
      box = [s[0] + dx, s[1] + dy, s[2] + dx, s[3] + dy];
    } else {
      // about the centre, square in pixels: the half side follows the pointer's larger offset
      const [cx, cy] = [(s[0] + s[2]) / 2, (s[1] + s[3]) / 2];
      const half = Math.max(Math.abs(x - cx) * canvas.width, Math.abs(y - cy) * canvas.height, 8);
      box = [cx - half / canvas.width, cy - half / canvas.height, cx + half / canvas.width, cy + half / canvas.height];
    }
    draw();
  });
  canvas.addEventListener("pointerup", () => {
    if (!drag) return;
    drag = null;
    model.set("box", box.slice());
    model.save_changes();
  });
  model.on("change:image", load);
  model.on("change:box", () => { box = model.get("box").slice(); draw(); });
  model.on("change:detected", draw);
  load();
}
export default { render };
"""


class BoxEditor(anywidget.AnyWidget):
    """The photo and its crop boxes, the used box editable with the mouse (see the module docstring).

    Traits:
        image: the photo as JPEG bytes (shown at its own size, shrunk to the cell's width).
        detected: the detected box ``[x0, y0, x1, y1]`` as fractions of the photo's width and height (``[]``: none).
        box: the box used, the same way; the browser sets it when the user lets go of a drag.
    """

    _esm = _ESM
    image = traitlets.Bytes(b"").tag(sync=True)
    detected = traitlets.List(traitlets.Float(), default_value=[]).tag(sync=True)
    box = traitlets.List(traitlets.Float(), default_value=[]).tag(sync=True)
