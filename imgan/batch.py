"""Run one image pipeline over many inputs: plan the jobs, read, process and write them.

A job is one main image, its named companions (a mask, a reference image) and where its
result goes. Decoding runs in a reader pool ahead of the workers (a bounded number of jobs in
flight), each worker owns one model on one device, and encoding plus the atomic write run in a
writer pool. A failure is an outcome for that job only; the batch goes on. Nothing here prints:
the caller gets one ``Outcome`` per job and reports it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgan.errors import ImganError, InputError, OutputError, UsageError
from imgan.io import Picture
from imgan.paths import (
    STDIO,
    Source,
    check_out_template,
    check_target,
    expand_inputs,
    output_extension,
    output_format,
    render_output,
    resolve_companion,
    resolved,
)

if TYPE_CHECKING:
    from imgan.engine import Engine

log = logging.getLogger(__name__)

Reader = Callable[["Job"], "Inputs"]
Worker = Callable[[Picture, Mapping[str, Picture]], "Picture | Result"]
"""A picture and its companions (by name) in, the result out."""
Writer = Callable[["Job", "Picture | Result"], dict[str, Any]]
Progress = Callable[[int, int | None], None]
FileTileProgress = Callable[[str, int, int], None]
"""Told (input name, tiles done, tiles in all) as a worker's engine runs the model on that input."""


@dataclass(frozen=True)
class Result:
    """A worker's output with companions: ``extras`` are written beside the target as
    ``<target stem>_<name><target suffix>`` (the edge map of ``sketch2photo --save-sketch``)."""

    picture: Picture
    extras: dict[str, Picture] = field(default_factory=dict)


@dataclass(frozen=True)
class Job:
    """One input with its companions (name -> file) and where its result goes (``target`` None: stdout)."""

    source: Source
    target: Path | None
    format: str
    companions: Mapping[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class Inputs:
    """What a reader decoded for one job."""

    picture: Picture
    companions: Mapping[str, Picture] = field(default_factory=dict)


@dataclass
class Outcome:
    """What happened to one job: written (with facts about it), skipped, or failed."""

    job: Job
    status: str  # "ok" | "skipped" | "failed" | "planned" (--dry-run)
    error: str | None = None
    details: str | None = None  # traceback, for --debug
    info: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "input": self.job.source.name,
            **{name: str(path) for name, path in self.job.companions.items()},
            "output": "-" if self.job.target is None else str(self.job.target),
            "status": self.status,
        }
        if self.error:
            record["error"] = self.error
        record.update(self.info)
        return record


