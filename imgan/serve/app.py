"""The web app of ``imgan serve``: the page, its JSON API, and running it (``serve``, ``serve_in_thread``).

Safe by default: it listens on 127.0.0.1 and then only answers requests addressed to a loopback
name (no DNS rebinding); any other host needs the token, sent as ``Authorization: Bearer T`` or
the ``imgan_token`` cookie that ``/?token=T`` sets. Requests name commands and registry models,
never a server path; uploads are counted while they stream in and checked against the pixel limit
before they are decoded. Every refusal is ``{"error": "one line"}`` with a 4xx status. Results
live in a temporary folder made when the app starts and removed when it stops.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from imgan import __version__
from imgan.errors import UsageError
from imgan.serve.commands import COMMANDS, build_pipeline, choose_model, find_command
from imgan.serve.downloads import Downloads, model_records
from imgan.serve.jobs import (
    ImageWork,
    JobQueue,
    ServeJob,
    TextWork,
    accept_image,
    new_job_id,
    remove_folder,
)
from imgan.serve.settings import LOCAL_NAMES, ServeSettings, checked, page_url
from imgan.serve.uploads import ApiError, Form, read_form

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
COOKIE = "imgan_token"
MAX_CAPTIONS = 64
DRAIN_BYTES = 256 * 2**20
"""After refusing an upload, read (and drop) at most this much more of it, so the client gets the answer."""
MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "jpe": "image/jpeg",
               "jfif": "image/jpeg", "webp": "image/webp", "tif": "image/tiff", "tiff": "image/tiff",
               "bmp": "image/bmp"}
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'",
}


def create_app(settings: ServeSettings) -> FastAPI:
    """The app for ``settings``; UsageError for a device or precision that cannot work here."""
    from imgan.engine import PRECISIONS, parse_devices

    settings = checked(settings)
    devices = parse_devices(settings.device)
    if settings.precision not in ("auto", *PRECISIONS):
        raise UsageError(f"--precision {settings.precision!r}: use auto, fp32, fp16 or bf16")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        results = Path(tempfile.mkdtemp(prefix="imgan-serve-"))
        app.state.results = results
        app.state.jobs = JobQueue(devices, precision=settings.precision, cached_engines=settings.cached_engines)
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(app.state.jobs.close)
            remove_folder(results)

    app = FastAPI(title="imgan", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.settings = settings
    app.state.downloads = Downloads()
    _add_error_handlers(app)
    _add_guard(app, settings)
    _add_routes(app, settings, devices)
    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")
    return app


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def refused(_: Request, error: ApiError) -> JSONResponse:
        return _error(error.status, error.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        message = error.detail if isinstance(error.detail, str) else "request refused"
        return _error(error.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("path", "query", "body"))
        return _error(422, f"{where}: {first.get('msg', 'invalid value')}" if where else "invalid request")

    @app.exception_handler(Exception)
    async def crashed(_: Request, error: Exception) -> JSONResponse:
        log.error("internal error: %s: %s", type(error).__name__, error)
        return _error(500, "internal error; see the server's log")


def _add_guard(app: FastAPI, settings: ServeSettings) -> None:
    """Host check (loopback without a token), same-origin writes, the token on /api, security headers."""
    allowed_hosts = {*LOCAL_NAMES, settings.host.strip("[]").lower()}

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Any]) -> Response:
        refusal = _refusal(request, settings, allowed_hosts)
        response = _error(*refusal) if refusal is not None else await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response


def _refusal(request: Request, settings: ServeSettings, allowed_hosts: set[str]) -> tuple[int, str] | None:
    host = (request.url.hostname or "").lower()
    if settings.token is None and host not in allowed_hosts:
        return 403, f"this server answers requests for {settings.host} only; open it as http://127.0.0.1:PORT/"
    origin = request.headers.get("origin")
    if request.method not in ("GET", "HEAD", "OPTIONS") and origin is not None:
        if urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower():
            return 403, "requests from other sites are refused"
    if settings.token is not None and request.url.path.startswith("/api") and not _authorized(request, settings.token):
        return 401, "this server needs its token: open the address imgan serve printed (with ?token=...)"
    return None


def _authorized(request: Request, token: str) -> bool:
    given = request.headers.get("authorization", "")
    bearer = given[7:].strip() if given.lower().startswith("bearer ") else ""
    candidates = [bearer, request.cookies.get(COOKIE, "")]
    return any(candidate and secrets.compare_digest(candidate.encode(), token.encode()) for candidate in candidates)


def _add_routes(app: FastAPI, settings: ServeSettings, devices: list[torch.device]) -> None:
    @app.get("/", include_in_schema=False)
    async def page(request: Request, token: str | None = None) -> Response:
        if token is not None:
            if settings.token is None or not secrets.compare_digest(token.encode(), settings.token.encode()):
                return _error(401, "wrong token: use the address imgan serve printed")
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
            return response
        index = STATIC / "index.html"
        if not index.is_file():
            return _error(404, "the page is missing from this installation; reinstall imgan")
        return FileResponse(index, media_type="text/html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/info")
    async def info() -> dict[str, Any]:
        return {"version": __version__, "device": ",".join(str(device) for device in devices),
                "max_pixels": settings.max_pixels, "max_upload_bytes": settings.max_upload_bytes,
                "max_files": settings.max_files, "token_required": settings.token is not None}

    @app.get("/api/commands")
    def commands() -> list[dict[str, Any]]:
        return [command.as_json() for command in COMMANDS.values()]

    @app.get("/api/models")
    def models() -> list[dict[str, Any]]:
        return model_records()

    @app.post("/api/models/{name}/download", status_code=202)
    def download(name: str) -> dict[str, Any]:
        return app.state.downloads.start(name)

    @app.get("/api/models/{name}/download")
    def download_status(name: str) -> dict[str, Any]:
        return app.state.downloads.status(name)

    @app.post("/api/jobs", status_code=202)
    async def submit(request: Request) -> JSONResponse:
        queue: JobQueue = app.state.jobs
        job_id = new_job_id()
        folder = app.state.results / job_id
        (folder / "in").mkdir(parents=True)
        try:
            form = await read_form(request.headers.get("content-type"), _drained(request.stream()), folder / "in",
                                   file_fields=frozenset({"images", "mask"}),
                                   text_fields=frozenset({"command", "model", "options", "captions"}),
                                   max_file_bytes=settings.max_upload_bytes, max_files=settings.max_files)
            job = await anyio.to_thread.run_sync(_make_job, form, job_id, folder, settings)
            position = queue.submit(job)
        except ClientDisconnect:
            remove_folder(folder)
            raise ApiError(400, "the upload was cut off; send it again") from None
        except BaseException:
            remove_folder(folder)
            raise
        return JSONResponse({"id": job.id, "position": position}, status_code=202)

    @app.get("/api/jobs/{job_id}")
    def job_status(job_id: str) -> dict[str, Any]:
        job = _find(app, job_id)
        return job.as_json(app.state.jobs.position(job))

    @app.get("/api/jobs/{job_id}/files/{index}/{kind}")
    def job_file(job_id: str, index: int, kind: str, download: bool = False) -> FileResponse:
        job = _find(app, job_id)
        result = job.result(index)
        if kind not in ("input", "output"):
            raise ApiError(404, f"no file {kind[:20]!r}: ask for input or output")
        if result is None:
            raise ApiError(404, f"job {job_id} has no finished file {index}")
        path = result.input.view if kind == "input" and result.input is not None else result.output
        if path is None or kind == "input" and result.input is None:
            raise ApiError(404, f"file {index} has no {kind}")
        media = "image/png" if kind == "input" else MEDIA_TYPES.get(path.suffix.lstrip(".").lower(),
                                                                    "application/octet-stream")
        name = result.download_name if kind == "output" else f"{Path(result.name).stem}.png"
        if download:
            return FileResponse(path, media_type=media, filename=name, content_disposition_type="attachment")
        return FileResponse(path, media_type=media, headers={"Cache-Control": "private, max-age=3600"})


def _find(app: FastAPI, job_id: str) -> ServeJob:
    job = app.state.jobs.find(job_id)
    if job is None:
        raise ApiError(404, "no such job (results last while the server runs)")
    return job


async def _drained(stream: Any) -> Any:
    """The request body; once the reader stops early (a refused upload), what remains is read and dropped."""
    iterator = stream.__aiter__()
    try:
        async for chunk in iterator:
            yield chunk
    finally:
        dropped = 0
        try:
            async for chunk in iterator:
                dropped += len(chunk)
                if dropped > DRAIN_BYTES:
                    break
        except Exception:  # noqa: BLE001 - the client went away: nothing left to drain
            pass


def _make_job(form: Form, job_id: str, folder: Path, settings: ServeSettings) -> ServeJob:
    """Check a submitted form and turn it into a job (uploads decoded once, under the pixel limit)."""
    command = find_command(form.fields.get("command"))
    options_text = form.fields.get("options")
    values = command.values(options_text)
    given = json.loads(options_text) if options_text and options_text.strip() else {}
    images = [upload for upload in form.files if upload.field == "images"]
    masks = [upload for upload in form.files if upload.field == "mask"]
    for upload in form.files:
        if upload.size == 0:
            raise ApiError(400, f"{upload.filename}: empty file; nothing was uploaded")
    model = choose_model(command, form.fields.get("model") or None, values, style_given="style" in given)
    if command.input == "captions":
        return _text_job(form, job_id, folder, model, values)
    if "captions" in form.fields:
        raise ApiError(422, f"{command.name} takes images; captions are for text2img")
    if not images:
        raise ApiError(400, f"no image: upload at least one for {command.name}")
    if masks and not command.mask:
        raise ApiError(422, f"{command.name} takes no mask; masks are for inpaint")
    if command.mask and len(masks) != 1:
        raise ApiError(422, "inpaint needs one mask: paint it over the image or upload it (white = fill)")
    inputs = [accept_image(upload, folder / "in", str(index), max_pixels=settings.max_pixels)
              for index, upload in enumerate(images)]
    mask = accept_image(masks[0], folder / "in", "mask", max_pixels=settings.max_pixels) if masks else None
    pipeline = build_pipeline(command, model, values, mask=None if mask is None else str(mask.path))
    work = ImageWork(pipeline, inputs, mask, settings.max_pixels)
    return ServeJob(job_id, command.name, model, folder, work, total=len(inputs))


def _text_job(form: Form, job_id: str, folder: Path, model: str, values: dict[str, Any]) -> ServeJob:
    from imgan.tasks import text2img as task

    if form.files:
        raise ApiError(422, "text2img takes captions, not images")
    captions = task.read_captions(form.fields.get("captions", ""))
    if not captions:
        raise ApiError(400, "no caption: type at least one, one per line")
    if len(captions) > MAX_CAPTIONS:
        raise ApiError(422, f"{len(captions)} captions: at most {MAX_CAPTIONS} per job")
    seed = values["seed"] if values["seed"] is not None else int.from_bytes(os.urandom(4), "big")
    request = task.Request(captions=tuple(captions), model=model, count=values["n"], seed=seed,
                           truncation=values["truncation"], grid=values["grid"])
    try:
        task.check_request(request)
    except UsageError as error:
        raise ApiError(422, str(error).replace("--", "")) from None
    work = TextWork(model, captions, values["n"], seed, values["truncation"], values["grid"])
    return ServeJob(job_id, "text2img", model, folder, work, total=len(captions))


# --------------------------------------------------------------------------------------------
# Running it


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: any free port); UsageError when it cannot be had."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, protocol)
    except OSError as error:
        raise UsageError(f"--host {host}: {error.strerror or error}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as error:
        sock.close()
        raise UsageError(f"--port {port}: cannot listen on {host}:{port} ({error.strerror or error}); "
                         "choose another with --port") from None
    sock.set_inheritable(True)
    return sock


def _server(app: FastAPI) -> Any:
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False))


def serve(settings: ServeSettings, *, ready: Callable[[str], None], open_browser: bool = False) -> None:
    """Run the server in this thread until it is stopped (Ctrl-C); ``ready`` gets the page's address first."""
    settings = checked(settings)
    app = create_app(settings)
    sock = _bind(settings.host, settings.port)
    url = page_url(settings, sock.getsockname()[1])
    server = _server(app)
    ready(url)
    if open_browser:
        import webbrowser

        def open_when_started() -> None:
            while not server.started and not server.should_exit:
                time.sleep(0.05)
            if server.started:
                webbrowser.open(url)

        threading.Thread(target=open_when_started, daemon=True, name="imgan-open").start()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


@dataclass(frozen=True)
class RunningServer:
    """A server started by ``serve_in_thread``: its page address (without token), token and results folder."""

    url: str
    token: str | None
    results: Path
    app: FastAPI


@contextmanager
def serve_in_thread(settings: ServeSettings, *, timeout: float = 30.0) -> Iterator[RunningServer]:
    """Run the real server (uvicorn, lifespan included) in a daemon thread for the block; for tests."""
    settings = checked(settings)
    app = create_app(settings)
    sock = _bind(settings.host, settings.port)
    port = sock.getsockname()[1]
    server = _server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="imgan-serve-http")
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield RunningServer(page_url(settings, port).split("?")[0], settings.token, app.state.results, app)
    finally:
        server.should_exit = True
        thread.join(timeout=timeout)
        sock.close()
