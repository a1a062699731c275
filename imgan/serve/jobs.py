"""The job queue of ``imgan serve``: one worker thread per device, jobs run one at a time per device, in order.

A job owns a random id and its own folder (``<results>/<id>``: ``in/`` for the uploads under
generated names, ``out/`` for the results), so concurrent requests cannot see each other's files.
Image jobs run the command line's pipeline: ``batch.run_jobs`` with the command's worker on an
engine, reading with ``io.decode_picture`` and writing with ``batch.file_writer``. text2img jobs
run ``tasks.text2img.run`` caption by caption. Loaded models stay cached per device between jobs
(least recently used dropped first). Results fill in as files finish; messages name the client's
file names, never a server path.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import shutil
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgan.errors import ImganError, PixelLimitError
from imgan.serve.uploads import ApiError, Upload

if TYPE_CHECKING:
    import torch

    from imgan.batch import Inputs, Job, Pipeline
    from imgan.engine import Engine
    from imgan.tasks.text2img import TextModel

log = logging.getLogger(__name__)

RESULT_STATES = ("done", "failed")


@dataclass
class ImageInput:
    """One accepted upload: the client's name, the saved file (named by its content's format), its PNG view."""

    name: str
    path: Path
    view: Path
    width: int
    height: int


@dataclass(frozen=True)
class ImageWork:
    """What an image job runs: the command's pipeline over its inputs (and the mask every input shares)."""

    pipeline: Pipeline
    inputs: Sequence[ImageInput]
    mask: ImageInput | None = None
    max_pixels: int = 0


@dataclass(frozen=True)
class TextWork:
    """What a text2img job runs: ``count`` pictures for each caption, picture k from ``seed + k``."""

    model: str
    captions: Sequence[str]
    count: int
    seed: int
    truncation: float | None
    grid: bool


@dataclass
class FileResult:
    """One finished output (or one input that failed)."""

    index: int
    name: str
    state: str
    download_name: str
    error: str | None = None
    input: ImageInput | None = None
    output: Path | None = None
    width: int = 0
    height: int = 0
    caption: str | None = None
    oov: list[str] = field(default_factory=list)
    seed: int | None = None


@dataclass
class ServeJob:
    """A submitted job and what is known of it so far."""

    id: str
    command: str
    model: str
    folder: Path
    work: ImageWork | TextWork
    total: int
    state: str = "queued"
    error: str | None = None
    done: int = 0
    tiles: tuple[int, int] | None = None
    """Tiles done and in all of the picture under way, for a job of one picture (where the engine tells them)."""
    results: list[FileResult] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    finished: threading.Event = field(default_factory=threading.Event, repr=False)
    """Set once the job is done or failed."""

    def add(self, result: FileResult, *, advance: int = 1) -> None:
        """Publish a result; ``advance`` is how far it moves the progress (text2img: a caption's last picture)."""
        with self.lock:
            self.results.append(result)
            self.done = min(self.total, self.done + advance)

    def advance(self) -> None:
        with self.lock:
            self.done = min(self.total, self.done + 1)

    def tile_progress(self, done: int, total: int) -> None:
        with self.lock:
            self.tiles = (done, total)

    def result(self, index: int) -> FileResult | None:
        with self.lock:
            return next((result for result in self.results if result.index == index), None)

    def as_json(self, position: int) -> dict[str, Any]:
        with self.lock:
            results = [self._result_json(result) for result in self.results]
            return {"id": self.id, "command": self.command, "model": self.model, "state": self.state,
                    "position": position, "progress": {
                        "done": self.done, "total": self.total,
                        "tiles": None if self.tiles is None else {"done": self.tiles[0], "total": self.tiles[1]}},
                    "error": self.error, "results": results}

    def _result_json(self, result: FileResult) -> dict[str, Any]:
        files = f"/api/jobs/{self.id}/files/{result.index}"
        return {
            "index": result.index, "name": result.name, "state": result.state, "error": result.error,
            "input": None if result.input is None else f"{files}/input",
            "output": None if result.output is None else f"{files}/output",
            "width": result.width, "height": result.height,
            "input_width": None if result.input is None else result.input.width,
            "input_height": None if result.input is None else result.input.height,
            "download_name": result.download_name, "caption": result.caption, "oov": list(result.oov),
            "seed": result.seed,
        }


def new_job_id() -> str:
    """A random id nobody can guess (128 bits), safe in a URL and as a folder name."""
    return secrets.token_hex(16)


