"""``imgan train``: one command per SR family, generated from one option table, plus ``export``.

Every training option defaults to None here, so that a flag overrides ``--config`` (or a resumed
run's config.toml) only when it is given. ``imgan train --resume RUN_DIR`` continues any run
without naming its family. Nothing here imports torch until a command runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from imgan.train.config import FAMILIES, Family

__all__ = ["train_app"]

EXIT_INTERRUPTED = 130

train_app = typer.Typer(
    help="Train super-resolution GANs on a folder of images (imgan train --resume RUN_DIR continues a "
    "run); export the result for imgan upscale.",
    no_args_is_help=True,
    invoke_without_command=True,
)


@dataclass(frozen=True)
class _Flag:
    """One training option: its TrainConfig field, value type, help and help panel."""

    name: str
    kind: type
    help: str
    panel: str


_DATA, _MODEL, _OPTIM, _LOSS, _RUN = "Data", "Model", "Optimisation", "Losses", "Run"
_FLAGS: tuple[_Flag, ...] = (
    _Flag("data", str, "Folder of training images (searched recursively).", _DATA),
    _Flag("val", str, "Folder of validation images (default: the first 4 training images).", _DATA),
    _Flag("crop", int, "Side of the high-resolution training crops.", _DATA),
    _Flag("degradation", str, "How LR inputs are made: bicubic, realesrgan or light.", _DATA),
    _Flag("max_side", int, "Shrink training images larger than this on load (0: never).", _DATA),
    _Flag("batch_size", int, "Crops per micro-batch and process.", _DATA),
    _Flag("accum", int, "Micro-batches per step (gradient accumulation).", _DATA),
    _Flag("workers", int, "DataLoader worker processes (0: load in the main process).", _DATA),
    _Flag("arch", str, "Generator: rrdbnet, srvgg or srresnet.", _MODEL),
    _Flag("blocks", int, "Residual blocks (rrdbnet, srresnet) or body convolutions (srvgg).", _MODEL),
    _Flag("features", int, "Feature channels of the generator and discriminator.", _MODEL),
    _Flag("scale", int, "Upscaling factor: 2, 3 or 4 (rrdbnet: 2 or 4).", _MODEL),
    _Flag("steps", int, "Total optimisation steps, pretraining included.", _OPTIM),
    _Flag("lr", float, "Generator learning rate.", _OPTIM),
    _Flag("lr_d", float, "Discriminator learning rate (0: the same as --lr).", _OPTIM),
    _Flag("optimizer", str, "adam or adamw.", _OPTIM),
    _Flag("betas", str, "Adam betas, such as 0.9,0.99.", _OPTIM),
    _Flag("weight_decay", float, "Weight decay.", _OPTIM),
    _Flag("schedule", str, "Learning-rate schedule: constant, cosine or step.", _OPTIM),
    _Flag("warmup_steps", int, "Steps of linear learning-rate warmup.", _OPTIM),
    _Flag("milestones", str, "Steps where the step schedule multiplies the rate by --gamma, such as "
          "50000,100000.", _OPTIM),
    _Flag("gamma", float, "Factor of the step schedule.", _OPTIM),
    _Flag("ema", float, "Decay of the generator's moving average (0: off).", _OPTIM),
    _Flag("pretrain_steps", int, "Steps with the pixel loss alone before the GAN phase.", _OPTIM),
    _Flag("pixel_loss", str, "l1, l2 (mse) or charbonnier.", _LOSS),
    _Flag("pixel_weight", float, "Weight of the pixel loss (in the GAN phase).", _LOSS),
    _Flag("perceptual", float, "Weight of the VGG19 perceptual loss; 0 never loads VGG (offline).", _LOSS),
    _Flag("gan_weight", float, "Weight of the adversarial loss.", _LOSS),
    _Flag("out", str, "Run directory (default: runs/<family>-x<scale>).", _RUN),
    _Flag("val_every", int, "Validate (PSNR/SSIM) every N steps (0: never).", _RUN),
    _Flag("sample_every", int, "Write a sample grid every N steps (0: never).", _RUN),
    _Flag("save_every", int, "Save a checkpoint every N steps (and at the end).", _RUN),
    _Flag("log_every", int, "Log the losses every N steps.", _RUN),
    _Flag("seed", int, "Seed of the weights and of the data stream.", _RUN),
    _Flag("device", str, "auto, cpu, cuda or mps (several GPUs: torchrun).", "Runtime"),
    _Flag("precision", str, "auto (fp16 mixed precision on CUDA, fp32 on CPU), fp32, fp16 or bf16.", "Runtime"),
)
_RESUME_FLAGS = ("steps", "val_every", "sample_every", "save_every", "log_every", "workers", "device",
                 "precision")
"""Flags ``imgan train --resume RUN_DIR`` takes (the family commands take them all)."""

_FIXED_PARAMETERS: tuple[tuple[str, Any], ...] = (
    ("config", Annotated[str | None, typer.Option(
        "--config", "-c", help="TOML file of options (flat keys named like the flags, e.g. batch_size).",
        rich_help_panel=_RUN)]),
    ("resume", Annotated[str | None, typer.Option(
        "--resume", help="Continue the run in this directory from its latest checkpoint.",
        rich_help_panel=_RUN)]),
)
_QUIET = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or info messages.",
                                      rich_help_panel="Runtime")]
_DEBUG = Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.", rich_help_panel="Runtime")]


def _default_text(family: Family | None, name: str) -> str:
    if family is None:
        return " (default: as the run had it)"
    value = getattr(family.defaults, name)
    if isinstance(value, tuple):
        value = ",".join(map(str, value)) or "none"
    return f" (default: {value})" if value != "" else ""


def _parameters(family: Family | None, flags: Sequence[_Flag], *, with_config: bool) -> list[inspect.Parameter]:
    keyword = inspect.Parameter.KEYWORD_ONLY
    parameters = [
        inspect.Parameter(flag.name, keyword, default=None, annotation=Annotated[flag.kind | None, typer.Option(
            help=flag.help + _default_text(family, flag.name), rich_help_panel=flag.panel, show_default=False)])
        for flag in flags
    ]
    for name, annotation in _FIXED_PARAMETERS:
        if with_config or name == "resume":
            parameters.append(inspect.Parameter(name, keyword, default=None, annotation=annotation))
    parameters.append(inspect.Parameter("quiet", keyword, default=False, annotation=_QUIET))
    parameters.append(inspect.Parameter("debug", keyword, default=False, annotation=_DEBUG))
    return parameters


def _command(name: str, doc: str, parameters: list[inspect.Parameter],
             body: Callable[[dict[str, Any]], None]) -> Callable[..., None]:
    """A function Typer reads as a command with ``parameters``; it hands their values to ``body``."""
    def command(**values: Any) -> None:
        body(values)

    command.__name__ = name
    command.__doc__ = doc
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    return command


def _train(family: str | None, values: dict[str, Any]) -> None:
    """Resolve the options, train, and report: run directory on stdout, problems on stderr."""
    from imgan.cli import reporting
    from imgan.console import err, out, setup_logging

    quiet, debug = bool(values.pop("quiet")), bool(values.pop("debug"))
    config_file, resume = values.pop("config", None), values.pop("resume")
    setup_logging(quiet=quiet, debug=debug)
    with reporting(debug=debug):
        from imgan.train.config import prepare_run

        config = prepare_run(family, config_file=config_file, resume=resume, overrides=values)
        from imgan.train.loop import TrainingInterrupted
        from imgan.train.sr import train_sr

        try:
            result = train_sr(config, resume=resume is not None, show_progress=not quiet)
        except TrainingInterrupted as stopped:
            err.print(str(stopped), markup=False, highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        if result.main:
            out.print(str(result.run_dir), markup=False)


def _family_command(family: Family) -> Callable[..., None]:
    defaults = family.defaults
    doc = (f"{family.summary}\n\nDefaults: {defaults.arch}, {defaults.blocks} blocks, {defaults.features} "
           f"features, x{defaults.scale}, {defaults.steps} steps, batch {defaults.batch_size}, crop {defaults.crop}.")
    parameters = _parameters(family, _FLAGS, with_config=True)
    return _command(family.name, doc, parameters, lambda values: _train(family.name, values))


for _family in FAMILIES.values():
    train_app.command(_family.name)(_family_command(_family))


def _resume_callback() -> Callable[..., None]:
    flags = [flag for flag in _FLAGS if flag.name in _RESUME_FLAGS]

    def body(values: dict[str, Any]) -> None:
        subcommand = values.pop("context").invoked_subcommand
        if subcommand is None:
            _train(None, values)
        elif any(values.values()):
            from imgan.cli import reporting
            from imgan.errors import UsageError

            with reporting(debug=bool(values["debug"])):
                raise UsageError(f"put the options after the command: imgan train {subcommand} ...")

    doc = "Continue a run: imgan train --resume RUN_DIR [--steps N ...]."
    context = inspect.Parameter("context", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
    return _command("train", doc, [context, *_parameters(None, flags, with_config=False)], body)


train_app.callback()(_resume_callback())


@train_app.command("export")
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (its latest checkpoint) or one checkpoint .pt file.",
                                            show_default=False)],
    out_: Annotated[Path | None, typer.Option(
        "--out", "-o", help="The .safetensors file to write (default: RUN_DIR/model.safetensors).")] = None,
    quiet: _QUIET = False,
    debug: _DEBUG = False,
) -> None:
    """Write a run's generator (its EMA weights if it had them) as a model for imgan upscale --model."""
    from imgan.cli import reporting
    from imgan.console import out, setup_logging

    setup_logging(quiet=quiet, debug=debug)
    with reporting(debug=debug):
        from imgan.train.export import export_run

        folder = run_dir.parent.parent if run_dir.is_file() else run_dir
        target = export_run(run_dir, out_ or folder / "model.safetensors")
        out.print(str(target), markup=False)
