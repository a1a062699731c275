"""imgan train <family>: tiny CPU runs end to end, exact resume, Ctrl-C, the perceptual path."""

from __future__ import annotations

import csv
import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from imgan.cli import app
from imgan.train.checkpoint import load_checkpoint

runner = CliRunner()

TINY = ("--features", "8", "--blocks", "1", "--crop", "32", "--batch-size", "2", "--workers", "0",
        "--perceptual", "0", "--log-every", "1", "--val-every", "3", "--sample-every", "3",
        "--save-every", "3", "--device", "cpu", "--quiet")


def make_images(folder: Path, count: int = 3, size: tuple[int, int] = (48, 40)) -> Path:
    """Smooth random RGB images (noise upsampled), different per file."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        coarse = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize(size, Image.BICUBIC).save(folder / f"img{index}.png")
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_images(tmp_path_factory.mktemp("images"))


def train(family: str, data: Path, out: Path, *extra: str):  # noqa: ANN201 - click Result
    args = ["train", family, "--data", str(data), "--out", str(out), *TINY, *extra]
    return runner.invoke(app, args)


def resume(out: Path, *extra: str):  # noqa: ANN201 - click Result
    return runner.invoke(app, ["train", "--resume", str(out), "--quiet", *extra])


def logged(run_dir: Path) -> dict[str, list[float]]:
    values: dict[str, list[float]] = {}
    with (run_dir / "metrics.csv").open(newline="") as file:
        for row in csv.DictReader(file):
            values.setdefault(row["key"], []).append(float(row["value"]))
    return values


def weights(run_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    return load_checkpoint(run_dir)["modules"]


FAMILY_CASES = {
    "srresnet": ("--arch", "srresnet"),
    "srgan": ("--pretrain-steps", "1"),
    "esrgan": ("--scale", "2"),
    "realesrgan": ("--arch", "rrdbnet"),
    "realesrgan-srvgg": ("--arch", "srvgg", "--degradation", "light"),
}


@pytest.mark.parametrize("case", list(FAMILY_CASES))
def test_each_family_trains_three_finite_steps(case: str, data_dir: Path, tmp_path: Path) -> None:
    family = case.split("-")[0]
    run_dir = tmp_path / "run"
    result = train(family, data_dir, run_dir, "--steps", "3", *FAMILY_CASES[case])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(run_dir)
    for name in ("config.toml", "metrics.csv", "checkpoints/step_0000003.pt", "checkpoints/latest.pt",
                 "samples/step_0000003.png"):
        assert (run_dir / name).is_file(), name
    values = logged(run_dir)
    losses = {key: series for key, series in values.items() if key.startswith("train/")}
    assert "train/l_pix" in losses
    if family != "srresnet":
        assert {"train/l_gan", "train/l_d"} <= set(losses)
    assert all(math.isfinite(v) for series in losses.values() for v in series)
    assert len(values["train/l_pix"]) == 3
    assert values["val/psnr"][0] > 5.0 and 0.0 < values["val/ssim"][0] <= 1.0


def test_sample_grid_shows_input_output_and_target(data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert train("srresnet", data_dir, run_dir, "--steps", "3", "--arch", "srvgg").exit_code == 0
    with Image.open(run_dir / "samples/step_0000003.png") as grid:
        # Validation crops are 40x40 (the images' shorter side): 3 rows of [nearest | output | HR].
        assert grid.size == (3 * 40, 3 * 40)


def test_config_file_values_reach_the_run(data_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text('lr = 0.0005\nschedule = "cosine"\n')
    run_dir = tmp_path / "run"
    result = train("srresnet", data_dir, run_dir, "--steps", "2", "--arch", "srvgg", "--config", str(config))
    assert result.exit_code == 0, result.output
    saved = (run_dir / "config.toml").read_text()
    assert "lr = 0.0005" in saved and 'schedule = "cosine"' in saved
    assert logged(run_dir)["lr/generator"][0] == pytest.approx(0.0005 * 0.5 * (1 + math.cos(math.pi / 2)))


RESUME_CASES = {
    # G, D, EMA; the simplest data path.
    "esrgan-workers0": ("esrgan", ("--workers", "0")),
    # Worker processes, gradient accumulation, and a resume that crosses into the GAN phase.
    "srgan-workers2-accum": ("srgan", ("--workers", "2", "--accum", "2", "--pretrain-steps", "3",
                                       "--arch", "srvgg")),
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resume_continues_exactly_like_an_uninterrupted_run(case: str, data_dir: Path, tmp_path: Path) -> None:
    family, extra = RESUME_CASES[case]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train(family, data_dir, straight, "--steps", "4", *extra).exit_code == 0
    assert train(family, data_dir, split, "--steps", "2", *extra).exit_code == 0
    first_half = weights(split)
    result = resume(split, "--steps", "4")
    assert result.exit_code == 0, result.output
    expected, resumed = weights(straight), weights(split)
    assert set(expected) == {"generator", "generator_ema", "discriminator"}
    for module in expected:
        for key, tensor in expected[module].items():
            assert torch.equal(resumed[module][key], tensor), f"{module}.{key}"
    changed = [key for key, tensor in first_half["generator"].items()
               if not torch.equal(tensor, resumed["generator"][key])]
    assert changed  # the resumed half really trained
    assert load_checkpoint(split)["step"] == 4


def test_resume_rows_in_metrics_are_not_duplicated(data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert train("srresnet", data_dir, run_dir, "--steps", "2", "--arch", "srvgg").exit_code == 0
    assert resume(run_dir, "--steps", "3").exit_code == 0
    assert len(logged(run_dir)["train/l_pix"]) == 3


def test_existing_run_without_resume_is_a_usage_error(data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert train("srresnet", data_dir, run_dir, "--steps", "1", "--arch", "srvgg").exit_code == 0
    again = train("srresnet", data_dir, run_dir, "--steps", "1", "--arch", "srvgg")
    assert again.exit_code == 2
    assert "--resume" in again.stderr and "Traceback" not in again.output


def test_missing_data_folder_is_one_line_exit_1(tmp_path: Path) -> None:
    result = train("srresnet", tmp_path / "nothing", tmp_path / "run", "--steps", "1")
    assert result.exit_code == 1
    assert "no such folder" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_ctrl_c_saves_a_checkpoint_and_exits_with_the_resume_hint(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imgan.train.sr import SRTrainer

    original = SRTrainer.train_step

    def interrupted_at_step_2(self: SRTrainer, batch: list, step: int) -> dict[str, float]:
        if step == 2:
            raise KeyboardInterrupt
        return original(self, batch, step)

    monkeypatch.setattr(SRTrainer, "train_step", interrupted_at_step_2)
    run_dir = tmp_path / "run"
    result = train("esrgan", data_dir, run_dir, "--steps", "5")
    assert result.exit_code != 0
    assert f"interrupted at step 2; resume with imgan train --resume {run_dir}" in result.stderr
    assert load_checkpoint(run_dir)["step"] == 2

    monkeypatch.setattr(SRTrainer, "train_step", original)
    assert resume(run_dir).exit_code == 0
    assert load_checkpoint(run_dir)["step"] == 5


def test_first_ctrl_c_finishes_the_step_and_resumes_exactly(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imgan.train.sr import SRTrainer

    original = SRTrainer.train_step

    def signalled_during_step_1(self: SRTrainer, batch: list, step: int) -> dict[str, float]:
        if step == 1:
            os.kill(os.getpid(), signal.SIGINT)  # what a terminal's Ctrl-C does
        return original(self, batch, step)

    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert train("esrgan", data_dir, straight, "--steps", "4").exit_code == 0
    monkeypatch.setattr(SRTrainer, "train_step", signalled_during_step_1)
    result = train("esrgan", data_dir, stopped, "--steps", "4")
    assert result.exit_code == 130
    assert "interrupted at step 2" in result.stderr
    monkeypatch.setattr(SRTrainer, "train_step", original)
    assert resume(stopped).exit_code == 0
    expected, resumed = weights(straight), weights(stopped)
    assert all(torch.equal(resumed[m][k], t) for m in expected for k, t in expected[m].items())


class TinyPerceptual(nn.Module):
    """Stands in for the VGG19 loss: L1 between the outputs of one random convolution."""

    made_with: dict | None = None

    def __init__(self, *, layer_weights: dict | None = None, criterion: str = "l1") -> None:
        super().__init__()
        TinyPerceptual.made_with = dict(layer_weights or {})
        self.conv = nn.Conv2d(3, 4, 3).requires_grad_(False)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (self.conv(prediction) - self.conv(target)).abs().mean()


def test_perceptual_loss_is_built_with_the_family_layers_and_logged(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("imgan.train.losses.PerceptualLoss", TinyPerceptual)
    run_dir = tmp_path / "run"
    result = train("realesrgan", data_dir, run_dir, "--steps", "2", "--arch", "srvgg", "--perceptual", "1")
    assert result.exit_code == 0, result.output
    assert TinyPerceptual.made_with == {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0,
                                       "conv5_4": 1.0}
    percep = logged(run_dir)["train/l_percep"]
    assert len(percep) == 2 and all(math.isfinite(v) and v > 0 for v in percep)


def test_srgan_that_never_leaves_pretraining_needs_no_vgg(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_vgg(**_: object) -> nn.Module:
        raise AssertionError("the VGG19 perceptual loss was built")

    monkeypatch.setattr("imgan.train.losses.PerceptualLoss", no_vgg)
    run_dir = tmp_path / "run"
    without_perceptual = [arg for index, arg in enumerate(TINY)
                          if "--perceptual" not in TINY[max(0, index - 1) : index + 1]]
    result = runner.invoke(app, ["train", "srgan", "--data", str(data_dir), "--out", str(run_dir),
                                 *without_perceptual, "--steps", "2"])  # srgan pretrains for 100000 steps
    assert result.exit_code == 0, result.output
    assert "perceptual = 1.0" in (run_dir / "config.toml").read_text()
    assert "train/l_percep" not in logged(run_dir)


def test_ema_warms_up_so_that_early_steps_count() -> None:
    from imgan.train.loop import EMA

    start = nn.Linear(1, 1, bias=False)  # trained parameters: a frozen one is copied, not averaged
    with torch.no_grad():
        start.weight.fill_(0.0)
    warm, cold = EMA(start, decay=0.999), EMA(start, decay=0.999, warmup=False)
    with torch.no_grad():
        start.weight.fill_(1.0)
    warm.update(start, step=0)
    cold.update(start, step=0)
    assert warm.module.weight.item() == pytest.approx(0.9)  # decay (1 + 0) / (10 + 0)
    assert cold.module.weight.item() == pytest.approx(0.001)
    assert warm.decay_at(90) == pytest.approx(91 / 100) and warm.decay_at(1_000_000) == 0.999


# Keys the previous version wrote into every SR run's config.toml besides SRConfig's (held at their defaults).
OLD_TRANSLATION_KEYS = {"data_a": "", "data_b": "", "data_young": "", "data_old": "", "edges_from": "",
                        "direction": "AtoB", "downs": 8, "decay_steps": 0, "load_size": 286, "lambda_cycle": 10.0,
                        "lambda_identity": 0.5, "pool_size": 50}


def _as_the_previous_version_wrote_it(run_dir: Path) -> None:
    """Rewrite a run's config.toml in the previous version's flat format, which had no ema_warmup."""
    import json

    from imgan.train.config import load_config

    values = {key: value for key, value in load_config(run_dir / "config.toml").items() if key != "ema_warmup"}
    lines = [f"{key} = {json.dumps(list(value) if isinstance(value, tuple) else value)}"
             for key, value in {**values, **OLD_TRANSLATION_KEYS}.items()]
    (run_dir / "config.toml").write_text("\n".join(lines) + "\n")


def test_a_run_of_the_previous_version_resumes_exactly(data_dir: Path, tmp_path: Path) -> None:
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train("esrgan", data_dir, straight, "--steps", "4", "--no-ema-warmup").exit_code == 0
    assert train("esrgan", data_dir, split, "--steps", "2", "--no-ema-warmup").exit_code == 0
    _as_the_previous_version_wrote_it(split)
    result = resume(split, "--steps", "4")
    assert result.exit_code == 0, result.output
    expected, resumed = weights(straight), weights(split)
    assert all(torch.equal(resumed[m][k], t) for m in expected for k, t in expected[m].items())
    assert "ema_warmup = false" in (split / "config.toml").read_text()