def accept_image(upload: Upload, folder: Path, stem: str, *, max_pixels: int) -> ImageInput:
    """Check an upload is an image within the pixel limit, file it as ``<stem>.<format>`` and draw its PNG view.

    The pixel count is read from the header before any pixel is decoded (``io.decode_picture``).
    ApiError 413 over the limit, 415 for anything that is not a readable image.
    """
    from imgan.io import decode_picture, write_picture

    try:
        picture = decode_picture(upload.path.read_bytes(), name=upload.filename, max_pixels=max_pixels or None)
    except PixelLimitError as error:
        raise ApiError(413, str(error).replace("pass --max-pixels 0 to allow it", "start imgan serve with a "
                                               "higher --max-pixels to allow it")) from None
    except ImganError as error:
        raise ApiError(415, str(error)) from None
    path = folder / f"{stem}.{picture.source_format}"
    upload.path.replace(path)
    view = folder / f"{stem}.view.png"
    write_picture(dataclasses.replace(picture, bit_depth=8, exif=None), view, format="png")
    height, width = picture.rgb.shape[-2:]
    return ImageInput(upload.filename, path, view, int(width), int(height))


class Engines:
    """The models loaded on one device, kept between jobs (the ``size`` most recently used)."""

    def __init__(self, device: torch.device, *, precision: str, size: int) -> None:
        self.device = device
        self.precision = precision
        self.size = max(1, size)
        self._loaded: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

    def _get(self, key: tuple[Any, ...], load: Callable[[], Any]) -> Any:
        if key in self._loaded:
            self._loaded.move_to_end(key)
            return self._loaded[key]
        while len(self._loaded) >= self.size:
            self._loaded.popitem(last=False)
        value = self._loaded[key] = load()
        return value

    def engine(self, pipeline: Pipeline) -> Engine:
        """The engine for ``pipeline``'s model, loaded on first use; ``pipeline.prepare`` applied to it."""
        from imgan.engine import Engine
        from imgan.models import load_model

        def load() -> Engine:
            descriptor = load_model(pipeline.model, task=pipeline.task, denoise=pipeline.denoise)
            return Engine(descriptor, self.device, precision=self.precision, tile_size=None if pipeline.tiling else 0)

        engine = self._get(("image", pipeline.task, pipeline.model, pipeline.denoise, pipeline.tiling), load)
        if pipeline.prepare is not None:
            pipeline.prepare(engine.descriptor)
        return engine

    def text_model(self, name: str) -> TextModel:
        """The text2img model ``name``, loaded on first use."""
        from imgan.tasks.text2img import load_text_model

        return self._get(("text2img", name), lambda: load_text_model(name).to(self.device))


class JobQueue:
    """Jobs in the order they came, run by one thread per device."""

    def __init__(self, devices: Sequence[torch.device], *, precision: str, cached_engines: int) -> None:
        self._jobs: dict[str, ServeJob] = {}
        self._waiting: deque[ServeJob] = deque()
        self._running: set[str] = set()
        self._condition = threading.Condition()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._serve, args=(Engines(device, precision=precision, size=cached_engines),),
                             daemon=True, name=f"imgan-serve-{device}")
            for device in devices
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: ServeJob) -> int:
        """Queue ``job``; returns how many jobs are ahead of it."""
        with self._condition:
            if self._closed:
                raise ApiError(503, "the server is shutting down")
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._condition.notify()
            return self._position(job)

    def find(self, job_id: str) -> ServeJob | None:
        with self._condition:
            return self._jobs.get(job_id)

    def position(self, job: ServeJob) -> int:
        """Jobs ahead of ``job``: those running and those queued before it (0 once it runs)."""
        with self._condition:
            return self._position(job)

    def _position(self, job: ServeJob) -> int:
        if job.state != "queued":
            return 0
        return len(self._running) + self._waiting.index(job)

    def close(self, *, timeout: float = 10.0) -> None:
        """Take no more jobs, stop after the pictures under way, and wait for the threads."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        for thread in self._threads:
            thread.join(timeout=timeout)

    @property
    def closed(self) -> bool:
        return self._closed

    def _serve(self, engines: Engines) -> None:
        while True:
            with self._condition:
                while not self._waiting and not self._closed:
                    self._condition.wait()
                if self._closed:
                    return
                job = self._waiting.popleft()
                self._running.add(job.id)
                job.state = "running"
            try:
                if isinstance(job.work, TextWork):
                    _run_text(job, job.work, engines, stop=lambda: self._closed)
                else:
                    _run_images(job, job.work, engines, stop=lambda: self._closed)
            except ImganError as error:
                job.error = _public(str(error), job.folder)
            except Exception as error:  # noqa: BLE001 - one job fails, the server goes on
                log.exception("job %s failed", job.id)
                job.error = _public(f"{type(error).__name__}: {error}", job.folder)
            finally:
                with self._condition:
                    self._running.discard(job.id)
                    _finish(job)


def _finish(job: ServeJob) -> None:
    with job.lock:
        if any(result.state == "done" for result in job.results):
            job.state = "done"
        else:
            job.state = "failed"
            if job.error is None:
                job.error = next((result.error for result in job.results if result.error), "nothing was made")
    job.finished.set()


def _public(message: str, folder: Path, *, path: Path | None = None, name: str | None = None) -> str:
    """``message`` on one line with server paths taken out: the input's path becomes its client name."""
    text = message.strip().splitlines()[0] if message.strip() else "failed"
    if path is not None and name is not None:
        text = text.removeprefix(f"{path}: ")
        text = text.replace(str(path), name)
        if not text.startswith(name):
            text = f"{name}: {text}"
    return text.replace(f"{folder}{os.sep}", "").replace(str(folder), "")


