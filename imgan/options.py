"""Command-line options shared by commands, declared once, and ``image_command``, which adds them.

An image command declares only its own options and returns ``run(inputs, Pipeline(...))``;
``image_command`` gives it the output and runtime options, logging, error reporting and the
exit code. Nothing here imports torch.
"""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from imgan.console import download_progress, report_outcomes, reporting, setup_logging, stdout_bytes, tile_bars

if TYPE_CHECKING:
    from imgan.batch import ImageOptions, Pipeline

MAX_PIXELS = 178_956_970  # Pillow's own decompression-bomb limit

DeviceOption = Annotated[str, typer.Option(
    "--device", help="auto, cpu, cuda, cuda:N, mps, or a comma list (cuda:0,cuda:1) to spread files.",
    rich_help_panel="Runtime")]
PrecisionOption = Annotated[str, typer.Option(
    "--precision", help="auto (fp32 on CPU, fp16 on GPU), fp32 (true fp32: TF32 off on CUDA), fp16 or bf16.",
    rich_help_panel="Runtime")]
QuietOption = Annotated[bool, typer.Option(
    "--quiet", "-q", help="No progress or info messages; errors still go to stderr.", rich_help_panel="Runtime")]
JsonOption = Annotated[bool, typer.Option(
    "--json", help="One JSON object per output on stdout, for scripts.", rich_help_panel="Runtime")]
DebugOption = Annotated[bool, typer.Option(
    "--debug", help="Show tracebacks and debug logs.", rich_help_panel="Runtime")]
TileOption = Annotated[str, typer.Option(
    "--tile", help="Tile size in input pixels: auto (from free memory), 0 (whole image) or N.",
    rich_help_panel="Runtime")]
BatchOption = Annotated[int | None, typer.Option(
    "--batch-size", min=1, help="Tiles per forward pass (default: 1 on CPU, 4 on GPU).", rich_help_panel="Runtime")]
MaxPixelsOption = Annotated[int, typer.Option(
    "--max-pixels", min=0, help="Refuse inputs larger than this many pixels (decompression-bomb guard); "
    "0 = no limit.", rich_help_panel="Input")]
FormatOption = Annotated[str, typer.Option(
    "--format", "-f", help="png, jpg, webp, tiff, bmp, or same (as the input).", rich_help_panel="Output")]
QualityOption = Annotated[int | None, typer.Option(
    "--quality", min=1, max=100, help="JPEG/WebP quality (default 95).", rich_help_panel="Output")]
SkipOption = Annotated[bool, typer.Option(
    "--skip-existing", help="Skip inputs whose output already exists.", rich_help_panel="Output")]
OverwriteOption = Annotated[bool, typer.Option(
    "--overwrite", help="Replace existing outputs (never an input file).", rich_help_panel="Output")]
DryRunOption = Annotated[bool, typer.Option(
    "--dry-run", help="List input -> output for every input and stop: nothing is loaded, read or written.",
    rich_help_panel="Output")]
InputsArgument = Annotated[list[str], typer.Argument(
    help="Image files, directories, globs ('photos/**/*.jpg'), or '-' for stdin.", show_default=False)]


def out_option(default_name: str) -> Any:
    """``--out``, whose help names the command's default output name."""
    return Annotated[str | None, typer.Option(
        "--out", "-o", help="A directory, '-' for stdout, or a template with {stem} {ext} {scale} {model} "
        f"{{relpath}} {{dir}}. Default: {{dir}}/{default_name}.{{ext}} (stdout for stdin).",
        rich_help_panel="Output")]


@dataclass(frozen=True)
class ImageRun:
    """Runs a command's pipeline over its inputs with the shared options; gives the exit code."""

    options: ImageOptions
    quiet: bool = False
    debug: bool = False

    def __call__(self, inputs: list[str], pipeline: Pipeline) -> int:
        from imgan.batch import process_images

        tiles = tile_bars(quiet=self.quiet, as_json=self.options.as_json)
        with download_progress(quiet=self.quiet) as progress:
            batch = process_images(inputs, self.options, pipeline, stdin=sys.stdin.buffer.read,
                                   stdout=stdout_bytes, stdout_is_terminal=sys.stdout.isatty(),
                                   download_progress=progress, tile_progress=tiles)
        return report_outcomes(batch.outcomes, total=batch.total, as_json=self.options.as_json,
                               quiet=self.quiet, debug=self.debug, tiles=tiles)


def _shared_parameters(default_name: str, *, tile_options: bool) -> list[inspect.Parameter]:
    """The output and runtime options, as keyword-only parameters (name, type, default)."""
    table: list[tuple[str, Any, Any]] = [
        ("out_", out_option(default_name), None),
        ("format_", FormatOption, "same"),
        ("quality", QualityOption, None),
        ("skip_existing", SkipOption, False),
        ("overwrite", OverwriteOption, False),
        ("dry_run", DryRunOption, False),
        ("max_pixels", MaxPixelsOption, MAX_PIXELS),
    ]
    if tile_options:
        table += [("tile", TileOption, "auto"), ("batch_size", BatchOption, None)]
    table += [
        ("device", DeviceOption, "auto"),
        ("precision", PrecisionOption, "auto"),
        ("quiet", QuietOption, False),
        ("as_json", JsonOption, False),
        ("debug", DebugOption, False),
    ]
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
            for name, annotation, default in table]


def image_command(
    app: typer.Typer, *, default_name: str = "{stem}_x{scale}", tile_options: bool = True
) -> Callable[[Callable[..., int]], Callable[..., None]]:
    """Register ``function(inputs, <own options>, *, run: ImageRun) -> int`` as an image command.

    The command gets the shared output and runtime options (``tile_options`` False leaves out
    ``--tile`` and ``--batch-size``), and
    ``default_name`` is its default output name in the ``--out`` help.
    """

    def register(function: Callable[..., int]) -> Callable[..., None]:
        hints = typing.get_type_hints(function, include_extras=True)
        own = [parameter.replace(annotation=hints[parameter.name])
               for parameter in inspect.signature(function).parameters.values() if parameter.name != "run"]
        shared = _shared_parameters(default_name, tile_options=tile_options)

        def command(**values: Any) -> None:
            from imgan.batch import ImageOptions, OutputOptions

            quiet, debug = values.pop("quiet"), values.pop("debug")
            output = OutputOptions(
                out=values.pop("out_"), format=values.pop("format_"), quality=values.pop("quality"),
                skip_existing=values.pop("skip_existing"), overwrite=values.pop("overwrite"))
            options = ImageOptions(
                output=output, max_pixels=values.pop("max_pixels"), device=values.pop("device"),
                precision=values.pop("precision"), tile=values.pop("tile", "auto"),
                batch_size=values.pop("batch_size", None), as_json=values.pop("as_json"),
                dry_run=values.pop("dry_run"))
            setup_logging(quiet=quiet, debug=debug)
            with reporting(debug=debug):
                code = function(**values, run=ImageRun(options, quiet=quiet, debug=debug))
            raise typer.Exit(code)

        command.__name__ = function.__name__
        command.__qualname__ = function.__qualname__
        command.__doc__ = function.__doc__
        command.__module__ = function.__module__
        command.__signature__ = inspect.Signature([*own, *shared])  # type: ignore[attr-defined]
        command.__annotations__ = {parameter.name: parameter.annotation for parameter in (*own, *shared)}
        app.command()(command)
        return command

    return register
