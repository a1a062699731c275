"""Rich consoles: stdout carries results only; progress, logs and errors go to stderr."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape

from imgan.errors import ImganError, UsageError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID
    from rich.table import Table

    from imgan.batch import Outcome
    from imgan.tasks.evaluate import EvalRow, Scored

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)

_LEVEL_STYLES = {logging.WARNING: "yellow", logging.ERROR: "red", logging.CRITICAL: "red"}


class _ConsoleHandler(logging.Handler):
    """One line per record on stderr: 'warning: ...' in colour, info as plain text."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = escape(record.getMessage())
            style = _LEVEL_STYLES.get(record.levelno)
            if style:
                message = f"[{style}]{record.levelname.lower()}:[/] {message}"
            elif record.levelno < logging.INFO:
                message = f"[dim]{record.name}: {message}[/]"
            err.print(message, markup=True, highlight=False)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def setup_logging(*, quiet: bool = False, debug: bool = False) -> None:
    """Route library logging to stderr; quiet keeps warnings and errors only."""
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    root = logging.getLogger("imgan")
    root.handlers[:] = [_ConsoleHandler()]
    root.setLevel(level)
    root.propagate = False
    warnings.showwarning = _warning_line


def _warning_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """A library's warning (Pillow's "Corrupt EXIF data") as one 'warning:' line, not Python's two."""
    text = str(message).strip().splitlines()
    logging.getLogger("imgan.warnings").warning("%s", text[0] if text else category.__name__)


@contextmanager
def reporting(*, debug: bool) -> Iterator[None]:
    """Turn domain errors into one line on stderr and an exit code (tracebacks with --debug)."""
    try:
        yield
    except ImganError as error:
        if debug:
            err.print_exception()
        err.print(f"[bold red]error:[/] {escape(str(error))}", markup=True, highlight=False)
        raise typer.Exit(EXIT_USAGE if isinstance(error, UsageError) else EXIT_FAILED) from None
    except KeyboardInterrupt as interrupt:
        err.print("interrupted")
        raise typer.Exit(EXIT_TERMINATED if isinstance(interrupt, Terminated) else EXIT_INTERRUPTED) from None


@contextmanager
def download_progress(*, quiet: bool) -> Iterator[Callable[[int, int | None], None] | None]:
    """A byte progress bar on stderr for weight downloads (nothing when quiet or not a terminal)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    if quiet or not err.is_terminal:
        yield None
        return
    progress = Progress(TextColumn("downloading weights"), BarColumn(), DownloadColumn(),
                        TransferSpeedColumn(), console=err, transient=True)
    task = progress.add_task("download", total=None)

    def update(done: int, total: int | None) -> None:
        if not progress.live.is_started:  # shown from the first byte: a cached model shows nothing
            progress.start()
        progress.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        progress.stop()


class TileBars:
    """A bar of tiles done for each file whose model run has taken longer than ``delay`` seconds.

    Called (file, tiles done, tiles in all) from worker threads (see ``batch.process_images``);
    draws on the progress display ``report_outcomes`` attaches, and nowhere before.
    """

    def __init__(self, *, delay: float = 1.5, clock: Callable[[], float] = time.monotonic) -> None:
        self.delay = delay
        self._clock = clock
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._started: dict[str, float] = {}
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, name: str, done: int, total: int) -> None:
        with self._lock:
            now = self._clock()
            started = self._started.setdefault(name, now)
            if self._progress is None:
                return
            task = self._tasks.get(name)
            if task is not None:
                self._progress.update(task, completed=done, total=total)
            elif now - started >= self.delay:
                self._tasks[name] = self._progress.add_task(f"{escape(name)}: tiles", completed=done, total=total)
                self._progress.refresh()

    def attach(self, progress: Progress | None) -> None:
        """Draw from now on on ``progress`` (None: nowhere)."""
        with self._lock:
            self._progress = progress

    def finish(self, name: str) -> None:
        """``name`` is done: its bar goes."""
        with self._lock:
            self._started.pop(name, None)
            task = self._tasks.pop(name, None)
            if task is not None and self._progress is not None:
                self._progress.remove_task(task)


def tile_bars(*, quiet: bool, as_json: bool) -> TileBars | None:
    """Tile bars for a long single file: on a terminal only, and not with --quiet or --json."""
    return None if quiet or as_json or not err.is_terminal else TileBars()


def report_outcomes(outcomes: Iterable[Outcome], *, total: int, as_json: bool, quiet: bool, debug: bool,
                    tiles: TileBars | None = None) -> int:
    """Print each outcome (results on stdout, failures on stderr), a summary, and the exit code.

    ``tiles`` shows tile bars on the same display as the files bar while files are processed.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    counts = {"ok": 0, "skipped": 0, "failed": 0, "planned": 0}
    show_bar = not quiet and err.is_terminal and total > 1
    show_tiles = tiles is not None and not quiet and not as_json and err.is_terminal
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True,
                  disable=not (show_bar or show_tiles)) as progress:
        task = progress.add_task("processing", total=total, visible=show_bar)
        if tiles is not None and show_tiles:
            tiles.attach(progress)
        try:
            for outcome in outcomes:
                counts[outcome.status] += 1
                progress.advance(task)
                if tiles is not None:
                    tiles.finish(outcome.job.source.name)
                _report_outcome(outcome, as_json=as_json, quiet=quiet, debug=debug)
        finally:
            if tiles is not None:
                tiles.attach(None)
    if not quiet and total > 1:
        done = f"{counts['planned']} planned" if counts["planned"] else f"{counts['ok']} done"
        err.print(f"{done}, {counts['skipped']} skipped, {counts['failed']} failed", markup=False)
    return EXIT_FAILED if counts["failed"] else EXIT_OK


