"""``create_app``: the REST server (FastAPI): jobs in, videos out, and one-frame animation for low-latency clients.

    POST   /v1/jobs               multipart: source (image) and driving (video) files, or source_name /
                                  driving_name in the server's input folder; options: a JSON object of
                                  ``enliven animate``'s options -> 202 {"id", "state", ...}
    GET    /v1/jobs               the latest jobs (``?state=queued``)
    GET    /v1/jobs/{id}          state, progress, error
    GET    /v1/jobs/{id}/result   the video (409 until done)
    DELETE /v1/jobs/{id}          cancel (a queued job at once, a running one at its next frame)
    POST   /v1/sources            multipart: image -> {"source_id"} (encoded once, cached)
    POST   /v1/animate-frame      multipart: source_id, frame (an image), paste_back, reset -> image/jpeg
    GET    /v1/health             {"status": "ok", "jobs": {state: count}}
    GET    /live/                 with --live PHOTO: the live page (the browser's webcam animates the photo over
                                  WebRTC, :mod:`enliven.server.live_mount`)

Errors are JSON ``{"error": "<one sentence>"}`` with a 4xx status. Media are taken by their content (never their
file name) and probed before a job is accepted; request bodies over the size limit get 413 before they are stored.
Jobs live in SQLite and run in worker processes (:mod:`enliven.server.workers`); the API itself stays responsive.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
from fastapi import Depends, FastAPI, File, Form, Header, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from enliven.errors import EnlivenError, InputError
from enliven.inference.options import AUTO, PUBLIC_OPTIONS, is_auto, options_from_mapping
from enliven.io import decode_image, encode_jpeg
from enliven.server.config import ServerConfig
from enliven.server.frames import FrameSessions
from enliven.server.limits import BodyLimit
from enliven.server.live_mount import TOKEN_COOKIE, LiveMount
from enliven.server.store import JobStore
from enliven.server.uploads import UploadRefused, api_words, check_media, named_input, remove_folder, store_upload
from enliven.server.workers import WorkerPool

if TYPE_CHECKING:
    from enliven.inference.choice import ModelChoice
from enliven.weights import PRESETS


def create_app(config: ServerConfig, *, start_job_workers: bool = True) -> FastAPI:
    """The server for ``config`` (its workers start with the app and stop with it)."""
    config.make_dirs()
    store = JobStore(config.database)
    frames = FrameSessions(config.model, config.frame_sessions)
    faces = _FaceCheck()
    live = LiveMount(config.live_avatars, config.model) if config.live_avatars else None

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        store.recover()  # jobs a stopped server left running run again
        pool = WorkerPool(config).start() if start_job_workers else None
        if live is not None:
            live.start()
        try:
            yield
        finally:
            if live is not None:
                await live.close_client()
                live.stop()
            if pool is not None:
                pool.stop()
            frames.close()

    app = FastAPI(title="enliven", version="1", lifespan=lifespan, description=__doc__)
    # the limit is on each file; the body also holds the form's other fields and the multipart framing
    app.add_middleware(BodyLimit, max_bytes=2 * config.max_upload_bytes + 2**20, limit_mb=config.max_upload_mb)

    def authorized(authorization: Annotated[str | None, Header()] = None) -> None:
        if config.token is None:
            return
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), config.token.encode()):
            raise HTTPException(401, "a valid token is needed: send the header 'Authorization: Bearer <token>'.")

    guard = [Depends(authorized)]

    @app.exception_handler(UploadRefused)
    async def refused(_request: Request, error: UploadRefused) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=error.status)

    @app.exception_handler(EnlivenError)
    async def bad_input(_request: Request, error: EnlivenError) -> JSONResponse:
        return JSONResponse({"error": api_words(str(error))}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, error: HTTPException) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status_code == 401 else None
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path"))
        return JSONResponse({"error": f"{where or 'the request'}: {first.get('msg', 'is not valid')}."}, 422)

    if live is not None:
        _mount_live(app, live, config.token)

    @app.get("/v1/health")
    def health() -> dict[str, object]:
        return {"status": "ok", "jobs": store.counts()}

    @app.post("/v1/jobs", status_code=202, dependencies=guard)
    def submit(
        source: Annotated[UploadFile | None, File()] = None,
        driving: Annotated[UploadFile | None, File()] = None,
        source_name: Annotated[str | None, Form()] = None,
        driving_name: Annotated[str | None, Form()] = None,
        options: Annotated[str, Form()] = "{}",
    ) -> dict[str, object]:
        parsed = _job_options(options, config)
        job_id = store.new_id()
        folder = config.jobs_dir / job_id
        folder.mkdir()
        try:
            source_path = _input(source, source_name, folder, "source", "image", config)
            driving_path = _input(driving, driving_name, folder, "driving", "video", config)
            check_media(source_path, "image", "source", config.max_video_seconds)
            check_media(driving_path, "video", "driving", config.max_video_seconds)
            choice = faces.choose(source_path, parsed)
            faces.check(source_path, parsed)
            job = store.add(job_id, str(source_path), str(driving_path), parsed)
        except BaseException:
            remove_folder(folder)
            raise
        chosen = {"model_choice": choice.line} if choice is not None else {}
        return {**job.public(), **chosen, "status_url": f"/v1/jobs/{job_id}", "result_url": f"/v1/jobs/{job_id}/result"}

    @app.get("/v1/jobs", dependencies=guard)
    def jobs(state: str | None = None, limit: int = 100) -> dict[str, object]:
        return {"jobs": [job.public() for job in store.list(state, min(max(limit, 1), 1000))]}

    @app.get("/v1/jobs/{job_id}", dependencies=guard)
    def status(job_id: str) -> dict[str, object]:
        return _known(store, job_id).public()

    @app.get("/v1/jobs/{job_id}/result", dependencies=guard)
    def result(job_id: str) -> FileResponse:
        job = _known(store, job_id)
        if job.state != "done" or not job.output or not Path(job.output).is_file():
            raise HTTPException(409, f"job {job_id} is {job.state}; its video is there once its state is done.")
        return FileResponse(job.output, media_type="video/mp4", filename=f"{job_id}.mp4")

    @app.delete("/v1/jobs/{job_id}", dependencies=guard)
    def cancel(job_id: str) -> dict[str, object]:
        _known(store, job_id)
        job = store.cancel(job_id)
        assert job is not None
        if job.state == "cancelled":
            remove_folder(config.jobs_dir / job_id)  # a queued job's inputs; a running one's worker removes them
        return job.public()

    @app.post("/v1/sources", status_code=201, dependencies=guard)
    def add_source(image: Annotated[UploadFile, File()]) -> dict[str, str]:
        return {"source_id": frames.add(_decoded(image.file.read(), "image"))}

    @app.post("/v1/animate-frame", dependencies=guard)
    def animate_frame(
        source_id: Annotated[str, Form()],
        frame: Annotated[UploadFile, File()],
        paste_back: Annotated[bool, Form()] = False,
        reset: Annotated[bool, Form()] = False,
    ) -> Response:
        shown = frames.animate(source_id, _decoded(frame.file.read(), "frame"), paste_back=paste_back, reset=reset)
        return Response(encode_jpeg(shown), media_type="image/jpeg")

    return app


def _job_options(text: str, config: ServerConfig) -> dict[str, object]:
    try:
        values = json.loads(text or "{}")
    except json.JSONDecodeError:
        raise UploadRefused(422, 'options must be a JSON object, e.g. {"paste_back": true}.') from None
    if not isinstance(values, dict):
        raise UploadRefused(422, 'options must be a JSON object, e.g. {"paste_back": true}.')
    options = options_from_mapping(values, allowed=PUBLIC_OPTIONS)
    model = options.model or config.model or AUTO
    if is_auto(model):  # chosen for the photo once it is stored (_FaceCheck.choose)
        return {**values, "model": AUTO}
    preset = PRESETS.get(model)
    path = preset.weights_path() if preset is not None else None
    if preset is None or path is None or not (preset.bundled or path.exists()):
        raise UploadRefused(422, f"model {model!r} is not available on this server; see 'enliven models'.")
    return {**values, "model": model}


def _input(
    upload: UploadFile | None, name: str | None, folder: Path, field: str, want: str, config: ServerConfig
) -> Path:
    if (upload is None) == (name is None):
        raise UploadRefused(422, f"send either a {field} file or a {field}_name, one of the two.")
    if upload is not None:
        return store_upload(upload.file, folder, field, want, field, config.max_upload_bytes)
    return named_input(str(name), config.inputs_dir, folder, field, want, field)


def _known(store: JobStore, job_id: str):
    job = store.get(job_id)
    if job is None:
        raise HTTPException(404, f"there is no job {job_id!r}.")
    return job


def _decoded(data: bytes, field: str) -> np.ndarray:
    image = decode_image(data)
    if image is None:
        raise UploadRefused(415, f"{field} is not an image this server can decode (JPEG, PNG, WebP, BMP).")
    return image


class _FaceCheck:
    """When a job is accepted: ``auto`` becomes the model chosen for its photo, and a face model's photo must show a
    usable face (one MediaPipe face detector and one person detector, kept)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._detector = None
        self._chooser = None

    def choose(self, path: Path, options: dict[str, object]) -> ModelChoice | None:
        """Replace ``options["model"]`` ``auto`` with the model chosen for the photo at ``path``
        (:mod:`enliven.inference.choice`); that choice, or ``None`` for a job naming its model."""
        from enliven.inference.choice import ModelChooser
        from enliven.io import read_image

        if not is_auto(options["model"]):
            return None
        with self._lock:
            if self._chooser is None:
                self._chooser = ModelChooser()
        choice = self._chooser.choose(read_image(path))
        options["model"] = choice.model
        return choice

    def check(self, path: Path, options: dict[str, object]) -> None:
        from enliven.inference import FaceCropper
        from enliven.io import read_image
        from enliven.preprocess import FaceDetector

        preset = PRESETS[str(options["model"])]
        parsed = options_from_mapping(options)
        if preset.content not in ("face", "body") or not parsed.crop:
            return
        image = read_image(path)
        with self._lock:
            if self._detector is None:
                self._detector = FaceDetector()
            cropper = FaceCropper(256, content=preset.content, detector=self._detector, any_face=parsed.force)
            try:
                cropper.source_box(image, "the source")
            except InputError as error:  # no face, or one too small (a body or a scene)
                raise UploadRefused(422, api_words(str(error))) from None


def _mount_live(app: FastAPI, live: LiveMount, token: str | None) -> None:
    """``/live/...``: the live page, forwarded to its own server (see :mod:`enliven.server.live_mount`)."""

    @app.get("/live", include_in_schema=False)
    def live_root(request: Request) -> RedirectResponse:
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"/live/{query}")

    @app.api_route("/live/{path:path}", methods=["GET", "POST"], include_in_schema=False)
    async def live_page(path: str, request: Request) -> Response:
        from_query = request.query_params.get("token")
        if token is not None:
            given = from_query or request.cookies.get(TOKEN_COOKIE) or ""
            given = given or (request.headers.get("authorization") or "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"error": "open the live page as /live/?token=<token> (the server's token)."}, 401)
        query = "&".join(f"{k}={v}" for k, v in request.query_params.items() if k != "token")
        status, body, content_type = await live.forward(
            request.method, path + (f"?{query}" if query else ""), dict(request.headers), await request.body()
        )
        response = Response(body, status_code=status, headers={"Content-Type": content_type})
        if token is not None and from_query:
            response.set_cookie(TOKEN_COOKIE, from_query, httponly=True, samesite="strict", path="/live")
        return response
