"""Process many images through one or more workers, overlapping decode, compute and encode.

Decoding runs in a reader pool ahead of the workers (a bounded number of pictures in flight),
each worker owns one model on one device, and encoding plus the atomic write run in a writer
pool. A failure is an outcome for that file only; the batch goes on.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgan.errors import ImganError, OutputError
from imgan.io import Picture
from imgan.paths import Source

log = logging.getLogger(__name__)

Reader = Callable[["Job"], Picture]
Worker = Callable[[Picture], "Picture | Result"]
Writer = Callable[["Job", "Picture | Result"], dict[str, Any]]


@dataclass(frozen=True)
class Result:
    """A worker's output with companions: ``extras`` are written beside the target as
    ``<target stem>_<name><target suffix>`` (the edge map of ``sketch2photo --save-sketch``)."""

    picture: Picture
    extras: dict[str, Picture] = field(default_factory=dict)


@dataclass(frozen=True)
class Job:
    """One input and where its result goes (``target`` None: stdout)."""

    source: Source
    target: Path | None
    format: str


@dataclass
class Outcome:
    """What happened to one job: written (with facts about it), skipped, or failed."""

    job: Job
    status: str  # "ok" | "skipped" | "failed"
    error: str | None = None
    details: str | None = None  # traceback, for --debug
    info: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "input": self.job.source.name,
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
    """Yield one outcome per job, in completion order."""
    outcomes: queue.Queue[Outcome] = queue.Queue()
    pending: queue.Queue[tuple[Job, Future[Picture]] | None] = queue.Queue()
    slots = threading.Semaphore(max(1, prefetch) * len(workers))
    readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="imgan-read")
    writers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="imgan-write")

    def failed(job: Job, error: BaseException) -> Outcome:
        return Outcome(job, "failed", describe_error(job, error), traceback.format_exc())

    def feed() -> None:
        for job in jobs:
            slots.acquire()
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
        while (entry := pending.get()) is not None:
            job, picture_future = entry
            started = time.perf_counter()
            try:
                result = process(picture_future.result())
            except Exception as error:  # noqa: BLE001 - reported per file
                slots.release()
                outcomes.put(failed(job, error))
                continue
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
    extras: Sequence[str] = (),
) -> tuple[list[Job], list[Outcome]]:
    """Jobs for every input, and the outcomes already decided (no match, skipped, refused).

    ``suffix`` tags default output names (``photo_monet.jpg``); default ``x{scale}``. ``extras``
    names the companions each job also writes (see ``Result``): their paths are checked too.
    """
    from imgan.errors import UsageError
    from imgan.paths import STDIO, check_target, expand_inputs, output_format, render_output

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
    inputs = {source.path.resolve() for source in sources if source.path is not None}
    claimed: dict[Path, str] = {}
    jobs: list[Job] = []
    for source in sources:
        fmt = output_format(source, options.format)
        target = render_output(source, options.out, ext=fmt, scale=scale, model=model, suffix=suffix)
        job = Job(source, target, fmt)
        if target is None:
            jobs.append(job)
            continue
        try:
            resolved = target.resolve()
            if resolved in claimed:
                raise OutputError(
                    f"{target}: also the output of {claimed[resolved]}; use {{relpath}} or {{ext}} in --out"
                )
            if options.skip_existing and target.exists() and resolved not in inputs:
                decided.append(Outcome(job, "skipped", info={"reason": "output exists"}))
                continue
            check_target(source, target, overwrite=options.overwrite, inputs=inputs)
            for name in extras:
                check_target(source, companion_path(target, name), overwrite=options.overwrite, inputs=inputs)
        except ImganError as error:
            decided.append(Outcome(job, "failed", describe_error(job, error)))
            continue
        claimed[resolved] = source.name
        jobs.append(job)
    return jobs, decided


def file_reader(*, max_pixels: int | None, stdin: Callable[[], bytes]) -> Reader:
    """Read a job's input from its file, or from stdin."""
    from imgan.io import decode_picture, read_picture

    def read(job: Job) -> Picture:
        if job.source.path is None:
            return decode_picture(stdin(), name=job.source.name, max_pixels=max_pixels)
        return read_picture(job.source.path, max_pixels=max_pixels)

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