def _refuse_stdout(_: bytes) -> None:
    raise RuntimeError("imgan serve writes every result to a file")


def _run_images(job: ServeJob, work: ImageWork, engines: Engines, *, stop: Callable[[], bool]) -> None:
    from imgan.batch import Inputs, Job, file_writer, run_jobs
    from imgan.paths import Source, output_extension, output_format, render_output

    engine = engines.engine(work.pipeline)
    scale = work.pipeline.scale if work.pipeline.scale is not None else float(engine.descriptor.scale)
    outputs = job.folder / "out"
    outputs.mkdir(exist_ok=True)
    by_path: dict[Path, tuple[int, ImageInput]] = {}
    jobs: list[Job] = []
    for index, item in enumerate(work.inputs):
        source = Source(item.path)
        fmt = output_format(source, "same")
        companions = {} if work.mask is None else {"mask": work.mask.path}
        jobs.append(Job(source, outputs / f"{index}.{output_extension(source, fmt)}", fmt, companions))
        by_path[item.path] = (index, item)

    def read(job_: Job) -> Inputs:
        from imgan.io import decode_picture

        assert job_.source.path is not None
        item = by_path[job_.source.path][1]
        picture = decode_picture(item.path.read_bytes(), name=item.name, max_pixels=work.max_pixels or None)
        companions = {}
        if work.mask is not None:
            companions["mask"] = decode_picture(work.mask.path.read_bytes(), name=work.mask.name,
                                                max_pixels=work.max_pixels or None)
        return Inputs(picture, companions)

    outcomes = run_jobs(jobs, [work.pipeline.worker(engine)], read=read,
                        write=file_writer(quality=None, stdout=_refuse_stdout))
    told = len(jobs) == 1 and hasattr(engine, "progress")  # engines that tell their tiles (imgan.engine)
    if told:
        engine.progress = job.tile_progress
    try:
        for outcome in outcomes:
            assert outcome.job.source.path is not None and outcome.job.target is not None
            index, item = by_path[outcome.job.source.path]
            ext = outcome.job.target.suffix.lstrip(".")
            download = render_output(Source(Path(item.name)), "{stem}_{suffix}.{ext}", ext=ext, scale=scale,
                                     model=engine.descriptor.name, suffix=work.pipeline.suffix)
            result = FileResult(index, item.name, "done" if outcome.status == "ok" else "failed",
                                download_name=download.name if download is not None else f"result.{ext}", input=item)
            if outcome.status == "ok":
                result.output = outcome.job.target
                result.width, result.height = outcome.info["width"], outcome.info["height"]
            else:
                result.error = _public(outcome.error or "failed", job.folder, path=item.path, name=item.name)
            job.add(result)
            if stop():
                break
    finally:
        outcomes.close()
        if told:
            engine.progress = None


def _run_text(job: ServeJob, work: TextWork, engines: Engines, *, stop: Callable[[], bool]) -> None:
    from imgan.io import read_picture
    from imgan.tasks import text2img as task

    model = engines.text_model(work.model)
    outputs = job.folder / "out"
    outputs.mkdir(exist_ok=True)
    index = 0
    for number, caption in enumerate(work.captions):
        if stop():
            break
        oov = [] if model.vocabulary is None else list(model.vocabulary.encode(caption).unknown)
        request = task.Request(captions=(caption,), model=work.model, count=work.count, seed=work.seed,
                               truncation=work.truncation, grid=work.grid, out=str(outputs / f"{number}-{{n}}.png"),
                               device=str(engines.device), precision=engines.precision)
        seen: set[str] = set()
        for record in task.run(request, stdout=_refuse_stdout, loaded=model):
            if isinstance(record, ImganError):
                message = _public(str(record), job.folder).replace("caption 1 ", f"caption {number + 1} ", 1)
                job.add(FileResult(index, f"caption {number + 1}", "failed", download_name="", error=message,
                                   caption=caption, oov=oov), advance=0)
                index += 1
                continue
            if record["file"] in seen:  # a contact sheet has one record per picture in it
                continue
            seen.add(record["file"])
            path = Path(record["file"])
            height, width = read_picture(path).rgb.shape[-2:]
            stem = task.slug(caption)
            download = f"{stem}.png" if work.grid else f"{stem}_{record['seed']}.png"
            job.add(FileResult(index, download, "done", download_name=download, output=path, width=int(width),
                               height=int(height), caption=caption, oov=oov, seed=int(record["seed"])), advance=0)
            index += 1
        job.advance()


def remove_folder(folder: Path) -> None:
    """Remove a job's (or the results') folder; what cannot be removed is logged, not raised."""
    shutil.rmtree(folder, ignore_errors=True)
    if folder.exists():
        log.warning("could not remove all of %s", folder)
