"""The imgan command line: each command declares its options and makes one call into the library.

Image commands get their shared output and runtime options from ``imgan.options.image_command``;
errors become one line on stderr and an exit code in ``imgan.console``. Nothing heavy is imported
at module level, so ``imgan --help`` starts without torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from imgan import __version__
from imgan.console import EXIT_FAILED, EXIT_OK, err, failure, out, print_json, print_table, reporting, setup_logging
from imgan.errors import ImganError, UsageError
from imgan.options import (
    DebugOption,
    DeviceOption,
    ImageRun,
    InputsArgument,
    JsonOption,
    PrecisionOption,
    QuietOption,
    TileOption,
    image_command,
)
from imgan.train.commands import train_app

if TYPE_CHECKING:
    from imgan.engine import Engine

app = typer.Typer(
    name="imgan",
    help="Run and train GANs on images: upscale, stylize, sketch2photo, age, train, evaluate, manage weights.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
models_app = typer.Typer(help="List, inspect, download and verify model weights.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(train_app, name="train")

ModelOption = Annotated[str, typer.Option(
    "--model", "-m", help="A registry name (imgan models list) or a .pth/.safetensors file.")]


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


@image_command(app)
def upscale(
    inputs: InputsArgument,
    scale: Annotated[float | None, typer.Option(
        "--scale", "-s", help="Output scale; default the model's own. Other factors resize the "
        "model's output to the exact size.")] = None,
    model: ModelOption = "imgan-sr-x4",
    denoise: Annotated[float | None, typer.Option(
        "--denoise", min=0.0, max=1.0, help="Denoise strength 0..1 for models with a denoise "
        "companion (realesr-general-x4v3).")] = None,
    alpha: Annotated[str, typer.Option(
        "--alpha", help="Alpha channel: model (upscale it with the model), resize, or drop.")] = "model",
    *,
    run: ImageRun,
) -> int:
    """Upscale images with a super-resolution GAN (Real-ESRGAN family and your own models)."""
    from functools import partial

    from imgan.batch import Pipeline
    from imgan.tasks import upscale as task

    if alpha not in task.ALPHA_MODES:
        raise UsageError(f"--alpha {alpha!r}: use one of {', '.join(task.ALPHA_MODES)}")
    if scale is not None and not 0 < scale < float("inf"):
        raise UsageError(f"--scale {scale:g}: use a positive factor")
    return run(inputs, Pipeline("upscale", model, partial(task.worker, scale=scale, alpha=alpha),
                                scale=scale, denoise=denoise))


STYLES = {"monet": "cyclegan-monet", "vangogh": "cyclegan-vangogh", "cezanne": "cyclegan-cezanne",
          "ukiyoe": "cyclegan-ukiyoe"}


@image_command(app, default_name="{stem}_{style}")
def stylize(
    inputs: InputsArgument,
    style: Annotated[str, typer.Option(
        "--style", help=f"{', '.join(STYLES)}, a registry name (imgan models list --task stylize) or a "
        ".pth/.safetensors file (your own imgan train cyclegan export).")] = "monet",
    strength: Annotated[float, typer.Option(
        "--strength", min=0.0, max=1.0, help="1: the painting; lower values blend it with the photo.")] = 1.0,
    *,
    run: ImageRun,
) -> int:
    """Turn photos into paintings (CycleGAN: Monet, Van Gogh, Cezanne, ukiyo-e) at full resolution.

    Large images are tiled; every tile is normalised with statistics of the whole image, so
    tiles match. Default output: [b]{stem}_{style}.{ext}[/] beside the input.
    """
    from functools import partial

    from imgan.batch import Pipeline
    from imgan.models import is_local_model
    from imgan.tasks import translate as task

    tag = style if style in STYLES else Path(style).stem if is_local_model(style) else style
    if style not in STYLES and not is_local_model(style):
        task.check_style(style, STYLES)
    return run(inputs, Pipeline("stylize", STYLES.get(style, style), partial(task.worker, strength=strength),
                                suffix=tag))


@image_command(app, default_name="{stem}_photo", tile_options=False)
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
    *,
    run: ImageRun,
) -> int:
    """Turn sketches (or, with --from-photo, photos) into photos with pix2pix.

    Default output: [b]{stem}_photo.{ext}[/] beside the input.
    """
    from functools import partial

    from imgan.batch import Pipeline
    from imgan.tasks import sketch2photo as task

    task.check_size(size)
    prepare = task.batchnorm_mode(batchnorm)
    if save_sketch and not from_photo:
        raise UsageError("--save-sketch saves the edge map --from-photo draws; add --from-photo")
    worker = partial(task.worker, size=size, from_photo=from_photo, save_sketch=save_sketch)
    return run(inputs, Pipeline("sketch2photo", model, worker, suffix="photo", prepare=prepare,
                                extras=("sketch",) if save_sketch else ()))


@image_command(app, default_name="{stem}_aged", tile_options=False)
def age(
    inputs: InputsArgument,
    model: Annotated[str, typer.Option(
        "--model", "-m", help="A registry name (imgan models list --task age) or a .pth/.safetensors "
        "file (your own imgan train aging export).")] = "fast-aginggan",
    face: Annotated[list[str] | None, typer.Option(
        "--face", help="A face box x,y,w,h in pixels instead of detecting faces; repeat for several.",
        show_default=False)] = None,
    *,
    run: ImageRun,
) -> int:
    """Make the faces in photos look older (Fast-AgingGAN).

    Every face is found (offline), framed as the model expects (512x512, face about 256 px),
    aged and blended back; the rest of the photo is untouched. Default output:
    [b]{stem}_aged.{ext}[/] beside the input.
    """
    from functools import partial

    from imgan.batch import Pipeline
    from imgan.faces import parse_face_box
    from imgan.tasks import age as task

    faces = [parse_face_box(text) for text in face] if face else None
    return run(inputs, Pipeline("age", model, partial(task.worker, faces=faces), suffix="aged", tiling=False))


@models_app.command("list")
def models_list(
    task: Annotated[str | None, typer.Option("--task", help="Only models for this task.")] = None,
    markdown: Annotated[bool, typer.Option("--markdown", help="A Markdown table (for the README).")] = False,
    as_json: JsonOption = False,
) -> None:
    """List the models in the registry."""
    from imgan import catalog

    with reporting(debug=False):
        specs = catalog.listed_specs(task)
        if as_json:
            for spec in specs:
                print_json(catalog.spec_record(spec))
        elif markdown:
            out.print(catalog.markdown_table(specs), markup=False)
        else:
            print_table(catalog.rich_table(specs))


@models_app.command("info")
def models_info(name: Annotated[str, typer.Argument(help="A registry name.")], as_json: JsonOption = False) -> None:
    """Show everything the registry knows about one model."""
    from imgan import catalog, hub

    with reporting(debug=False):
        record = catalog.spec_record(hub.get_spec(name))
    if as_json:
        print_json(record)
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
    from imgan.console import download_progress

    setup_logging(quiet=quiet)
    failed = 0
    for name in names:
        try:
            spec = hub.get_spec(name)
            with download_progress(quiet=quiet) as progress:
                path = hub.fetch(spec, progress=progress)
            out.print(str(path), markup=False)
        except ImganError as error:
            failed += 1
            failure(str(error))
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


@models_app.command("verify")
def models_verify() -> None:
    """Re-hash every cached weight file against the registry."""
    from imgan import hub

    with reporting(debug=False):
        results = hub.verify_cache()
    for name, path, ok, reason in results:
        out.print(f"ok      {name}  {path}" if ok else f"BAD     {name}  {path}  ({reason})", markup=False)
    if not results:
        err.print("the cache is empty", markup=False)
    raise typer.Exit(EXIT_OK if all(ok for _, _, ok, _ in results) else EXIT_FAILED)


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
    from imgan.console import report_scores

    setup_logging(quiet=quiet, debug=debug)
    with reporting(debug=debug):
        from imgan.tasks import evaluate

        if pred is not None and ref is not None and model is None and data is None:
            code = report_scores(evaluate.score_folders(pred, ref, shave=shave), groups={"": ""}, as_json=as_json)
        elif model is not None and data is not None and pred is None and ref is None:
            if shave:
                raise UsageError("--shave is for --pred; the protocol shaves the scale (4 at x4)")
            engine, images = _protocol_engine(model, data, scale=scale, tile=tile, device=device,
                                              precision=precision, quiet=quiet)
            results = evaluate.score_protocol(engine.run, images, scale=engine.descriptor.scale)
            code = report_scores(results, groups={"bicubic": "bicubic", "model": engine.descriptor.name},
                                 as_json=as_json)
        else:
            raise UsageError("use either --pred DIR --ref DIR, or --model NAME --data DIR")
    raise typer.Exit(code)


def _protocol_engine(model: str, data: str, *, scale: int | None, tile: str, device: str, precision: str,
                     quiet: bool) -> tuple[Engine, list[tuple[str, Path]]]:
    """The engine ``eval --model`` scores, on one device, and the images it scores it on."""
    from imgan.batch import parse_tile
    from imgan.console import download_progress
    from imgan.engine import Engine, parse_devices
    from imgan.models import load_model
    from imgan.tasks.evaluate import list_images

    devices = parse_devices(device)
    if len(devices) > 1:
        raise UsageError(f"--device {device}: eval runs on one device; name one")
    images = list_images(data)
    with download_progress(quiet=quiet) as progress:
        descriptor = load_model(model, task="upscale", progress=progress)
    if scale is not None and scale != descriptor.scale:
        raise UsageError(f"--scale {scale}: {descriptor.name} is a x{descriptor.scale} model")
    return Engine(descriptor, devices[0], precision=precision, tile_size=parse_tile(tile)), images


def main() -> None:
    """Console-script entry point (and ``python -m imgan``)."""
    from imgan.console import run_main

    run_main(app)