def describe_error(job: Job, error: BaseException) -> str:
    """One line naming the file: domain errors as they are, anything else with its type."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, OutputError):
        return f"{job.source.name} -> {text}"
    if isinstance(error, ImganError):
        return text if text.startswith(job.source.name) else f"{job.source.name}: {text}"
    return f"{job.source.name}: {type(error).__name__}: {text}"


def run_jobs(
    jobs: Sequence[Job],
    workers: Sequence[Worker],
    *,
    read: Reader,
    write: Writer,
    prefetch: int = 2,
) -> Iterator[Outcome]:
    """Yield one outcome per job, in completion order.

    When the consumer stops early (Ctrl-C raises in it, or it closes the generator), no
    job is read, processed or written any more: writes already under way finish (each is
    atomic), a worker in the middle of a picture drops its result.
    """
    stop = threading.Event()
    outcomes: queue.Queue[Outcome] = queue.Queue()
    pending: queue.Queue[tuple[Job, Future[Inputs]] | None] = queue.Queue()
    slots = threading.Semaphore(max(1, prefetch) * len(workers))
    readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="imgan-read")
    writers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="imgan-write")

    def failed(job: Job, error: BaseException) -> Outcome:
        return Outcome(job, "failed", describe_error(job, error), traceback.format_exc())

    def feed() -> None:
        for job in jobs:
            slots.acquire()
            if stop.is_set():
                break
            pending.put((job, readers.submit(read, job)))
        for _ in workers:
            pending.put(None)

    def written(job: Job, started: float, future: Future[dict[str, Any]]) -> None:
        slots.release()
        error = future.exception()
        if error is not None:
            try:
                raise error
            except BaseException as raised:  # noqa: BLE001 - reported per file
                outcomes.put(failed(job, raised))
            return
        info = dict(future.result())
        info["seconds"] = round(time.perf_counter() - started, 3)
        outcomes.put(Outcome(job, "ok", info=info))

    def work(process: Worker) -> None:
        while (entry := pending.get()) is not None and not stop.is_set():
            job, inputs_future = entry
            started = time.perf_counter()
            try:
                inputs = inputs_future.result()
                result = process(inputs.picture, inputs.companions)
            except Exception as error:  # noqa: BLE001 - reported per file
                slots.release()
                outcomes.put(failed(job, error))
                continue
            if stop.is_set():
                break
            future = writers.submit(write, job, result)
            future.add_done_callback(lambda f, job=job, started=started: written(job, started, f))

    threads = [threading.Thread(target=feed, daemon=True, name="imgan-feed")]
    threads += [
        threading.Thread(target=work, args=(process,), daemon=True, name=f"imgan-work-{index}")
        for index, process in enumerate(workers)
    ]
    for thread in threads:
        thread.start()
    try:
        for _ in range(len(jobs)):
            yield outcomes.get()
    finally:
        stop.set()
        slots.release(len(workers) * max(1, prefetch))  # a feeder waiting for a slot sees the stop
        readers.shutdown(wait=False, cancel_futures=True)
        writers.shutdown(wait=True)


@dataclass(frozen=True)
class OutputOptions:
    """Where and how results are written (shared by every image command)."""

    out: str | None = None
    format: str = "same"
    quality: int | None = None
    skip_existing: bool = False
    overwrite: bool = False


def plan_jobs(
    arguments: list[str], options: OutputOptions, *, scale: float, model: str, suffix: str | None = None,
    extras: Sequence[str] = (), companions: Mapping[str, str] = {},  # noqa: B006 - never mutated
) -> tuple[list[Job], list[Outcome]]:
    """Jobs for every input, and the outcomes already decided (no match, skipped, refused).

    ``suffix`` tags default output names (``photo_monet.jpg``); default ``x{scale}``. ``extras``
    names the companions each job also writes (see ``Result``): their paths are checked too.
    ``companions`` maps each named extra input to what the user gave (see
    ``paths.resolve_companion``). Found in a folder or by a glob, a file that is another
    input's output or companion is not an input itself: re-running on a folder does not
    process the results of the last run, and masks beside their photos are not photos.
    """
    sources, unmatched = expand_inputs(arguments)
    decided = [
        Outcome(Job(source, None, ""), "failed", f"{source.name}: matches no image file")
        for source in unmatched
    ]
    if sum(source.is_stdin for source in sources) > 1:
        raise UsageError("'-' (stdin) can be given only once")
    if options.out == STDIO and len(sources) > 1:
        raise UsageError("--out - (stdout) takes exactly one input")
    if extras and (options.out == STDIO or any(source.is_stdin for source in sources) and options.out is None):
        raise UsageError(f"the {' and '.join(extras)} cannot go to stdout too; give --out a file or folder")

    planned: list[tuple[Source, Job | Outcome]] = []
    for source in sources:
        fmt = output_format(source, options.format)
        target = render_output(source, options.out, ext=output_extension(source, fmt), scale=scale, model=model,
                               suffix=suffix)
        try:
            found = {name: resolve_companion(given, source, name=name) for name, given in companions.items()}
        except ImganError as error:
            job = Job(source, target, fmt)
            planned.append((source, Outcome(job, "failed", describe_error(job, error))))
            continue
        planned.append((source, Job(source, target, fmt, found)))

    producer: dict[Path, Source] = {}  # what each job writes or reads besides its input
    for source, job in planned:
        if isinstance(job, Job):
            written = () if job.target is None else (job.target, *(companion_path(job.target, n) for n in extras))
            producer.update((resolved(path), source) for path in (*written, *job.companions.values()))
    kept: list[tuple[Source, Job | Outcome]] = []
    for source, job in planned:
        other = None if source.root is None or source.path is None else producer.get(resolved(source.path))
        if other is not None and other != source:
            log.debug("%s: the output or companion of %s; not an input itself", source.name, other.name)
        else:
            kept.append((source, job))
    inputs = {resolved(source.path) for source, _ in kept if source.path is not None}
    inputs.update(resolved(path) for _, job in kept if isinstance(job, Job) for path in job.companions.values())
    claimed: dict[Path, str] = {}
    jobs: list[Job] = []
    for source, job in kept:
        if isinstance(job, Outcome):
            decided.append(job)
            continue
        if job.target is None:
            jobs.append(job)
            continue
        try:
            key = resolved(job.target)
            if key in claimed:
                raise OutputError(
                    f"{job.target}: also the output of {claimed[key]}; use {{relpath}} or {{ext}} in --out"
                )
            if options.skip_existing and job.target.exists() and key not in inputs:
                decided.append(Outcome(job, "skipped", info={"reason": "output exists"}))
                continue
            check_target(source, job.target, overwrite=options.overwrite, inputs=inputs)
            for name in extras:
                check_target(source, companion_path(job.target, name), overwrite=options.overwrite, inputs=inputs)
        except ImganError as error:
            decided.append(Outcome(job, "failed", describe_error(job, error)))
            continue
        claimed[key] = source.name
        jobs.append(job)
    return jobs, decided


def file_reader(*, max_pixels: int | None, stdin: Callable[[], bytes], levels: bool = False) -> Reader:
    """Read a job's input from its file (or stdin) and its companions from theirs; ``levels`` keeps
    the input (not the companions) as integer levels (see ``io.read_picture``)."""
    from imgan.io import decode_picture, read_picture

    def read(job: Job) -> Inputs:
        if job.source.path is None:
            picture = decode_picture(stdin(), name=job.source.name, max_pixels=max_pixels, levels=levels)
        else:
            picture = read_picture(job.source.path, max_pixels=max_pixels, levels=levels)
        companions = {}
        for name, path in job.companions.items():
            try:
                companions[name] = read_picture(path, max_pixels=max_pixels)
            except InputError as error:
                raise InputError(f"{job.source.name}: {name} {error}") from None
        return Inputs(picture, companions)

    return read


def companion_path(target: Path, name: str) -> Path:
    """Where the extra output ``name`` of a job writing ``target`` goes."""
    return target.with_name(f"{target.stem}_{name}{target.suffix}")


def file_writer(*, quality: int | None, stdout: Callable[[bytes], None]) -> Writer:
    """Write a job's result atomically to its target, or encoded to stdout; then its extras."""
    from imgan.io import encode_picture, write_picture

    def write(job: Job, result: Picture | Result) -> dict[str, Any]:
        picture, extras = (result.picture, result.extras) if isinstance(result, Result) else (result, {})
        info: dict[str, Any] = {}
        if job.target is None:
            stdout(encode_picture(picture, format=job.format, quality=quality))
        else:  # plan_jobs checked the extras' paths as it checked the target
            write_picture(picture, job.target, format=job.format, quality=quality)
            for name, extra in extras.items():
                path = companion_path(job.target, name)
                write_picture(extra, path, format=job.format, quality=quality)
                info[name] = str(path)
        height, width = picture.rgb.shape[-2:]
        return {"width": int(width), "height": int(height), **info}

    return write


