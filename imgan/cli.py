"""The imgan command line: thin Typer commands that parse, call the library, map errors to exit codes.

Nothing heavy is imported at module level, so ``imgan --help`` starts without torch.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from imgan import __version__
from imgan.console import err, out, setup_logging
from imgan.errors import ImganError, UsageError

if TYPE_CHECKING:
    from imgan.batch import Outcome

app = typer.Typer(
    name="imgan",
    help="Run and train GANs on images: upscale, train, evaluate, manage weights.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
models_app = typer.Typer(help="List, inspect, download and verify model weights.", no_args_is_help=True)
app.add_typer(models_app, name="models")
from imgan.train.commands import train_app  # noqa: E402 - the train sub-app; imports no torch

app.add_typer(train_app, name="train")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# Options shared by every model command.
DeviceOption = Annotated[str, typer.Option(
    "--device", help="auto, cpu, cuda, cuda:N, mps, or a comma list (cuda:0,cuda:1) to spread files.",
    rich_help_panel="Runtime")]
PrecisionOption = Annotated[str, typer.Option(
    "--precision", help="auto (fp32 on CPU, fp16 on GPU), fp32, fp16 or bf16.", rich_help_panel="Runtime")]
QuietOption = Annotated[bool, typer.Option(
    "--quiet", "-q", help="No progress or info messages; errors still go to stderr.",
    rich_help_panel="Runtime")]
JsonOption = Annotated[bool, typer.Option(
    "--json", help="One JSON object per output on stdout, for scripts.", rich_help_panel="Runtime")]
DebugOption = Annotated[bool, typer.Option(
    "--debug", help="Show tracebacks and debug logs.", rich_help_panel="Runtime")]
TileOption = Annotated[str, typer.Option(
    "--tile", help="Tile size in input pixels: auto (from free memory), 0 (whole image) or N.",
    rich_help_panel="Runtime")]
BatchOption = Annotated[int | None, typer.Option(
    "--batch-size", min=1, help="Tiles per forward pass (default: 1 on CPU, 4 on GPU).",
    rich_help_panel="Runtime")]
MaxPixelsOption = Annotated[int, typer.Option(
    "--max-pixels", min=0, help="Refuse inputs larger than this many pixels (decompression-bomb "
    "guard); 0 = no limit.", rich_help_panel="Input")]

# Options shared by every command that writes images.
OutOption = Annotated[str | None, typer.Option(
    "--out", "-o", help="A directory, '-' for stdout, or a template with {stem} {ext} {scale} {model} "
    "{relpath} {dir}. Default: {dir}/{stem}_x{scale}.{ext} (stdout for stdin).", rich_help_panel="Output")]
FormatOption = Annotated[str, typer.Option(
    "--format", "-f", help="png, jpg, webp, tiff, bmp, or same (as the input).", rich_help_panel="Output")]
QualityOption = Annotated[int | None, typer.Option(
    "--quality", min=1, max=100, help="JPEG/WebP quality (default 95).", rich_help_panel="Output")]
SkipOption = Annotated[bool, typer.Option(
    "--skip-existing", help="Skip inputs whose output already exists.", rich_help_panel="Output")]
OverwriteOption = Annotated[bool, typer.Option(
    "--overwrite", help="Replace existing outputs (never an input file).", rich_help_panel="Output")]


def _version(value: bool) -> None:
    if value:
        out.print(f"imgan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """imgan: run and train GANs on images."""


@contextmanager
def reporting(*, debug: bool) -> Iterator[None]:
    """Turn domain errors into one line on stderr and an exit code (tracebacks with --debug)."""
    try:
        yield
    except ImganError as error:
        if debug:
            err.print_exception()
        err.print(f"[bold red]error:[/] {error}", markup=True, highlight=False)
        raise typer.Exit(EXIT_USAGE if isinstance(error, UsageError) else EXIT_FAILED) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None


def _parse_tile(tile: str) -> int | None:
    if tile == "auto":
        return None
    try:
        size = int(tile)
    except ValueError:
        raise UsageError(f"--tile {tile!r}: use auto, 0 or a size in pixels") from None
    if size < 0 or 0 < size < 32:
        raise UsageError(f"--tile {tile}: use 0 (no tiling) or at least 32")
    return size


@contextmanager
def _download_progress(*, quiet: bool) -> Iterator[Any]:
    """A byte progress bar on stderr for weight downloads (nothing when quiet)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    if quiet or not err.is_terminal:
        yield None
        return
    with Progress(TextColumn("downloading weights"), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), console=err, transient=True) as progress:
        task = progress.add_task("download", total=None)

        def update(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def _report(outcomes: Iterable[Outcome], *, total: int, as_json: bool, quiet: bool,
            debug: bool) -> int:
    """Print each outcome (results on stdout, failures on stderr), a summary, and the exit code."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    counts = {"ok": 0, "skipped": 0, "failed": 0}
    show_bar = not quiet and err.is_terminal and total > 1
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True, disable=not show_bar) as progress:
        task = progress.add_task("processing", total=total)
        for outcome in outcomes:
            counts[outcome.status] += 1
            progress.advance(task)
            if as_json:
                out.print_json(json.dumps(outcome.as_json()), indent=None)
            elif outcome.status == "ok" and outcome.job.target is not None:
                out.print(str(outcome.job.target), markup=False)
            if outcome.status == "failed":
                if debug and outcome.details:
                    err.print(outcome.details, markup=False)
                err.print(f"[red]failed:[/] {outcome.error}", markup=True, highlight=False)
            elif outcome.status == "skipped" and not quiet and not as_json:
                err.print(f"skipped: {outcome.job.source.name} (output exists)", markup=False)
    if not quiet and total > 1:
        err.print(f"{counts['ok']} done, {counts['skipped']} skipped, {counts['failed']} failed",
                  markup=False)
    return EXIT_FAILED if counts["failed"] else EXIT_OK


def _stdout_bytes(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


@app.command()
def upscale(
    inputs: Annotated[list[str], typer.Argument(
        help="Image files, directories, globs ('photos/**/*.jpg'), or '-' for stdin.",
        show_default=False)],
    scale: Annotated[float | None, typer.Option(
        "--scale", "-s", help="Output scale; default the model's own. Other factors resize the "
        "model's output to the exact size.")] = None,
    model: Annotated[str, typer.Option(
        "--model", "-m", help="A registry name (imgan models list) or a .pth/.safetensors file.")]
    = "imgan-sr-x4",
    denoise: Annotated[float | None, typer.Option(
        "--denoise", min=0.0, max=1.0, help="Denoise strength 0..1 for models with a denoise "
        "companion (realesr-general-x4v3).")] = None,
    alpha: Annotated[str, typer.Option(
        "--alpha", help="Alpha channel: model (upscale it with the model), resize, or drop.")] = "model",
    out_: OutOption = None,
    format_: FormatOption = "same",
    quality: QualityOption = None,
    skip_existing: SkipOption = False,
    overwrite: OverwriteOption = False,
    max_pixels: MaxPixelsOption = 178_956_970,
    tile: TileOption = "auto",
    batch_size: BatchOption = None,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    quiet: QuietOption = False,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Upscale images with a super-resolution GAN (Real-ESRGAN family and your own models)."""
    setup_logging(quiet=quiet, debug=debug)
    with reporting(debug=debug):
        from imgan.batch import OutputOptions, file_reader, file_writer, plan_jobs, run_jobs
        from imgan.engine import Engine, parse_devices
        from imgan.models import load_model
        from imgan.tasks.upscale import ALPHA_MODES, upscale_picture

        if alpha not in ALPHA_MODES:
            raise UsageError(f"--alpha {alpha!r}: use one of {', '.join(ALPHA_MODES)}")
        if as_json and out_ == "-":
            raise UsageError("--json and --out - both want stdout; choose one")
        tile_size = _parse_tile(tile)
        devices = parse_devices(device)
        with _download_progress(quiet=quiet) as progress:
            descriptor = load_model(model, task="upscale", denoise=denoise, progress=progress)
        label = scale if scale is not None else float(descriptor.scale)
        options = OutputOptions(out=out_, format=format_, quality=quality,
                                skip_existing=skip_existing, overwrite=overwrite)
        jobs, decided = plan_jobs(inputs, options, scale=label, model=descriptor.name)
        if as_json is False and any(job.target is None for job in jobs) and sys.stdout.isatty():
            raise UsageError("refusing to write image bytes to a terminal; redirect stdout or use --out")
        first = Engine(descriptor, devices[0], precision=precision, tile_size=tile_size,
                       batch_size=batch_size)
        engines = [first] + [first.replica(d) for d in devices[1:]]
        workers = [
            (lambda picture, engine=engine: upscale_picture(picture, engine, scale=scale, alpha=alpha))
            for engine in engines
        ]
        outcomes = run_jobs(
            jobs, workers,
            read=file_reader(max_pixels=max_pixels or None, stdin=lambda: sys.stdin.buffer.read()),
            write=file_writer(quality=quality, stdout=_stdout_bytes),
        )
        code = _report(itertools.chain(decided, outcomes), total=len(decided) + len(jobs),
                       as_json=as_json, quiet=quiet, debug=debug)
    raise typer.Exit(code)


@models_app.command("list")
def models_list(
    task: Annotated[str | None, typer.Option("--task", help="Only models for this task.")] = None,
    markdown: Annotated[bool, typer.Option("--markdown", help="A Markdown table (for the README).")] = False,
    as_json: JsonOption = False,
) -> None:
    """List the models in the registry."""
    from imgan import hub

    with reporting(debug=False):
        specs = [s for s in hub.registry().values() if not s.hidden and (task is None or s.task == task)]
        if as_json:
            for spec in specs:
                out.print_json(json.dumps(_spec_record(spec)), indent=None)
        elif markdown:
            out.print(_markdown_table(specs), markup=False)
        else:
            from rich.table import Table

            table = Table(box=None, header_style="bold")
            for column in ("name", "task", "arch", "scale", "size", "licence", "cached"):
                table.add_column(column, no_wrap=True)
            table.add_column("description", min_width=20)
            for spec in specs:
                table.add_row(spec.name, spec.task, spec.arch, f"x{spec.scale}", _human_size(spec.size),
                              spec.license, "yes" if hub.cached_path(spec).exists() else "",
                              spec.description)
            _print_table(table)


def _print_table(table: Any) -> None:
    """A Rich table on stdout; piped, it is not squeezed into 80 columns."""
    if not out.is_terminal:
        out.width = max(out.width, 160)
    out.print(table)


def _human_size(size: int | None) -> str:
    if not size:
        return "?"
    return f"{size / 1e6:.1f} MB"


def _spec_record(spec: Any) -> dict[str, Any]:
    from imgan import hub

    return {
        "name": spec.name, "task": spec.task, "arch": spec.arch, "params": dict(spec.params),
        "scale": spec.scale, "urls": list(spec.urls), "digest": spec.digest, "size": spec.size,
        "format": spec.format, "key": spec.key, "value_range": list(spec.value_range),
        "license": spec.license, "source": spec.source, "paper": spec.paper,
        "description": spec.description, "denoise_companion": spec.denoise_companion,
        "path": str(hub.cached_path(spec)), "cached": hub.cached_path(spec).exists(),
    }


def _markdown_table(specs: list[Any]) -> str:
    lines = ["| model | task | arch | scale | size | licence | description |",
             "|---|---|---|---|---|---|---|"]
    for spec in specs:
        lines.append(f"| `{spec.name}` | {spec.task} | {spec.arch} | x{spec.scale} | "
                     f"{_human_size(spec.size)} | {spec.license} | {spec.description} |")
    return "\n".join(lines)


@models_app.command("info")
def models_info(name: Annotated[str, typer.Argument(help="A registry name.")],
                as_json: JsonOption = False) -> None:
    """Show everything the registry knows about one model."""
    from imgan import hub

    with reporting(debug=False):
        record = _spec_record(hub.get_spec(name))
        if as_json:
            out.print_json(json.dumps(record), indent=None)
            return
        for key, value in record.items():
            if value not in (None, "", [], {}):
                out.print(f"[bold]{key:>17}[/]  {value}", markup=True, highlight=False)


@models_app.command("download")
def models_download(
    names: Annotated[list[str], typer.Argument(help="Registry names.", show_default=False)],
    quiet: QuietOption = False,
) -> None:
    """Download weights into the cache now (verified against their digest)."""
    from imgan import hub

    setup_logging(quiet=quiet)
    failed = 0
    for name in names:
        try:
            spec = hub.get_spec(name)
            with _download_progress(quiet=quiet) as progress:
                path = hub.fetch(spec, progress=progress)
            out.print(str(path), markup=False)
        except ImganError as error:
            failed += 1
            err.print(f"[red]failed:[/] {error}", markup=True, highlight=False)
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


@models_app.command("verify")
def models_verify() -> None:
    """Re-hash every cached weight file against the registry."""
    from imgan import hub

    with reporting(debug=False):
        results = hub.verify_cache()
    bad = 0
    for name, path, ok, reason in results:
        if ok:
            out.print(f"ok      {name}  {path}", markup=False)
        else:
            bad += 1
            out.print(f"BAD     {name}  {path}  ({reason})", markup=False)
    if not results:
        err.print("the cache is empty", markup=False)
    raise typer.Exit(EXIT_FAILED if bad else EXIT_OK)


@models_app.command("path")
def models_path() -> None:
    """Print the folder where weights are cached ($IMGAN_HOME/weights)."""
    from imgan import hub

    out.print(str(hub.weights_dir()), markup=False)


@app.command("eval")
def eval_(
    pred: Annotated[str | None, typer.Option(
        "--pred", help="Folder of results to score against --ref.", show_default=False)] = None,
    ref: Annotated[str | None, typer.Option(
        "--ref", help="Folder of references; files pair by relative path and stem, any extension "
        "(a result named <stem>_x4 also matches <stem>).", show_default=False)] = None,
    shave: Annotated[int, typer.Option(
        "--shave", min=0, help="Pixels cut off every border before scoring --pred (the scale for "
        "SR results: 4 at x4).")] = 0,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="Run the held-out protocol with this model: a registry name or a "
        ".pth/.safetensors file.", show_default=False)] = None,
    data: Annotated[str | None, typer.Option(
        "--data", help="Folder of high-resolution images for --model.", show_default=False)] = None,
    scale: Annotated[int | None, typer.Option(
        "--scale", "-s", min=1, help="Protocol scale for --model (default: the model's own).")] = None,
    tile: TileOption = "auto",
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    quiet: QuietOption = False,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Score super-resolution: PSNR and SSIM on luma (BT.601), as SR papers do.

    [b]--pred DIR --ref DIR[/]  score results against same-size references.
    [b]--model NAME --data DIR[/]  run the held-out protocol: box-downscale each
    image to at most 1536 px, centre-crop 512, shrink by the scale (Pillow
    bicubic), then score the model and a bicubic upscale on the crop with a
    border of the scale shaved off.
    """
    setup_logging(quiet=quiet, debug=debug)
    failed = 0
    with reporting(debug=debug):
        from imgan.tasks import evaluate

        folders, protocol = pred is not None or ref is not None, model is not None or data is not None
        if folders == protocol or (folders and (pred is None or ref is None)) or (
                protocol and (model is None or data is None)):
            raise UsageError("use either --pred DIR --ref DIR, or --model NAME --data DIR")
        if protocol and shave:
            raise UsageError("--shave is for --pred; the protocol shaves the scale (4 at x4)")

        def number(value: float) -> float | None:  # JSON has no infinity: identical images give null
            return None if value == float("inf") else round(value, 6)

        def scores(row: evaluate.EvalRow) -> dict[str, float | None]:
            return {"psnr": number(row.psnr), "ssim": number(row.ssim)}

        def fail(message: str) -> None:
            nonlocal failed
            failed += 1
            err.print(f"[red]failed:[/] {message}", markup=True, highlight=False)

        from rich.table import Table

        table = Table(box=None, header_style="bold")
        if folders:
            assert pred is not None and ref is not None
            pairs, problems = evaluate.pair_folders(pred, ref)
            for problem in problems:
                fail(problem)
            rows: list[evaluate.EvalRow] = []
            for name, predicted, reference in pairs:
                try:
                    row = evaluate.score_files(predicted, reference, shave=shave, name=name)
                except ImganError as error:
                    fail(str(error))
                    continue
                rows.append(row)
                if as_json:
                    out.print_json(json.dumps({"name": row.name, **scores(row)}), indent=None)
            if rows:
                mean = evaluate.mean_row(rows)
                if as_json:
                    out.print_json(json.dumps({"name": "mean", **scores(mean), "count": len(rows)}),
                                   indent=None)
                else:
                    for column in ("image", "PSNR (dB)", "SSIM"):
                        table.add_column(column, justify="left" if column == "image" else "right")
                    for row in [*rows, mean]:
                        table.add_row(row.name, f"{row.psnr:.2f}", f"{row.ssim:.4f}",
                                      style="bold" if row is mean else None)
        else:
            assert model is not None and data is not None
            from imgan.engine import Engine, parse_devices
            from imgan.io import read_picture
            from imgan.models import load_model

            devices = parse_devices(device)
            if len(devices) > 1:
                raise UsageError(f"--device {device}: eval runs on one device; name one")
            images = evaluate.list_images(data)
            with _download_progress(quiet=quiet) as progress:
                descriptor = load_model(model, task="upscale", progress=progress)
            factor = descriptor.scale if scale is None else scale
            if factor != descriptor.scale:
                raise UsageError(f"--scale {scale}: {descriptor.name} is a x{descriptor.scale} model")
            engine = Engine(descriptor, devices[0], precision=precision, tile_size=_parse_tile(tile))
            results: dict[str, list[evaluate.EvalRow]] = {"bicubic": [], "model": []}
            for name, path in images:
                if not quiet:
                    err.print(f"evaluating {name}", markup=False)
                try:
                    baseline, scored = evaluate.evaluate_image(
                        engine.run, read_picture(path).rgb, name=name, scale=factor)
                except ImganError as error:
                    fail(str(error))
                    continue
                results["bicubic"].append(baseline)
                results["model"].append(scored)
                if as_json:
                    out.print_json(json.dumps({"name": name, "bicubic": scores(baseline),
                                               "model": scores(scored)}), indent=None)
            if results["model"]:
                means = {kind: evaluate.mean_row(rows) for kind, rows in results.items()}
                if as_json:
                    out.print_json(json.dumps({"name": "mean", "bicubic": scores(means["bicubic"]),
                                               "model": scores(means["model"]),
                                               "count": len(results["model"])}), indent=None)
                else:
                    table.add_column("image")
                    for column in ("bicubic PSNR", "SSIM", f"{descriptor.name} PSNR", "SSIM"):
                        table.add_column(column, justify="right")
                    lines = [*zip(results["bicubic"], results["model"], strict=True),
                             (means["bicubic"], means["model"])]
                    for baseline, scored in lines:
                        table.add_row(scored.name, f"{baseline.psnr:.2f}", f"{baseline.ssim:.4f}",
                                      f"{scored.psnr:.2f}", f"{scored.ssim:.4f}",
                                      style="bold" if scored is means["model"] else None)
        if table.columns:
            _print_table(table)
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


def main() -> None:
    """Console-script entry point."""
    app()
