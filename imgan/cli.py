"""The imgan command line: thin Typer commands that parse, call the library, map errors to exit codes.

Nothing heavy is imported at module level, so ``imgan --help`` starts without torch.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from imgan import __version__
from imgan.console import err, out, setup_logging
from imgan.errors import ImganError, UsageError

if TYPE_CHECKING:
    from imgan.batch import Outcome, Result, Worker
    from imgan.descriptor import ModelDescriptor
    from imgan.engine import Engine
    from imgan.io import Picture

app = typer.Typer(
    name="imgan",
    help="Run and train GANs on images: upscale, stylize, sketch2photo, age, train, evaluate, manage weights.",
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
MAX_PIXELS = 178_956_970  # Pillow's own decompression-bomb limit

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


@dataclass(frozen=True)
class _Run:
    """The options every image command shares, as given on its command line."""

    out: str | None
    format: str
    quality: int | None
    skip_existing: bool
    overwrite: bool
    max_pixels: int
    device: str
    precision: str
    quiet: bool
    as_json: bool
    debug: bool
    tile: str = "auto"
    batch_size: int | None = None


def _process_images(
    inputs: list[str],
    run: _Run,
    *,
    task: str,
    model: str,
    work: Callable[[Engine], Worker],
    suffix: str | None = None,
    scale: float | None = None,
    extras: tuple[str, ...] = (),
    denoise: float | None = None,
    prepare: Callable[[ModelDescriptor], None] | None = None,
) -> int:
    """Load ``model``, then read, process and write every input: the exit code.

    ``work(engine)`` gives the per-picture function of one engine (one per ``--device``);
    ``suffix`` tags default output names; ``prepare`` adjusts the loaded model first.
    """
    from imgan.batch import OutputOptions, file_reader, file_writer, plan_jobs, run_jobs
    from imgan.engine import Engine, parse_devices
    from imgan.models import load_model

    if run.as_json and run.out == "-":
        raise UsageError("--json and --out - both want stdout; choose one")
    tile_size = _parse_tile(run.tile)
    devices = parse_devices(run.device)
    with _download_progress(quiet=run.quiet) as progress:
        descriptor = load_model(model, task=task, denoise=denoise, progress=progress)
    if prepare is not None:
        prepare(descriptor)
    options = OutputOptions(out=run.out, format=run.format, quality=run.quality,
                            skip_existing=run.skip_existing, overwrite=run.overwrite)
    jobs, decided = plan_jobs(inputs, options, scale=scale if scale is not None else float(descriptor.scale),
                              model=descriptor.name, suffix=suffix, extras=extras)
    if not run.as_json and any(job.target is None for job in jobs) and sys.stdout.isatty():
        raise UsageError("refusing to write image bytes to a terminal; redirect stdout or use --out")
    first = Engine(descriptor, devices[0], precision=run.precision, tile_size=tile_size,
                   batch_size=run.batch_size)
    engines = [first] + [first.replica(device) for device in devices[1:]]
    outcomes = run_jobs(
        jobs, [work(engine) for engine in engines],
        read=file_reader(max_pixels=run.max_pixels or None, stdin=lambda: sys.stdin.buffer.read()),
        write=file_writer(quality=run.quality, stdout=_stdout_bytes),
    )
    return _report(itertools.chain(decided, outcomes), total=len(decided) + len(jobs),
                   as_json=run.as_json, quiet=run.quiet, debug=run.debug)


InputsArgument = Annotated[list[str], typer.Argument(
    help="Image files, directories, globs ('photos/**/*.jpg'), or '-' for stdin.", show_default=False)]


@app.command()
def upscale(
    inputs: InputsArgument,
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
    max_pixels: MaxPixelsOption = MAX_PIXELS,
    tile: TileOption = "auto",
    batch_size: BatchOption = None,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    quiet: QuietOption = False,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Upscale images with a super-resolution GAN (Real-ESRGAN family and your own models)."""
    run = _Run(out_, format_, quality, skip_existing, overwrite, max_pixels, device, precision, quiet, as_json,
               debug, tile, batch_size)
    setup_logging(quiet=quiet, debug=debug)
    with reporting(debug=debug):
        from imgan.tasks.upscale import ALPHA_MODES, upscale_picture

        if alpha not in ALPHA_MODES:
            raise UsageError(f"--alpha {alpha!r}: use one of {', '.join(ALPHA_MODES)}")
        code = _process_images(
            inputs, run, task="upscale", model=model, denoise=denoise, scale=scale,
            work=lambda engine: lambda picture: upscale_picture(picture, engine, scale=scale, alpha=alpha))
    raise typer.Exit(code)


STYLES = {"monet": "cyclegan-monet", "vangogh": "cyclegan-vangogh", "cezanne": "cyclegan-cezanne",
          "ukiyoe": "cyclegan-ukiyoe"}