@dataclass(frozen=True)
class ImageOptions:
    """The options every image command shares, as given on its command line."""

    output: OutputOptions = field(default_factory=OutputOptions)
    max_pixels: int = 0
    device: str = "auto"
    precision: str = "auto"
    tile: str = "auto"
    batch_size: int | None = None
    as_json: bool = False
    dry_run: bool = False


@dataclass(frozen=True)
class Pipeline:
    """What one image command runs: its model, the per-engine worker and how outputs are named.

    ``worker(engine)`` gives the function that processes one job on that engine (one engine per
    ``--device``); ``suffix`` tags default output names (default ``x{scale}``); ``extras`` names
    the companion outputs a worker may return; ``companions`` the named extra inputs (name ->
    what the user gave); ``tiling`` False runs every picture whole (the task feeds fixed-size
    crops); ``prepare`` adjusts the loaded model before engines are made; ``levels`` hands the
    worker each input as integer levels, not float (see ``io.read_picture``), for a worker that
    only feeds it to ``Engine.run_blocks`` and ``tiling.resized_blocks``.
    """

    task: str
    model: str
    worker: Callable[[Engine], Worker]
    suffix: str | None = None
    scale: float | None = None
    extras: tuple[str, ...] = ()
    companions: Mapping[str, str] = field(default_factory=dict)
    denoise: float | None = None
    tiling: bool = True
    prepare: Callable[[Any], None] | None = None
    levels: bool = False


