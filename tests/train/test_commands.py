"""imgan train's commands: flags made from the config declarations, resume rules, usage errors, help, progress."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from imgan.cli import app
from imgan.train.commands import ConsoleReporter, summary
from imgan.train.config import (
    FAMILIES,
    KINDS,
    GanConfig,
    InpaintConfig,
    PairedConfig,
    SRConfig,
    Text2ImgConfig,
    UnpairedConfig,
    options_of,
)

runner = CliRunner()


def train_command(name: str | None = None) -> Any:
    """The click command of ``imgan train NAME`` (None: ``imgan train`` itself)."""
    group = typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]
    return group if name is None else group.commands[name]


def flags_of(command: Any) -> set[str]:
    return {option for param in command.params for option in [*param.opts, *param.secondary_opts]}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_family_command_has_a_flag_for_each_option_it_takes(family: str) -> None:
    declared = {item.name for item, _ in FAMILIES[family].options()}
    command = train_command(family)
    assert {param.name for param in command.params} == declared | {"config", "resume", "quiet", "debug"}
    for param in command.params:
        if param.name in declared:
            assert param.default is None  # a flag overrides the config file only when given


def test_a_family_offers_only_its_own_folders() -> None:
    assert {"--data-young", "--data-old"} <= flags_of(train_command("aging"))
    assert not {"--data-a", "--data-b", "--data"} & flags_of(train_command("aging"))
    assert {"--data", "--data-a", "--data-b", "--edges-from"} <= flags_of(train_command("pix2pix"))


def test_flag_help_comes_from_the_declaration_with_the_family_default() -> None:
    help_of = {param.name: param.help for param in train_command("cyclegan").params}
    assert help_of["lambda_cycle"] == ("Weight of each cycle-consistency L1 loss (CycleGAN's lambda_A and lambda_B). "
                                       "(default: 10.0)")
    assert help_of["betas"].endswith("(default: 0.5,0.999)")
    assert help_of["decay_steps"].endswith("(default: half of --steps)")
    assert help_of["ema_warmup"].endswith("(default: on)")
    assert help_of["crop"] == "Side of the training crops. (default: 256)"  # the translation kinds' own help
    sr_help = {param.name: param.help for param in train_command("esrgan").params}
    assert sr_help["crop"] == "Side of the high-resolution training crops. (default: 128)"


def test_a_switch_has_a_flag_for_each_way() -> None:
    warmup = next(param for param in train_command("esrgan").params if param.name == "ema_warmup")
    assert (warmup.opts, warmup.secondary_opts) == (["--ema-warmup"], ["--no-ema-warmup"])


def test_resume_takes_the_run_length_intervals_and_runtime_only() -> None:
    taken = {param.name for param in train_command().params} - {"resume", "quiet", "debug"}
    assert taken == {"steps", "workers", "val_every", "sample_every", "save_every", "log_every", "device",
                     "precision"}
    assert all(param.help.endswith("(default: as the run had it)") for param in train_command().params
               if param.name in taken)


def test_the_options_that_shape_the_networks_are_fixed_for_a_run() -> None:
    fixed = {kind: {item.name for item, rules in options_of(kind) if rules.fixed} for kind in KINDS}
    assert fixed == {SRConfig: {"arch", "blocks", "features", "scale"},
                     UnpairedConfig: {"blocks", "features", "crop", "pool_size"},  # the image pools hold crops
                     PairedConfig: {"downs", "features"},
                     Text2ImgConfig: {"cond_dim", "embedding_dim", "encoder_steps", "features", "max_words",
                                      "noise_dim", "size", "text_encoder", "vocabulary"},
                     GanConfig: {"cond_dim", "encoder_steps", "features", "noise_dim", "size"},
                     InpaintConfig: {"blocks", "features", "gan"}}  # gan: spectral norm or not


def test_each_kind_names_its_trainer() -> None:
    from imgan.train.sr import SRTrainer
    from imgan.train.translation import Pix2PixTrainer, UnpairedTrainer

    assert (SRConfig.trainer(), UnpairedConfig.trainer(), PairedConfig.trainer()) == (
        SRTrainer, UnpairedTrainer, Pix2PixTrainer)
    assert {type(family.defaults) for family in FAMILIES.values()} == set(KINDS)


def test_summary_names_the_family_and_its_telling_defaults() -> None:
    assert summary(FAMILIES["esrgan"]) == ("ESRGAN: RRDBNet, relativistic average GAN (VGG-style D), perceptual + "
                                           "pixel.\n\nDefaults: rrdbnet, 64 features, 23 blocks, x4, 400000 steps, "
                                           "crop 128, batch 16.")
    assert summary(FAMILIES["pix2pix"]).endswith("Defaults: pix2pix, 64 features, 8 downsamplings, 80000 steps, "
                                                 "crop 256, batch 1, load 286.")
    assert train_command("aging").help == summary(FAMILIES["aging"])


@pytest.mark.parametrize(("args", "message"), [
    (["esrgan", "--data", "x", "--scale", "3"], "--scale 3: rrdbnet supports x2 and x4; use --arch srvgg or srresnet"),
    (["srgan", "--data", "x", "--steps", "0"], "--steps 0: must be at least 1"),
    (["cyclegan", "--data-a", "x", "--data-b", "y", "--optimizer", "sgd"], "--optimizer 'sgd': use one of adam, adamw"),
    (["--resume", "nowhere"], "--resume nowhere: no such folder"),
    (["--steps", "3", "esrgan", "--data", "x"], "put the options after the command: imgan train esrgan"),
])
def test_usage_errors_exit_2_with_one_line(args: list[str], message: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


def test_resume_refuses_to_change_what_shapes_the_networks(tmp_path: Path) -> None:
    from imgan.train.config import prepare_run, save_config

    run_dir = tmp_path / "run"
    save_config(prepare_run("cyclegan", config_file=None, resume=None,
                            overrides={"data_a": "a", "data_b": "b", "out": str(run_dir)}), run_dir / "config.toml")
    result = runner.invoke(app, ["train", "cyclegan", "--resume", str(run_dir), "--pool-size", "3"])
    assert result.exit_code == 2
    assert "--pool-size cannot change when resuming" in result.stderr


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def progress_log() -> list[str]:
    handler, logger = _Lines(), logging.getLogger("imgan.train.progress")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(level)


def _report_a_run(reporter: ConsoleReporter) -> None:
    with reporter:
        reporter.started(start=2, total=4)
        reporter.step(3, speed=2.0, losses=None)
        reporter.step(4, speed=2.0, losses={"l_pix": 0.5, "l_gan": 0.25})
        reporter.validated(4, {"psnr": 21.5})
        reporter.finished(4, Path("run/checkpoints/step_0000004.pt"))


def test_progress_off_a_terminal_is_log_lines(monkeypatch: pytest.MonkeyPatch, progress_log: list[str]) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr("imgan.console.err", Console(file=stderr, force_terminal=False))
    _report_a_run(ConsoleReporter(bar=True))
    assert progress_log == ["step 4/4  l_pix 0.5  l_gan 0.25  2.00 step/s  ETA 0:00:00",
                            "step 4: validation psnr 21.5",
                            f"finished 4 steps; checkpoint {Path('run/checkpoints/step_0000004.pt')}"]
    assert "━" not in stderr.getvalue()  # no bar


def test_progress_on_a_terminal_is_a_bar(monkeypatch: pytest.MonkeyPatch, progress_log: list[str]) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr("imgan.console.err", Console(file=stderr, force_terminal=True, width=120))
    _report_a_run(ConsoleReporter(bar=True))
    assert "━" in stderr.getvalue() and "4/4" in stderr.getvalue() and "l_pix 0.5  l_gan 0.25" in stderr.getvalue()
    assert not any(line.startswith("step 4/4") for line in progress_log)  # the bar shows the losses
    assert progress_log[-1].startswith("finished 4 steps")


def test_a_slow_run_off_a_terminal_still_says_where_it_is(caplog: pytest.LogCaptureFixture) -> None:
    from imgan.train.progress import LogReporter

    now = [0.0]
    reporter = LogReporter(interval=30.0, clock=lambda: now[0])
    reporter.started(start=0, total=1000)
    with caplog.at_level("INFO", logger="imgan.train.progress"):
        for step in range(1, 11):
            now[0] += 10.0  # 10 s a step, losses logged every 100 steps only
            reporter.step(step, speed=0.1, losses=None)
    lines = [record.getMessage() for record in caplog.records]
    assert lines == ["step 3/1000  0.10 step/s  ETA 2:46:10", "step 6/1000  0.10 step/s  ETA 2:45:40",
                     "step 9/1000  0.10 step/s  ETA 2:45:10"]


def test_loader_workers_default_to_the_cores_up_to_four() -> None:
    import os

    from imgan.train.config import defaults_for, resolve

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    data = {"data": "photos"}
    assert resolve(defaults_for("srresnet"), {}, data).workers == min(4, cores)
    assert resolve(defaults_for("srresnet"), {}, {**data, "workers": 3}).workers == 3
