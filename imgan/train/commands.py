"""``imgan train``: one command per training family, generated from one option table, plus ``export``.

Each family's command shows the flags in ``Family.options``. Every training option defaults to
None here, so that a flag overrides ``--config`` (or a resumed run's config.toml) only when it is
given. ``imgan train --resume RUN_DIR`` continues any run without naming its family. Nothing here
imports torch until a command runs.
"""

from __future__ import annotations

import importlib
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
    help="Train GANs on folders of images: super-resolution (srresnet, srgan, esrgan, realesrgan), unpaired "
    "translation (cyclegan, aging) or paired translation (pix2pix). imgan train --resume RUN_DIR continues a "
    "run; imgan train export RUN_DIR writes the model for imgan upscale, stylize, age or sketch2photo.",
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
    help_for: tuple[tuple[str, str], ...] = ()
    """(Kind name, help) where the option means something more specific to the families of that kind."""

    def help_text(self, family: Family | None) -> str:
        return dict(self.help_for).get(family.kind.name, self.help) if family else self.help


def _translation(text: str) -> tuple[tuple[str, str], ...]:
    """``help_for`` of an option that reads ``text`` for both translation kinds."""
    return (("unpaired", text), ("paired", text))


_DATA, _MODEL, _OPTIM, _LOSS, _RUN = "Data", "Model", "Optimisation", "Losses", "Run"
_FLAGS: tuple[_Flag, ...] = (
    _Flag("data", str, "Folder of training images (searched recursively).", _DATA,
          (("paired", "Folder of side-by-side A|B images (pix2pix's aligned datasets)."),)),
    _Flag("data_a", str, "Folder of domain A images (the exported generator translates A into B).", _DATA,
          (("paired", "Folder of input images, paired by file name with those of --data-b."),)),
    _Flag("data_b", str, "Folder of domain B images.", _DATA,
          (("paired", "Folder of target images, named like those of --data-a."),)),
    _Flag("data_young", str, "Folder of young faces (the exported generator ages them).", _DATA),
    _Flag("data_old", str, "Folder of old faces.", _DATA),
    _Flag("edges_from", str, "Folder of photos: learn each photo from its sketch (made once by imgan.edges).", _DATA),
    _Flag("direction", str, "AtoB: translate the first image of each pair into the second; BtoA: the reverse.",
          _DATA),
    _Flag("val", str, "Folder of validation images (default: the first 4 training images).", _DATA,
          (("paired", "Held-out pairs laid out like the training data; for --data-a/--data-b, in subfolders A "
            "and B (default: the first 4 training pairs)."),)),
    _Flag("load_size", int, "Resize images to this square size before cropping (CycleGAN's --load_size).", _DATA),
    _Flag("crop", int, "Side of the high-resolution training crops.", _DATA,
          _translation("Side of the training crops.")),
    _Flag("degradation", str, "How LR inputs are made: bicubic, realesrgan or light.", _DATA),
    _Flag("max_side", int, "Shrink training images larger than this on load (0: never).", _DATA),
    _Flag("batch_size", int, "Crops per micro-batch and process.", _DATA),
    _Flag("accum", int, "Micro-batches per step (gradient accumulation).", _DATA),
    _Flag("workers", int, "DataLoader worker processes (0: load in the main process).", _DATA),
    _Flag("arch", str, "Generator: rrdbnet, srvgg or srresnet.", _MODEL),
    _Flag("blocks", int, "Residual blocks (rrdbnet, srresnet) or body convolutions (srvgg).", _MODEL,
          (("unpaired", "Residual blocks of the ResNet generators (CycleGAN's resnet_9blocks: 9)."),)),
    _Flag("downs", int, "Downsamplings of the U-Net (upstream unet_256: 8, unet_128: 7); crops must be multiples "
          "of 2**downs.", _MODEL),
    _Flag("features", int, "Feature channels of the generator and discriminator (CycleGAN's ngf and ndf).", _MODEL),
    _Flag("scale", int, "Upscaling factor: 2, 3 or 4 (rrdbnet: 2 or 4).", _MODEL),
    _Flag("steps", int, "Total optimisation steps, pretraining included.", _OPTIM),
    _Flag("decay_steps", int, "Last steps, over which the learning rate falls linearly towards 0 (CycleGAN's "
          "n_epochs_decay, in steps).", _OPTIM),
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
    _Flag("pixel_weight", float, "Weight of the pixel loss (in the GAN phase).", _LOSS,
          (("paired", "Weight of the pixel loss (pix2pix's lambda_L1)."),)),
    _Flag("perceptual", float, "Weight of the VGG19 perceptual loss; 0 never loads VGG (offline).", _LOSS),
    _Flag("gan_weight", float, "Weight of the adversarial loss.", _LOSS),
    _Flag("lambda_cycle", float, "Weight of each cycle-consistency L1 loss (CycleGAN's lambda_A and lambda_B).",
          _LOSS),
    _Flag("lambda_identity", float, "Identity L1 weight as a fraction of --lambda-cycle (0: no identity loss).",
          _LOSS),
    _Flag("pool_size", int, "Generated images kept per direction to show the discriminators (0: none).", _LOSS),
    _Flag("out", str, "Run directory (default: runs/<family>-x<scale>).", _RUN,
          _translation("Run directory (default: runs/<family>).")),
    _Flag("val_every", int, "Validate (PSNR/SSIM) every N steps (0: never).", _RUN,
          (("unpaired", "Validate (cycle L1) every N steps (0: never)."),
           ("paired", "Validate (L1, PSNR) every N steps (0: never)."))),
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
            help=flag.help_text(family) + _default_text(family, flag.name), rich_help_panel=flag.panel,
            show_default=False)])
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
    from imgan.console import reporting
    from imgan.console import err, out, setup_logging

    quiet, debug = bool(values.pop("quiet")), bool(values.pop("debug"))
    config_file, resume = values.pop("config", None), values.pop("resume")
    setup_logging(quiet=quiet, debug=debug)
    with reporting(debug=debug):
        from imgan.train.config import prepare_run

        config = prepare_run(family, config_file=config_file, resume=resume, overrides=values)
        from imgan.train.loop import TrainingInterrupted, run

        module, _, name = FAMILIES[config.family].kind.trainer.partition(":")
        trainer = getattr(importlib.import_module(module), name)
        try:
            result = run(config, trainer, resume=resume is not None, show_progress=not quiet)
        except TrainingInterrupted as stopped:
            err.print(str(stopped), markup=False, highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        if result.main:
            out.print(str(result.run_dir), markup=False)


_SUMMARY = (("blocks", "{} blocks"), ("downs", "{} downsamplings"), ("features", "{} features"), ("scale", "x{}"),
            ("steps", "{} steps"), ("batch_size", "batch {}"), ("load_size", "load {}"), ("crop", "crop {}"))
"""The defaults a family's help names, where the option applies to it."""


def _family_command(family: Family) -> Callable[..., None]:
    defaults = family.defaults
    named = [defaults.arch] + [text.format(getattr(defaults, name)) for name, text in _SUMMARY
                               if name in family.options]
    doc = f"{family.summary}\n\nDefaults: {', '.join(named)}."
    parameters = _parameters(family, [flag for flag in _FLAGS if flag.name in family.options], with_config=True)
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
            from imgan.console import reporting
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
    half: Annotated[bool, typer.Option(
        "--half", help="Store the weights in float16: half the file; they run in the precision of --precision.")]
    = False,
    quiet: _QUIET = False,
    debug: _DEBUG = False,
) -> None:
    """Write a run's generator (its EMA weights if it had them) as a model for the --model of its imgan task."""
    from imgan.console import reporting
    from imgan.console import out, setup_logging

    setup_logging(quiet=quiet, debug=debug)
    with reporting(debug=debug):
        from imgan.train.export import export_run

        folder = run_dir.parent.parent if run_dir.is_file() else run_dir
        target = export_run(run_dir, out_ or folder / "model.safetensors", half=half)
        out.print(str(target), markup=False)