def _report_outcome(outcome: Outcome, *, as_json: bool, quiet: bool, debug: bool) -> None:
    """One outcome: its output path or JSON record on stdout, a failure or a skip on stderr."""
    if as_json:
        print_json(outcome.as_json())
    elif outcome.status == "ok" and outcome.job.target is not None:
        out.print(str(outcome.job.target), markup=False)
    elif outcome.status == "planned":
        out.print(f"{outcome.job.source.name} -> {outcome.job.target or '-'}", markup=False)
    if outcome.status == "failed":
        if debug and outcome.details:
            err.print(outcome.details, markup=False)
        failure(str(outcome.error))
    elif outcome.status == "skipped" and not quiet and not as_json:
        err.print(f"skipped: {outcome.job.source.name} (output exists)", markup=False)


def report_records(results: Iterable[Mapping[str, Any] | ImganError], *, as_json: bool, quiet: bool,
                   key: str = "file") -> int:
    """Print records (their ``key`` once each, or JSON lines) on stdout and failures on stderr; the exit code."""
    shown: set[str] = set()
    done = failed = 0
    for result in results:
        if isinstance(result, ImganError):
            failed += 1
            failure(str(result))
            continue
        done += 1
        if as_json:
            print_json(result)
        elif result[key] not in shown and result[key] != "<stdout>":
            shown.add(result[key])
            out.print(str(result[key]), markup=False)
    if not quiet and failed:
        err.print(f"{done} done, {failed} failed", markup=False)
    return EXIT_FAILED if failed else EXIT_OK


def report_distances(result: Mapping[str, Any], *, as_json: bool) -> int:
    """FID/KID of ``imgan eval --generated``: one JSON object, or lines of 'name  value' on stdout."""
    if as_json:
        print_json(result)
        return EXIT_OK
    if "fid" in result:
        out.print(f"FID  {result['fid']:.4f}", markup=False)
    if "kid" in result:
        out.print(f"KID  {result['kid']:.6f} ± {result['kid_std']:.6f}", markup=False)
    if "saved" in result:
        out.print(str(result["saved"]), markup=False)
    counts = f"{result.get('generated_count', '-')} generated, {result['real_count']} real"
    err.print(f"{result['features']} features; {counts}", markup=False)
    return EXIT_OK


