"""The notebook app in a real browser: JupyterLab 4, Notebook 7 or Voila on localhost, Debian's headless Chromium
driven by Playwright, the bundled clip as the browser's webcam. The browser tests and the benchmark use it.

Measured in the page (``performance.now()``): the time from opening the notebook to the first animated frame shown
(cold: a new server and kernel), and, for slider moves by the keyboard, the time from the key press to the result
image showing the new frame.

    python -m enliven.notebook.bench                        # JupyterLab: figures, screenshots to docs/images
    python -m enliven.notebook.bench --frontend notebook    # Notebook 7 (or voila)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "enliven.ipynb"
FRONTENDS = ("lab", "notebook", "voila")
TOKEN = "enliven-test"


@dataclass(frozen=True)
class Server:
    """A Jupyter (or Voila) server on localhost serving a copy of the notebook."""

    frontend: str
    port: int
    root: Path

    @property
    def url(self) -> str:
        """The notebook's page."""
        if self.frontend == "lab":
            return f"http://127.0.0.1:{self.port}/lab/tree/enliven.ipynb?token={TOKEN}"
        if self.frontend == "notebook":
            return f"http://127.0.0.1:{self.port}/notebooks/enliven.ipynb?token={TOKEN}"
        return f"http://127.0.0.1:{self.port}/"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def jupyter_server(frontend: str = "lab", notebook: Path = NOTEBOOK, timeout: float = 60.0) -> Iterator[Server]:
    """Start ``frontend`` (``lab``, ``notebook`` or ``voila``) on a free localhost port with its own settings and a
    copy of ``notebook`` (autosave never touches the original); stop it afterwards."""
    if frontend not in FRONTENDS:
        raise ValueError(f"frontend must be one of {FRONTENDS}, got {frontend!r}")
    with tempfile.TemporaryDirectory(prefix="enliven-jupyter-") as work:
        root = Path(work) / "root"
        root.mkdir()
        shutil.copy(notebook, root / "enliven.ipynb")
        port = _free_port()
        env = dict(os.environ, JUPYTER_CONFIG_DIR=f"{work}/config", JUPYTER_RUNTIME_DIR=f"{work}/runtime",
                   JUPYTERLAB_WORKSPACES_DIR=f"{work}/workspaces", IPYTHONDIR=f"{work}/ipython")  # fmt: skip
        common = [f"--port={port}", "--ip=127.0.0.1", "--no-browser"]
        if frontend == "voila":
            command = [sys.executable, "-m", "voila", str(root / "enliven.ipynb"), *common]
        else:
            module = "jupyterlab" if frontend == "lab" else "notebook"
            command = [sys.executable, "-m", module, *common, f"--ServerApp.root_dir={root}",
                       f"--IdentityProvider.token={TOKEN}", "--allow-root"]  # fmt: skip
        log = open(Path(work) / "server.log", "w+")  # noqa: SIM115 - closed below
        process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_until_up(port, process, timeout, log)
            yield Server(frontend, port, root)
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()


def _wait_until_up(port: int, process: subprocess.Popen, timeout: float, log) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"the server stopped at start:\n{log.read()[-3000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={TOKEN}", timeout=2)  # noqa: S310
            return
        except OSError as error:
            if getattr(error, "code", None) is not None:  # an HTTP answer (voila has no /api/status): it is up
                return
            time.sleep(0.3)
    log.seek(0)
    raise RuntimeError(f"the server did not start in {timeout:.0f} s:\n{log.read()[-3000:]}")
