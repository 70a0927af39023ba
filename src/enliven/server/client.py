"""A small Python client of the REST server (standard library only), and ``LocalServer``: ``enliven serve`` started
as a process on a free localhost port (tests, benchmarks, scripts that want a server of their own).

    with LocalServer(data_dir) as server:
        client = server.client()
        job = client.submit("me.jpg", "talk.mp4", {"paste_back": True})
        client.wait(job["id"])
        Path("out.mp4").write_bytes(client.result(job["id"]))
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

FINAL = ("done", "failed", "cancelled")


class ServerError(Exception):
    """A 4xx/5xx answer: ``status`` and the server's sentence."""

    def __init__(self, status: int, sentence: str) -> None:
        super().__init__(f"{status}: {sentence}")
        self.status, self.sentence = status, sentence


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body and its content type."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data) in files.items():
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n")  # fmt: skip
        out.write(head.encode() + data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


class Client:
    """Calls of one server (``http://HOST:PORT``), with its token if it needs one."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 8000, token: str | None = None, timeout: float = 60
    ) -> None:
        self.host, self.port, self.token, self.timeout = host, port, token, timeout

    def request(
        self,
        method: str,
        path: str,
        fields: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes]] | None = None,
        *,
        token: str | None = None,
    ) -> tuple[int, object]:
        """``(status, answer)``: JSON answers decoded, others as bytes. Never raises for a 4xx/5xx."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            headers, body = {}, None
            if fields or files:
                body, headers["Content-Type"] = multipart(fields or {}, files or {})
            if token or self.token:
                headers["Authorization"] = f"Bearer {token or self.token}"
            connection.request(method, path, body, headers)
            response = connection.getresponse()
            data = response.read()
            kind = response.getheader("content-type") or ""
            return response.status, json.loads(data) if kind.startswith("application/json") else data
        finally:
            connection.close()

    def _ok(self, status: int, answer: object) -> object:
        if status >= 400:
            raise ServerError(status, answer.get("error", "") if isinstance(answer, dict) else str(answer))
        return answer

    def submit(self, source: str | Path, driving: str | Path, options: dict | None = None) -> dict:
        """Upload a photo and a clip as a new job; the job (``id``, ``state``...)."""
        files = {key: (Path(path).name, Path(path).read_bytes()) for key, path in (("source", source),
                                                                                     ("driving", driving))}  # fmt: skip
        return self._ok(*self.request("POST", "/v1/jobs", {"options": json.dumps(options or {})}, files))  # type: ignore[return-value]

    def status(self, job_id: str) -> dict:
        return self._ok(*self.request("GET", f"/v1/jobs/{job_id}"))  # type: ignore[return-value]

    def wait(self, job_id: str, states: tuple[str, ...] = FINAL, timeout: float = 600, every: float = 0.2) -> dict:
        """Poll until the job is in one of ``states``; the job."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.status(job_id)
            if job["state"] in states or time.monotonic() > deadline:
                return job
            time.sleep(every)

    def result(self, job_id: str) -> bytes:
        return self._ok(*self.request("GET", f"/v1/jobs/{job_id}/result"))  # type: ignore[return-value]

    def cancel(self, job_id: str) -> dict:
        return self._ok(*self.request("DELETE", f"/v1/jobs/{job_id}"))  # type: ignore[return-value]

    def add_source(self, image: bytes, name: str = "source.jpg") -> str:
        """Send a photo for :meth:`animate_frame`; its id."""
        answer = self._ok(*self.request("POST", "/v1/sources", files={"image": (name, image)}))
        return answer["source_id"]  # type: ignore[index]

    def animate_frame(self, source_id: str, frame_jpeg: bytes, *, paste_back: bool = False) -> bytes:
        """The source animated by one driving frame (JPEG in, JPEG out)."""
        fields = {"source_id": source_id, "paste_back": str(paste_back).lower()}
        return self._ok(*self.request("POST", "/v1/animate-frame", fields, {"frame": ("frame.jpg", frame_jpeg)}))  # type: ignore[return-value]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalServer:
    """``enliven serve --data DATA`` on a free localhost port, in a process of its own (``extra``: more flags)."""

    def __init__(self, data: str | Path, *, token: str | None = None, extra: list[str] | None = None) -> None:
        self.data, self.token, self.extra = Path(data), token, list(extra or [])
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def client(self) -> Client:
        return Client("127.0.0.1", self.port, self.token)

    def start(self, timeout: float = 60) -> LocalServer:
        command = [sys.executable, "-m", "enliven", "serve", "--data", str(self.data), "--port", str(self.port),
                   *(["--token", self.token] if self.token else []), *self.extra]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"enliven serve stopped at start: {self.process.stdout.read().decode()[-2000:]}")
            try:
                if self.client().request("GET", "/v1/health")[0] == 200:
                    return self
            except OSError:
                time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"enliven serve did not answer within {timeout:.0f} s")

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
