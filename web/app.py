"""The FastAPI application of ``flamefit serve``: the page, the upload, the job API, the files.

=========================================  =================================================
route                                      what
=========================================  =================================================
``GET /``                                  the page (``static/index.html``)
``GET /static/...``                        its script, style and the vendored three.js
``GET /healthz``                           ``{"status": "ok", model, device, queue ...}``
``GET /api/config``                        the upload limits, for the page's own checks
``POST /api/jobs``                         the photo as the raw request body (``X-Filename``
                                           optional, for display): 201 with the job; 413, 415,
                                           422 (no face ...), 503 (queue full)
``GET /api/jobs/{id}``                     the job (state, faces, progress, result, error)
``POST /api/jobs/{id}/face``               ``{"face": n}``: fit face ``n`` of a ``choose`` job
``GET /api/jobs/{id}/events``              server-sent events: the job at every change, until
                                           it is done or failed
``GET /api/jobs/{id}/photo``               the uploaded photo
``GET /api/jobs/{id}/files/{name}``        a result file: :data:`RESULT_FILES`
``GET /api/jobs/{id}/mesh.zip``            ``mesh.obj`` + ``mesh.mtl`` + ``mesh.png``
=========================================  =================================================

Every error is ``{"error": "<one plain sentence>"}``. A job is reachable only through its id
(no listing); ids of the wrong form, unknown ids and unknown file names are 404. Each response
carries a Content-Security-Policy that lets the page load nothing from another machine.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import threading
import time
import zipfile
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from flamefit.web.jobs import CHOOSE, DONE, FINISHED, JOB_ID, QUEUED, RESULT_DIR, Job, JobStore
from flamefit.web.options import ServeOptions
from flamefit.web.uploads import (
    UploadError, check_dimensions, describe_refused, display_name, download_stem, save_stream,
    sniff_image_type, too_large_message,
)
from flamefit.web.worker import VIEWER_FILE, FitService, QueueFull, plain_input_error

log = logging.getLogger("flamefit.web")

STATIC = Path(__file__).resolve().parent / "static"

#: Result files served by name -> (media type, download as attachment).
RESULT_FILES = {
    "mesh.glb": ("model/gltf-binary", True),
    "params.npz": ("application/octet-stream", True),
    "camera.npz": ("application/octet-stream", True),
    "landmarks.npz": ("application/octet-stream", True),
    "overlay.png": ("image/png", False),
    "sheet.png": ("image/png", False),
    "report.json": ("application/json", False),
    VIEWER_FILE: ("application/json", False),
}
ZIP_MEMBERS = ("mesh.obj", "mesh.mtl", "mesh.png")
ZIP_FILE = "mesh.zip"
NOT_FOUND = "There is no such job (the link is wrong, or the job expired and was deleted)."


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def content_security_policy(index_html: str) -> str:
    """A CSP allowing this server only, plus the page's inline import map (by its hash)."""
    match = re.search(r'<script type="importmap">(.*?)</script>', index_html, re.S)
    hashes = ""
    if match:
        digest = base64.b64encode(hashlib.sha256(match.group(1).encode()).digest()).decode()
        hashes = f" 'sha256-{digest}'"
    return ("default-src 'self'; script-src 'self'" + hashes + "; style-src 'self'; "
            "img-src 'self' blob: data:; connect-src 'self' blob: data:; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


class RequestLog:
    """ASGI middleware: one log line per request (client, method, path, status, milliseconds),
    job ids shortened to their first 6 characters; adds the security headers."""

    _ID = re.compile(r"(/api/jobs/[A-Za-z0-9_-]{6})[A-Za-z0-9_-]{16}")

    def __init__(self, app, csp: str):
        self.app = app
        self.headers = [(b"content-security-policy", csp.encode()),
                        (b"x-content-type-options", b"nosniff"),
                        (b"referrer-policy", b"no-referrer")]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def logged(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": list(message.get("headers", [])) + self.headers}
            await send(message)

        try:
            await self.app(scope, receive, logged)
        finally:
            client = scope.get("client") or ("-", 0)
            path = self._ID.sub(r"\1...", scope.get("path", ""))
            log.info("%s %s %s %d %.1f ms", client[0], scope.get("method"), path, status,
                     1000 * (time.perf_counter() - started))


class Janitor:
    """Deletes expired jobs every ``interval`` seconds in a thread."""

    def __init__(self, store: JobStore, keep_seconds: float, interval: float):
        self.store, self.keep_seconds, self.interval = store, keep_seconds, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flamefit-janitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)

    def _run(self) -> None:
        while True:
            removed = self.store.expire(self.keep_seconds)
            if removed:
                log.info("deleted %d expired job(s)", len(removed))
            if self._stop.wait(self.interval):
                return


def create_app(options: ServeOptions | None = None, start_workers: bool = True) -> FastAPI:
    """The application; ``start_workers=False`` serves uploads and files but fits nothing
    (API tests of validation)."""
    options = options or ServeOptions()
    options.check()
    store = JobStore(Path(options.data_dir) / "jobs")
    service = FitService(store, options)
    keep_seconds = options.keep_hours * 3600.0
    janitor = Janitor(store, keep_seconds, interval=min(600.0, max(1.0, keep_seconds / 4)))
    index_html = (STATIC / "index.html").read_text()

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        store.expire(keep_seconds)
        for job in store.load():
            try:
                service.submit(job.id)
            except QueueFull:
                store.update(job.id, state="failed",
                             error="The server restarted with more photos than its queue holds; upload it again.")
        if start_workers:
            service.start()
        janitor.start()
        log.info("serving jobs from %s", store.root)
        yield
        janitor.stop()
        service.stop()

    app = FastAPI(title="flamefit", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store, app.state.service, app.state.options = store, service, options
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def job_or_none(job_id: str) -> Job | None:
        return store.get(job_id) if JOB_ID.fullmatch(job_id) else None

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(index_html, headers={"cache-control": "no-cache"})

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", **service.status(),
                "jobs": {state: store.count(state) for state in ("choose", "queued", "running", "done", "failed")}}

    @app.get("/api/config")
    async def config() -> dict:
        return {"max_upload_bytes": options.max_upload_bytes, "max_pixels": options.max_pixels,
                "keep_hours": options.keep_hours, "accepted": ["image/jpeg", "image/png", "image/webp",
                                                               "image/bmp", "image/tiff"]}

    @app.post("/api/jobs", status_code=201)
    async def upload(request: Request):
        if service.queue.full():
            return error(503, "The server is busy: too many photos are waiting. Try again in a few minutes.")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > options.max_upload_bytes:
            return error(413, too_large_message(options.max_upload_bytes))
        job_id, folder = store.new_folder()
        try:
            _size, head = await save_stream(request.stream(), folder / "upload", options.max_upload_bytes)
            kind = sniff_image_type(head)
            if kind is None:
                raise UploadError(415, describe_refused(head))
            photo = folder / f"photo{kind.suffix}"
            (folder / "upload").rename(photo)
            check_dimensions(photo, options.max_pixels)
            try:
                faces, (width, height) = await run_in_threadpool(service.detect, photo)
            except ValueError as problem:  # InputError and its kinds are ValueErrors
                raise UploadError(422, plain_input_error(problem)) from None
            except Exception as failure:  # noqa: BLE001 - a detector's own failure: said, logged
                log.exception("face detection failed")
                raise UploadError(500, f"The server could not look for faces in this photo "
                                       f"({type(failure).__name__}); try again or use another photo.") from None
        except UploadError as refused:
            store.discard(job_id)
            return error(refused.status, refused.message)
        except BaseException:
            store.discard(job_id)
            raise
        now = time.time()
        job = Job(id=job_id, state=CHOOSE, created=now, updated=now,
                  filename=display_name(request.headers.get("x-filename")), photo=photo.name,
                  media_type=kind.media_type, image_size=[width, height], faces=faces)
        if len(faces) == 1:
            job.state, job.face, job.progress = QUEUED, 0, {"stage": "waiting"}
        store.add(job)
        if job.state == QUEUED:
            try:
                service.submit(job_id)
            except QueueFull:
                store.discard(job_id)
                return error(503, "The server is busy: too many photos are waiting. Try again in a few minutes.")
        log.info("job %s: %s, %dx%d, %d face(s)", job_id[:6], kind.name, width, height, len(faces))
        return JSONResponse(job.public(), status_code=201)

    @app.get("/api/jobs/{job_id}")
    async def get_job(job_id: str):
        job = job_or_none(job_id)
        return error(404, NOT_FOUND) if job is None else job.public()

    @app.post("/api/jobs/{job_id}/face")
    async def choose_face(job_id: str, request: Request):
        job = job_or_none(job_id)
        if job is None:
            return error(404, NOT_FOUND)
        try:
            body = json.loads(await request.body() or b"{}")
            face = body["face"]
        except (ValueError, KeyError, TypeError):
            return error(400, 'Send the face to fit as JSON: {"face": 0}.')
        if job.state != CHOOSE:
            return error(409, "A face was already chosen for this photo.")
        if not isinstance(face, int) or isinstance(face, bool) or not 0 <= face < len(job.faces):
            return error(400, f"Choose a face from 0 to {len(job.faces) - 1}.")
        store.update(job_id, state=QUEUED, face=face, progress={"stage": "waiting"})
        try:
            service.submit(job_id)
        except QueueFull:
            store.update(job_id, state=CHOOSE, face=None, progress={})
            return error(503, "The server is busy: too many photos are waiting. Try again in a few minutes.")
        return store.get(job_id).public()

    @app.get("/api/jobs/{job_id}/events")
    async def events(job_id: str, request: Request):
        if job_or_none(job_id) is None:
            return error(404, NOT_FOUND)

        async def stream():
            last, quiet = -1, 0.0
            yield "retry: 2000\n\n"
            while not await request.is_disconnected():
                snapshot = store.snapshot(job_id)
                if snapshot is None:
                    yield f"event: gone\ndata: {json.dumps({'error': NOT_FOUND})}\n\n"
                    return
                version, data = snapshot
                if version != last:
                    last, quiet = version, 0.0
                    yield f"data: {json.dumps(data)}\n\n"
                    if data["state"] in FINISHED:
                        return
                elif quiet > 15.0:
                    quiet = 0.0
                    yield ": still working\n\n"
                await asyncio.sleep(0.2)
                quiet += 0.2

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

    @app.get("/api/jobs/{job_id}/photo")
    async def photo(job_id: str):
        job = job_or_none(job_id)
        if job is None:
            return error(404, NOT_FOUND)
        return FileResponse(store.folder(job_id) / job.photo, media_type=job.media_type)

    def done_job(job_id: str) -> Job | JSONResponse:
        job = job_or_none(job_id)
        if job is None:
            return error(404, NOT_FOUND)
        if job.state != DONE:
            return error(409, "The fit of this photo has not finished (or it failed); no results yet.")
        return job

    @app.get("/api/jobs/{job_id}/files/{name}")
    async def result_file(job_id: str, name: str):
        if name not in RESULT_FILES:
            return error(404, "There is no such result file.")
        job = done_job(job_id)
        if isinstance(job, Response):
            return job
        path = store.folder(job_id) / RESULT_DIR / name
        if not path.is_file():
            return error(404, "There is no such result file.")
        media_type, attachment = RESULT_FILES[name]
        download = f"{download_stem(job.filename)}-{name}" if attachment else None
        return FileResponse(path, media_type=media_type, filename=download,
                            content_disposition_type="attachment" if attachment else "inline")

    @app.get("/api/jobs/{job_id}/mesh.zip")
    async def mesh_zip(job_id: str):
        job = done_job(job_id)
        if isinstance(job, Response):
            return job
        folder = store.folder(job_id) / RESULT_DIR
        path = await run_in_threadpool(write_mesh_zip, folder)
        return FileResponse(path, media_type="application/zip",
                            filename=f"{download_stem(job.filename)}-mesh.zip")

    # Outermost middleware: logs every request, adds the security headers.
    app.add_middleware(RequestLog, csp=content_security_policy(index_html))
    return app


def write_mesh_zip(folder: Path) -> Path:
    """``folder/mesh.zip`` holding the OBJ, its MTL and its PNG (built once, atomically)."""
    from flamefit.utils import atomic_write

    path = folder / ZIP_FILE
    if path.is_file():
        return path

    def write(stream) -> None:
        with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name in ZIP_MEMBERS:
                archive.write(folder / name, arcname=name)

    return atomic_write(path, write)
