"""``imgan train``: one command per training family, its flags read from the family's config kind, plus ``export``.

A family's command offers the options its kind declares (``imgan.train.config``) and its family
takes. Every one defaults to None here, so that a flag overrides ``--config`` (or a resumed run's
config.toml) only when it is given. ``imgan train --resume RUN_DIR`` continues any run without
naming its family and takes the options declared with ``resume=True``. Progress goes to stderr
through ``ConsoleReporter``: a Rich bar on a terminal, log lines otherwise; the run directory
goes to stdout. Nothing here imports torch until a command runs.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import Field
from pathlib import Path
from typing import Annotated, Any

import typer

from imgan.train.config import (
    DATA,
    FAMILIES,
    MODEL,
    OPTIMISATION,
    RUN,
    RUNTIME,
    Family,
    Option,
    RunConfig,
    flag,
    options_of,
)
from imgan.train.progress import LogReporter, format_values

__all__ = ["ConsoleReporter", "train_app"]

train_app = typer.Typer(
    help="Train GANs on folders of images: super-resolution (srresnet, srgan, esrgan, realesrgan), unpaired "
    "translation (cyclegan, aging), paired translation (pix2pix) or inpainting (inpaint). imgan train --resume "
    "RUN_DIR continues a run; imgan train export RUN_DIR writes the model for imgan upscale, stylize, age, "
    "sketch2photo or inpaint.",
    no_args_is_help=True,
    invoke_without_command=True,
)

_CONFIG = Annotated[str | None, typer.Option(
    "--config", "-c", help="TOML file of options (flat keys named like the flags, e.g. batch_size).",
    rich_help_panel=RUN)]
_RESUME = Annotated[str | None, typer.Option(
    "--resume", help="Continue the run in this directory from its latest checkpoint.", rich_help_panel=RUN)]
_QUIET = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or info messages.",
                                      rich_help_panel=RUNTIME)]
_DEBUG = Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.", rich_help_panel=RUNTIME)]


# --------------------------------------------------------------------------- flags from the declarations


def _flag_type(hint: Any) -> type:
    """What the flag parses: tuples are given comma-separated (``0.9,0.99``); ``X | None`` is X."""
    if typing.get_origin(hint) is tuple:
        return str
    return next(arg for arg in typing.get_args(hint) if arg is not type(None)) if typing.get_args(hint) else hint


def _default_text(family: Family | None, item: Field, rules: Option) -> str:
    if family is None:
        return " (default: as the run had it)"
    value = getattr(family.defaults, item.name)
    if value is None and rules.derived is not None:
        value = rules.derived[0]
    elif isinstance(value, bool):
        value = "on" if value else "off"
    elif isinstance(value, tuple):
        value = ",".join(map(str, value)) or "none"
    return f" (default: {value})" if value != "" else ""


def flag_parameters(family: Family | None) -> list[inspect.Parameter]:
    """The option flags of a family's command, or (None) those ``imgan train --resume`` takes."""
    if family is None:
        declared = [(item, rules) for item, rules in options_of(RunConfig) if rules.resume]
        kind: type[RunConfig] = RunConfig
    else:
        declared, kind = family.options(), family.kind
    hints = typing.get_type_hints(kind)
    parameters = []
    for item, rules in declared:
        value_type = _flag_type(hints[item.name])
        names = [f"{flag(item.name)}/--no-{flag(item.name)[2:]}"] if value_type is bool else []
        option = typer.Option(*names, help=rules.help + _default_text(family, item, rules),
                              rich_help_panel=rules.panel, show_default=False)
        parameters.append(inspect.Parameter(item.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                            annotation=Annotated[value_type | None, option]))
    return parameters


_SUMMARY_PANELS = (MODEL, OPTIMISATION, DATA)
"""The order in which a family's help names its defaults: the network, the length, the data."""