@dataclass
class Batch:
    """A planned run: ``total`` jobs, whose outcomes ``outcomes`` yields as they complete."""

    total: int
    outcomes: Iterator[Outcome]


def parse_tile(tile: str) -> int | None:
    """``--tile``: None for auto, 0 for whole images, else a size of at least 32."""
    if tile == "auto":
        return None
    try:
        size = int(tile)
    except ValueError:
        raise UsageError(f"--tile {tile!r}: use auto, 0 or a size in pixels") from None
    if size < 0 or 0 < size < 32:
        raise UsageError(f"--tile {tile}: use 0 (no tiling) or at least 32")
    return size


def process_images(
    arguments: list[str],
    options: ImageOptions,
    pipeline: Pipeline,
    *,
    stdin: Callable[[], bytes],
    stdout: Callable[[bytes], None],
    stdout_is_terminal: bool,
    download_progress: Progress | None = None,
    tile_progress: FileTileProgress | None = None,
) -> Batch:
    """Load the pipeline's model, plan every input's job, and start processing them.

    With ``options.dry_run`` nothing is loaded, read or written: each job's outcome is "planned".
    ``tile_progress`` hears of the tiles of every model run, with the name of the input it is for.
    """
    from imgan.engine import Engine, parse_devices
    from imgan.models import load_model, model_identity

    output = options.output
    if options.as_json and output.out == STDIO:
        raise UsageError("--json and --out - both want stdout; choose one")
    if options.as_json and output.out is None and STDIO in arguments:
        raise UsageError("--json and the image read from stdin both want stdout; give --out a file or folder")
    check_out_template(output.out)
    tile_size = parse_tile(options.tile) if pipeline.tiling else 0
    devices = parse_devices(options.device)
    if options.dry_run:
        descriptor = None
        name, native = model_identity(pipeline.model, task=pipeline.task)
    else:
        descriptor = load_model(pipeline.model, task=pipeline.task, denoise=pipeline.denoise,
                                progress=download_progress)
        if pipeline.prepare is not None:
            pipeline.prepare(descriptor)
        name, native = descriptor.name, descriptor.scale
    scale = pipeline.scale if pipeline.scale is not None else float(native)
    jobs, decided = plan_jobs(arguments, output, scale=scale, model=name, suffix=pipeline.suffix,
                              extras=pipeline.extras, companions=pipeline.companions)
    if descriptor is None:
        return Batch(len(decided) + len(jobs), _chain(decided, iter([Outcome(job, "planned") for job in jobs])))
    if not options.as_json and any(job.target is None for job in jobs) and stdout_is_terminal:
        raise UsageError("refusing to write image bytes to a terminal; redirect stdout or use --out")
    first = Engine(descriptor, devices[0], precision=options.precision, tile_size=tile_size,
                   batch_size=options.batch_size)
    engines = [first] + [first.replica(device) for device in devices[1:]]
    workers = [pipeline.worker(engine) for engine in engines]
    if tile_progress is not None:
        workers = [_telling_tiles(worker, engine, tile_progress)
                   for worker, engine in zip(workers, engines, strict=True)]
    outcomes = run_jobs(
        jobs, workers,
        read=file_reader(max_pixels=options.max_pixels or None, stdin=stdin, levels=pipeline.levels),
        write=file_writer(quality=output.quality, stdout=stdout),
    )
    return Batch(len(decided) + len(jobs), _chain(decided, outcomes))


def _telling_tiles(worker: Worker, engine: Engine, tile_progress: FileTileProgress) -> Worker:
    """``worker``, with its engine's tile progress told to ``tile_progress`` under the picture's name."""

    def work(picture: Picture, companions: Mapping[str, Picture]) -> Picture | Result:
        engine.progress = lambda done, total: tile_progress(picture.name, done, total)
        try:
            return worker(picture, companions)
        finally:
            engine.progress = None

    return work


def _chain(first: Sequence[Outcome], rest: Iterator[Outcome]) -> Iterator[Outcome]:
    yield from first
    yield from rest