def failure(message: str) -> None:
    """One 'failed:' line on stderr."""
    err.print(f"[red]failed:[/] {escape(message)}", markup=True, highlight=False)


def print_json(record: Mapping[str, Any]) -> None:
    """One JSON object on one line of stdout."""
    out.print_json(json.dumps(record), indent=None)


def print_table(table: Table) -> None:
    """A Rich table on stdout; piped, it is not squeezed into 80 columns."""
    if not out.is_terminal:
        out.width = max(out.width, 160)
    out.print(table)


def stdout_bytes(data: bytes) -> None:
    """Binary output (an encoded image) on stdout."""
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def report_scores(results: Iterable[Scored | ImganError], *, groups: Mapping[str, str], as_json: bool) -> int:
    """Print evaluation rows (JSON lines, or a table with the mean) and failures; the exit code.

    ``groups`` maps each row group of the results to its column label; the one group "" gives
    flat JSON records and plain PSNR/SSIM columns.
    """
    from rich.table import Table

    from imgan.tasks.evaluate import mean_row

    def scores(row: EvalRow) -> dict[str, float | None]:
        def number(value: float) -> float | None:  # JSON has no infinity: identical images give null
            return None if value == float("inf") else round(value, 6)

        return {"psnr": number(row.psnr), "ssim": number(row.ssim)}

    def record(name: str, rows: Mapping[str, EvalRow]) -> dict[str, Any]:
        if list(rows) == [""]:
            return {"name": name, **scores(rows[""])}
        return {"name": name, **{group: scores(row) for group, row in rows.items()}}

    failed = 0
    scored: list[tuple[str, Mapping[str, EvalRow]]] = []
    for result in results:
        if isinstance(result, ImganError):
            failed += 1
            failure(str(result))
            continue
        scored.append(result)
        if as_json:
            print_json(record(*result))
    if scored:
        means = {group: mean_row([rows[group] for _, rows in scored]) for group in groups}
        if as_json:
            print_json({**record("mean", means), "count": len(scored)})
        else:
            table = Table(box=None, header_style="bold")
            table.add_column("image")
            for label in groups.values():
                table.add_column(f"{label} PSNR" if label else "PSNR (dB)", justify="right")
                table.add_column("SSIM", justify="right")
            for name, rows in [*scored, ("mean", means)]:
                cells = [f"{value:.{digits}f}" for group in groups
                         for value, digits in ((rows[group].psnr, 2), (rows[group].ssim, 4))]
                table.add_row(name, *cells, style="bold" if name == "mean" and rows is means else None)
            print_table(table)
    return EXIT_FAILED if failed else EXIT_OK


class Terminated(KeyboardInterrupt):
    """SIGTERM, stopped like Ctrl-C (exit 143)."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def run_main(app: typer.Typer) -> None:
    """Run the command line as a process: SIGTERM stops like Ctrl-C, and the exit never waits.

    After an interrupt, worker threads may still be inside a forward pass; letting the
    interpreter finalise under them aborts the process ("terminate called without an active
    exception"). And after a KeyboardInterrupt that imgan handled during start-up or loading,
    CPython sometimes still killed itself with SIGINT at exit (exit -2 instead of 130, seen
    about once in ten runs; its "unhandled interrupt" flag). So after an interrupt, or with
    worker threads alive, the
    process leaves with ``os._exit`` once output is flushed. Outputs are complete by then:
    ``batch.run_jobs`` waits for the writes under way and starts no other.
    """
    signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
        code: object = EXIT_OK
    except SystemExit as exit_:
        code = exit_.code
    except KeyboardInterrupt as interrupt:  # before a command's own reporting took over (start-up)
        err.print("interrupted")
        code = EXIT_TERMINATED if isinstance(interrupt, Terminated) else EXIT_INTERRUPTED
    status = code if isinstance(code, int) else EXIT_OK if code is None else EXIT_FAILED
    if status in (EXIT_INTERRUPTED, EXIT_TERMINATED) or any(
            thread.name.startswith("imgan-") and thread.is_alive() for thread in threading.enumerate()):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(status)
    sys.exit(status)