def summary(family: Family) -> str:
    """The help of a family's command: what it trains, and the defaults that say most about it."""
    defaults = family.defaults
    ranked = sorted(((_SUMMARY_PANELS.index(rules.panel), rules.summary.format(getattr(defaults, item.name)))
                     for item, rules in family.options() if rules.summary), key=lambda pair: pair[0])
    named = [defaults.arch, *(text for _, text in ranked)]
    return f"{family.summary}\n\nDefaults: {', '.join(named)}."


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


def _keyword(name: str, annotation: Any, default: Any = None) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


# --------------------------------------------------------------------------- running


class ConsoleReporter(LogReporter):
    """Training progress on stderr: a Rich bar when stderr is a terminal and ``bar`` is set, else log lines.

    Use it as a context manager, so that the bar stops however the run ends.
    """

    def __init__(self, *, bar: bool) -> None:
        super().__init__()
        self.wants_bar = bar
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> ConsoleReporter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop()

    def started(self, *, start: int, total: int) -> None:
        from imgan.console import err

        super().started(start=start, total=total)
        if self.wants_bar and err.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[speed]}"), TimeRemainingColumn(),
                                TextColumn("{task.fields[losses]}"), console=err, transient=False)
            self.task = self.bar.add_task("train", total=total, completed=start, speed="", losses="")
            self.bar.start()

    def step(self, step: int, *, speed: float, losses: Mapping[str, float] | None) -> None:
        if self.bar is None:
            super().step(step, speed=speed, losses=losses)
            return
        columns = {"speed": f"{speed:.2f} step/s"}
        if losses is not None:
            columns["losses"] = format_values(losses)
        self.bar.update(self.task, completed=step, **columns)

    def finished(self, step: int, checkpoint: Path | None) -> None:
        self._stop()
        super().finished(step, checkpoint)

    def _stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _train(family: Family | None, values: dict[str, Any]) -> None:
    """Resolve the options, train, and report: run directory on stdout, progress and problems on stderr."""
    from imgan.console import EXIT_INTERRUPTED, err, out, reporting, setup_logging

    quiet, debug = bool(values.pop("quiet")), bool(values.pop("debug"))
    config_file, resume = values.pop("config", None), values.pop("resume")
    setup_logging(quiet=quiet, debug=debug)
    with reporting(debug=debug):
        from imgan.train.config import prepare_run

        config = prepare_run(family.name if family else None, config_file=config_file, resume=resume,
                             overrides=values)
        from imgan.train.loop import TrainingInterrupted, run

        try:
            with ConsoleReporter(bar=not quiet) as reporter:
                result = run(config, type(config).trainer(), resume=resume is not None, reporter=reporter)
        except TrainingInterrupted as stopped:
            err.print(str(stopped), markup=False, highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        if result.main:
            out.print(str(result.run_dir), markup=False)


def _family_command(family: Family) -> Callable[..., None]:
    parameters = [*flag_parameters(family), _keyword("config", _CONFIG), _keyword("resume", _RESUME),
                  _keyword("quiet", _QUIET, False), _keyword("debug", _DEBUG, False)]
    return _command(family.name, summary(family), parameters, lambda values: _train(family, values))


for _family in FAMILIES.values():
    train_app.command(_family.name)(_family_command(_family))


def _resume_callback() -> Callable[..., None]:
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
    parameters = [_keyword("context", typer.Context, inspect.Parameter.empty), *flag_parameters(None),
                  _keyword("resume", _RESUME), _keyword("quiet", _QUIET, False), _keyword("debug", _DEBUG, False)]
    return _command("train", doc, parameters, body)


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
    from imgan.console import out, reporting, setup_logging

    setup_logging(quiet=quiet, debug=debug)
    with reporting(debug=debug):
        from imgan.train.export import export_run

        folder = run_dir.parent.parent if run_dir.is_file() else run_dir
        target = export_run(run_dir, out_ or folder / "model.safetensors", half=half)
        out.print(str(target), markup=False)