@app.command()
def stylize(
    inputs: InputsArgument,
    style: Annotated[str, typer.Option(
        "--style", help=f"{', '.join(STYLES)}, a registry name (imgan models list --task stylize) or a "
        ".pth/.safetensors file (your own imgan train cyclegan export).")] = "monet",
    strength: Annotated[float, typer.Option(
        "--strength", min=0.0, max=1.0, help="1: the painting; lower values blend it with the photo.")] = 1.0,
    out_: OutOption = None,
    format_: FormatOption = "same",
    quality: QualityOption = None,
    skip_existing: SkipOption = False,
    overwrite: OverwriteOption = False,
    max_pixels: MaxPixelsOption = MAX_PIXELS,
    tile: TileOption = "auto",
    batch_size: BatchOption = None,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    quiet: QuietOption = False,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Turn photos into paintings (CycleGAN: Monet, Van Gogh, Cezanne, ukiyo-e) at full resolution.

    Large images are tiled; every tile is normalised with statistics of the whole image, so
    tiles match. Default output: [b]{stem}_{style}.{ext}[/] beside the input.
    """
    run = _Run(out_, format_, quality, skip_existing, overwrite, max_pixels, device, precision, quiet, as_json,
               debug, tile, batch_size)
    setup_logging(quiet=quiet, debug=debug)
    with reporting(debug=debug):
        from imgan.models import is_local_model
        from imgan.tasks.translate import stylize_picture

        model = STYLES.get(style, style)
        tag = style if style in STYLES else Path(style).stem if is_local_model(style) else style
        code = _process_images(
            inputs, run, task="stylize", model=model, suffix=tag,
            work=lambda engine: lambda picture: stylize_picture(picture, engine, strength=strength))
    raise typer.Exit(code)


@app.command()
def sketch2photo(
    inputs: InputsArgument,
    model: Annotated[str, typer.Option(
        "--model", "-m", help="A registry name (imgan models list --task sketch2photo; pix2pix-edges2shoes "
        "for shoes) or a .pth/.safetensors file (your own imgan train pix2pix export).")] = "imgan-sketch2photo",
    from_photo: Annotated[bool, typer.Option(
        "--from-photo", help="The inputs are photos: draw their edge map first, as the training "
        "sketches were made.")] = False,
    save_sketch: Annotated[bool, typer.Option(
        "--save-sketch", help="With --from-photo, also write the edge map as <output>_sketch.")] = False,
    size: Annotated[int, typer.Option(
        "--size", min=0, help="Working size of the longer side (the model was trained at 256); "
        "0: the input's own size. The result always has the input's size.")] = 256,
    batchnorm: Annotated[str, typer.Option(
        "--batchnorm", help="image: normalise each image by its own statistics, as upstream tests "
        "(default); running: the statistics saved in training.")] = "image",
    out_: OutOption = None,
    format_: FormatOption = "same",
    quality: QualityOption = None,
    skip_existing: SkipOption = False,
    overwrite: OverwriteOption = False,
    max_pixels: MaxPixelsOption = MAX_PIXELS,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    quiet: QuietOption = False,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Turn sketches (or, with --from-photo, photos) into photos with pix2pix.

    Default output: [b]{stem}_photo.{ext}[/] beside the input.
    """
    run = _Run(out_, format_, quality, skip_existing, overwrite, max_pixels, device, precision, quiet, as_json,
               debug)
    setup_logging(quiet=quiet, debug=debug)
    with reporting(debug=debug):
        from imgan.archs.pix2pix import set_batchnorm_mode
        from imgan.batch import Result
        from imgan.tasks.sketch2photo import check_size, sketch2photo_picture

        check_size(size)
        if batchnorm not in ("image", "running"):
            raise UsageError(f"--batchnorm {batchnorm!r}: use image or running")
        if save_sketch and not from_photo:
            raise UsageError("--save-sketch saves the edge map --from-photo draws; add --from-photo")

        def prepare(descriptor: ModelDescriptor) -> None:
            set_batchnorm_mode(descriptor.module, per_image=batchnorm == "image")

        def work(engine: Engine) -> Worker:
            def process(picture: Picture) -> Picture | Result:
                photo, sketch = sketch2photo_picture(picture, engine, size=size, from_photo=from_photo)
                return Result(photo, {"sketch": sketch}) if save_sketch and sketch is not None else photo
            return process

        code = _process_images(inputs, run, task="sketch2photo", model=model, prepare=prepare, work=work,
                               suffix="photo", extras=("sketch",) if save_sketch else ())
    raise typer.Exit(code)


@app.command()
def age(
    inputs: InputsArgument,
    model: Annotated[str, typer.Option(
        "--model", "-m", help="A registry name (imgan models list --task age) or a .pth/.safetensors "
        "file (your own imgan train aging export).")] = "fast-aginggan",
    face: Annotated[list[str] | None, typer.Option(
        "--face", help="A face box x,y,w,h in pixels instead of detecting faces; repeat for several.",
        show_default=False)] = None,
    out_: OutOption = None,
    format_: FormatOption = "same",
    quality: QualityOption = None,
    skip_existing: SkipOption = False,
    overwrite: OverwriteOption = False,
    max_pixels: MaxPixelsOption = MAX_PIXELS,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    quiet: QuietOption = False,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Make the faces in photos look older (Fast-AgingGAN).

    Every face is found (offline), framed as the model expects (512x512, face about 256 px),
    aged and blended back; the rest of the photo is untouched. Default output:
    [b]{stem}_aged.{ext}[/] beside the input.
    """
    run = _Run(out_, format_, quality, skip_existing, overwrite, max_pixels, device, precision, quiet, as_json,
               debug, tile="0")
    setup_logging(quiet=quiet, debug=debug)
    with reporting(debug=debug):
        from imgan.faces import parse_face_box
        from imgan.tasks.age import age_picture

        faces = [parse_face_box(text) for text in face] if face else None
        code = _process_images(
            inputs, run, task="age", model=model, suffix="aged",
            work=lambda engine: lambda picture: age_picture(picture, engine, faces=faces))
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
        **_first_download_record(spec),
    }


def _first_download_record(spec: Any) -> dict[str, Any]:
    """For weights upstream publishes no digest for: what imgan recorded on the first download."""
    from imgan import hub

    pin = hub.read_pin(hub.cached_path(spec)) if spec.digest == hub.UNPUBLISHED else None
    return {} if pin is None else {"recorded_sha256": pin[0], "recorded_size": pin[1]}


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
