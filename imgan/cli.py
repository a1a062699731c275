"""The imgan command line: each command declares its options and makes one call into the library.

Image commands get their shared output and runtime options from ``imgan.options.image_command``;
errors become one line on stderr and an exit code in ``imgan.console``. Nothing heavy is imported
at module level, so ``imgan --help`` starts without torch.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from imgan import __version__
from imgan.console import EXIT_FAILED, EXIT_OK, err, failure, out, print_json, print_table, reporting, setup_logging
from imgan.errors import ImganError, UsageError
from imgan.options import (
    MAX_PIXELS,
    DebugOption,
    DeviceOption,
    ImageRun,
    InputsArgument,
    JsonOption,
    MaxPixelsOption,
    OverwriteOption,
    PrecisionOption,
    QuietOption,
    TileOption,
    image_command,
)
from imgan.tasks import STYLES
from imgan.train.commands import train_app

if TYPE_CHECKING:
    from imgan.engine import Engine

app = typer.Typer(
    name="imgan",
    help="Run and train GANs on images: upscale, stylize, sketch2photo, age, inpaint, text2img, train, evaluate, "
    "manage weights.",
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
    from imgan.tasks import upscale as task

    return run(inputs, task.pipeline(model, scale=scale, denoise=denoise, alpha=alpha))


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
    from imgan.tasks import translate as task

    return run(inputs, task.pipeline(style, strength=strength))


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
    from imgan.tasks import sketch2photo as task

    return run(inputs, task.pipeline(model, from_photo=from_photo, save_sketch=save_sketch, size=size,
                                     batchnorm=batchnorm))


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
    from imgan.faces import parse_face_box
    from imgan.tasks import age as task

    faces = [parse_face_box(text) for text in face] if face else None
    return run(inputs, task.pipeline(model, faces=faces))


@image_command(app, default_name="{stem}_inpainted", tile_options=False)
def inpaint(
    inputs: InputsArgument,
    mask: Annotated[str | None, typer.Option(
        "--mask", help="White (above 50% grey) = fill, black = keep: one mask for every input, a folder of "
        "masks named like the inputs, a template such as '{stem}_mask.png' (beside each input), or alpha "
        "(fill the input's transparent pixels).", show_default=False)] = None,
    box: Annotated[list[str] | None, typer.Option(
        "--box", help="A rectangle x,y,w,h to fill, no mask file needed; repeat for several (added to --mask).",
        show_default=False)] = None,
    invert_mask: Annotated[bool, typer.Option("--invert-mask", help="The mask file is black = fill.")] = False,
    resize_mask: Annotated[bool, typer.Option(
        "--resize-mask", help="Resize a mask of another size to its image (else that image fails).")] = False,
    dilate: Annotated[int, typer.Option("--dilate", min=0, help="Grow the hole by N pixels.")] = 0,
    feather: Annotated[int, typer.Option(
        "--feather", min=0, help="Blend the fill back over an N-pixel band around the hole.")] = 0,
    strategy: Annotated[str, typer.Option(
        "--strategy", help="crop: fill each hole in a crop around it (any photo size); resize: the whole image "
        "shrunk to the model's working size; full: the whole image as it is.")] = "crop",
    model: Annotated[str, typer.Option(
        "--model", "-m", help="imgan-inpaint (built in), telea or ns (OpenCV, no weights), migan-512-places2, "
        "lama-big (downloaded), or a .safetensors/.pth/.pt file (imgan train inpaint export).")] = "imgan-inpaint",
    *,
    run: ImageRun,
) -> int:
    """Fill masked regions of images with a GAN (or OpenCV's Telea / Navier-Stokes).

    Pixels outside the grown, feathered hole are kept bit for bit (in a lossless output format;
    a JPEG is encoded again); alpha, 16-bit depth, ICC and EXIF are kept. A mask of another size
    than its image is an error (--resize-mask resizes it); an empty mask gives the image back
    unchanged with a warning. Default output: [b]{stem}_inpainted.{ext}[/] beside the input.
    """
    from imgan.masks import parse_box
    from imgan.tasks import inpaint as task

    boxes = tuple(parse_box(text) for text in box or ())
    return run(inputs, task.pipeline(model, mask=mask, boxes=boxes, invert_mask=invert_mask, resize_mask=resize_mask,
                                     dilate=dilate, feather=feather, strategy=strategy))


@app.command("text2img")
def text2img(
    captions: Annotated[list[str] | None, typer.Argument(
        help="Captions ('a handwritten 3 in yellow on black'), or '-' to read them from stdin, one a line.",
        show_default=False)] = None,
    captions_file: Annotated[str | None, typer.Option(
        "--captions", help="A file of captions, one a line ('-': stdin).", show_default=False)] = None,
    count: Annotated[int, typer.Option("--n", "-n", min=1, max=256, help="Pictures per caption.")] = 4,
    seed: Annotated[int | None, typer.Option(
        "--seed", min=0, help="Picture k of every caption comes from seed + k: the same seed gives the same "
        "pictures on any device (default: a random seed, logged).", show_default=False)] = None,
    truncation: Annotated[float | None, typer.Option(
        "--truncation", min=0.0, max=1.0, help="Scale of the noise, 0..1: lower is more typical, less varied "
        "(default: the model's own; DF-GAN 0.88, imgan's 1).", show_default=False)] = None,
    size: Annotated[int | None, typer.Option(
        "--size", min=8, max=2048, help="Side of the pictures in pixels (default: the model's own; other sizes "
        "are resized).", show_default=False)] = None,
    grid: Annotated[bool, typer.Option(
        "--grid", help="One contact sheet per caption, the caption written under it.")] = False,
    strict: Annotated[bool, typer.Option(
        "--strict", help="A caption with words the model does not know fails (exit 1); the others go on.")] = False,
    model: Annotated[str, typer.Option(
        "--model", "-m", help="A registry name (imgan models list --task text2img), a model added with imgan models "
        "add (dfgan-bird, dfgan-coco), or a .safetensors file (imgan train export).")] = "imgan-text2img",
    out: Annotated[str | None, typer.Option(
        "--out", "-o", help="A folder, '-' for stdout (one picture), or a template with {index} {slug} {seed} {n} "
        "{model}. Default: {slug}_{seed}.png, with --grid {slug}.png.", rich_help_panel="Output",
        show_default=False)] = None,
    overwrite: OverwriteOption = False,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    quiet: QuietOption = False,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Draw pictures from captions with a text-to-image GAN.

    The default, [b]imgan-text2img[/], ships with imgan: handwritten digits and Fashion-MNIST
    clothes in 8 colours on black, white or grey ('a blue sneaker', 'the digit seven in red').
    Words a model does not know are listed on stderr.
    """
    from imgan.console import download_progress, report_records, stdout_bytes

    setup_logging(quiet=quiet, debug=debug)
    with reporting(debug=debug):
        from imgan.tasks import text2img as task

        if as_json and out == "-":
            raise UsageError("--json prints records on stdout; write the picture to a file with --out")
        texts = list(captions or [])
        if captions_file is not None or "-" in texts:
            source = captions_file or "-"
            read = sys.stdin.read() if source == "-" else _read_text(source)
            texts = [text for text in texts if text != "-"] + task.read_captions(read)
        request = task.Request(captions=tuple(texts), model=model, count=count, seed=seed, truncation=truncation,
                               size=size, grid=grid, strict=strict, out=out, overwrite=overwrite, device=device,
                               precision=precision)
        task.check_request(request)
        with download_progress(quiet=quiet) as progress:
            code = report_records(task.run(request, stdout=stdout_bytes, progress=progress), as_json=as_json,
                                  quiet=quiet)
    raise typer.Exit(code)


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--captions {path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from exc


SERVE_EXTRA = ("fastapi", "starlette", "uvicorn", "python_multipart", "multipart", "anyio")


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(
        "--host", help="Address to listen on. Anything but loopback (127.0.0.1, ::1, localhost) requires the token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free port).")] = 7860,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    token: Annotated[str | None, typer.Option(
        "--token", help="Require this token from every client (default: none on loopback, a random one printed "
        "with the address on any other host).", show_default=False)] = None,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in a web browser.")] = False,
    max_pixels: MaxPixelsOption = MAX_PIXELS,
    max_upload_mb: Annotated[int, typer.Option(
        "--max-upload-mb", min=1, help="Largest uploaded file in MB.", rich_help_panel="Input")] = 50,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Serve a local web page for every command: upload, run, compare before/after, download.

    Jobs run one at a time per device, in order; results stay in a temporary folder while it runs.
    Needs the serve extra: [b]pip install "imgan\\[serve]"[/].
    """
    setup_logging(quiet=quiet, debug=debug)
    with reporting(debug=debug):
        try:
            from imgan.serve.app import serve as run_server
        except ImportError as error:
            if (error.name or "").split(".")[0] not in SERVE_EXTRA:
                raise
            raise ImganError('imgan serve needs the serve extra: pip install "imgan[serve]"') from None
        from imgan.serve.settings import ServeSettings

        settings = ServeSettings(host=host, port=port, device=device, precision=precision, token=token,
                                 max_pixels=max_pixels, max_upload_bytes=max_upload_mb * 2**20)
        run_server(settings, open_browser=open_browser, ready=lambda url: out.print(
            f"imgan serving on {url}", markup=False, highlight=False, soft_wrap=True))


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


@models_app.command("add")
def models_add(
    name: Annotated[str, typer.Argument(help="The name to use it by (dfgan-bird and dfgan-coco are known).",
                                        show_default=False)],
    files: Annotated[list[str], typer.Argument(
        help="The downloaded files: a DF-GAN checkpoint, its DAMSM text encoder and its vocabulary "
        "(captions_DAMSM.pickle or JSON); or one checkpoint of a family imgan knows.", show_default=False)],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a model added under this name.")] = False,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Register weights you downloaded yourself (DF-GAN's are on Google Drive only).

    Each file is recognised from its content and checked against the architecture; the
    weights are stored as one safetensors file in $IMGAN_HOME/models with their sha256, and
    the vocabulary pickle is read once, with an unpickler that refuses code. Then use
    [b]--model NAME[/].
    """
    from imgan.user_models import add_model

    setup_logging(quiet=quiet)
    with reporting(debug=False):
        record = add_model(name, files, overwrite=overwrite)
    if as_json:
        print_json(record)
    else:
        out.print(record["local"], markup=False)


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
    task: Annotated[str, typer.Option(
        "--task", help="upscale, or inpaint: score --model, Telea and Navier-Stokes inside seeded holes "
        "(imgan.tasks.inpaint_eval).")] = "upscale",
    generated: Annotated[str | None, typer.Option(
        "--generated", help="Folder of generated images: FID and KID against --real.", show_default=False,
        rich_help_panel="Generators")] = None,
    real: Annotated[str | None, typer.Option(
        "--real", help="Folder of real images, or a statistics file (.npz) saved by --save-stats or pytorch-fid.",
        show_default=False, rich_help_panel="Generators")] = None,
    save_stats: Annotated[str | None, typer.Option(
        "--save-stats", help="Save the statistics (and features, for KID) of the --real folder to this .npz.",
        show_default=False, rich_help_panel="Generators")] = None,
    features: Annotated[str, typer.Option(
        "--features", help="Feature extractor: inception-v3-fid (pytorch-fid's FID Inception), "
        "imgan-text2img-classifier (32 px glyphs), or a classifier .safetensors.",
        rich_help_panel="Generators")] = "inception-v3-fid",
    tile: TileOption = "auto",
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    quiet: QuietOption = False,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Score super-resolution (PSNR and SSIM on luma, BT.601, as SR papers do) or inpainting.

    [b]--pred DIR --ref DIR[/]  score results against same-size references.
    [b]--model NAME --data DIR[/]  run the held-out protocol: box-downscale each
    image to at most 1536 px, centre-crop 512, shrink by the scale (Pillow
    bicubic), then score the model and a bicubic upscale on the crop with a
    border of the scale shaved off.
    [b]--task inpaint --model NAME --data DIR[/]  box-downscale each photo to at
    most 1024 px, centre-crop 256, cut a hole seeded by the photo's name
    (strokes and boxes, 5-25%), and score the model, Telea and Navier-Stokes
    inside it: PSNR and SSIM on RGB.
    [b]--generated DIR --real DIR|STATS.npz[/]  FID and KID of generated images
    (Inception-v3 pool3 features after a 299x299 bilinear resize, as pytorch-fid);
    [b]--real DIR --save-stats FILE[/] saves the real side once.
    """
    from imgan.console import report_scores

    setup_logging(quiet=quiet, debug=debug)
    with reporting(debug=debug):
        from imgan.tasks import evaluate

        if task not in ("upscale", "inpaint"):
            raise UsageError(f"--task {task!r}: use upscale or inpaint")
        if generated is not None or real is not None or save_stats is not None:
            if pred is not None or ref is not None or model is not None or data is not None:
                raise UsageError("--generated/--real score a generator; leave out --pred, --ref, --model and --data")
            code = _fid(generated, real, save_stats=save_stats, features=features, device=device, quiet=quiet,
                        as_json=as_json)
        elif task == "inpaint":
            if model is None or data is None or pred is not None or ref is not None:
                raise UsageError("--task inpaint scores a model: give --model NAME --data DIR")
            if shave or scale is not None or tile != "auto":
                raise UsageError("--shave, --scale and --tile are for super-resolution; leave them out")
            from imgan.tasks import inpaint_eval

            fillers, label = _inpaint_fillers(model, device=device, precision=precision, quiet=quiet)
            results = inpaint_eval.score_models(fillers, evaluate.list_images(data))
            groups = {name: name for name in inpaint_eval.BASELINES} | {"model": label}
            code = report_scores(results, groups=groups, as_json=as_json)
        elif pred is not None and ref is not None and model is None and data is None:
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


def _fid(generated: str | None, real: str | None, *, save_stats: str | None, features: str, device: str,
         quiet: bool, as_json: bool) -> int:
    """``eval --generated --real``: FID and KID, or with --save-stats the real side's statistics."""
    from imgan import fid
    from imgan.console import download_progress, report_distances
    from imgan.engine import parse_devices

    if real is None:
        raise UsageError("--real DIR|STATS.npz is required: the images (or statistics) to compare against")
    if generated is None and save_stats is None:
        raise UsageError("give --generated DIR to score, or --save-stats FILE to save the statistics of --real")
    devices = parse_devices(device)
    if len(devices) > 1:
        raise UsageError(f"--device {device}: eval runs on one device; name one")
    with download_progress(quiet=quiet) as progress:
        extractor = fid.load_extractor(features, device=devices[0], progress=progress)
    return report_distances(fid.compare(generated, real, extractor=extractor, save=save_stats), as_json=as_json)


def _inpaint_fillers(model: str, *, device: str, precision: str, quiet: bool) -> tuple[dict, str]:
    """The fill functions ``eval --task inpaint`` scores (the baselines, then the model) and the model's label."""
    from imgan.console import download_progress
    from imgan.engine import Engine, parse_devices
    from imgan.models import load_model
    from imgan.tasks.inpaint_eval import BASELINES, engine_filler

    devices = parse_devices(device)
    if len(devices) > 1:
        raise UsageError(f"--device {device}: eval runs on one device; name one")
    fillers = {}
    with download_progress(quiet=quiet) as progress:
        for column, name in [*((baseline, baseline) for baseline in BASELINES), ("model", model)]:
            descriptor = load_model(name, task="inpaint", progress=progress)
            fillers[column] = engine_filler(Engine(descriptor, devices[0], precision=precision, tile_size=0))
    return fillers, descriptor.name


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
