"""imgan train cyclegan / pix2pix / aging: tiny CPU runs, exact resume, export, usage errors."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from imgan.cli import app
from imgan.errors import UsageError
from imgan.train.checkpoint import load_checkpoint
from imgan.train.config import defaults_for, load_config, prepare_run, resolve, save_config
from imgan.train.data import sample_generator
from imgan.train.translation import FakeHistory, linear_decay
from tests.train.test_sr_training import logged, make_images, resume, weights

runner = CliRunner()

TINY = ("--features", "8", "--crop", "32", "--load-size", "36", "--decay-steps", "1", "--workers", "0",
        "--log-every", "1", "--val-every", "3", "--sample-every", "3", "--save-every", "3", "--device", "cpu",
        "--quiet")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """a/ and b/ (img0..img2, so also pairs by name), side-by-side/ (A|B images), photos/, unmatched/ (img0..1)."""
    root = tmp_path_factory.mktemp("translation")
    make_images(root / "a")
    make_images(root / "unmatched", count=2)
    make_images(root / "b", size=(40, 48))
    make_images(root / "side-by-side", size=(80, 40))
    make_images(root / "photos", size=(64, 48))
    return root


def train(family: str, out: Path, *extra: str):  # noqa: ANN201 - click Result
    return runner.invoke(app, ["train", family, "--out", str(out), *TINY, *extra])


CASES = {
    "cyclegan": ("cyclegan", "stylize", ("--data-a", "a", "--data-b", "b", "--blocks", "1", "--pool-size", "2")),
    "aging": ("aging", "age", ("--data-young", "a", "--data-old", "b", "--blocks", "1", "--batch-size", "2")),
    "pix2pix-side-by-side": ("pix2pix", "sketch2photo", ("--data", "side-by-side", "--downs", "5")),
    "pix2pix-by-name": ("pix2pix", "sketch2photo", ("--data-a", "a", "--data-b", "b", "--downs", "5",
                                                    "--direction", "BtoA")),
    "pix2pix-edges": ("pix2pix", "sketch2photo", ("--edges-from", "photos", "--downs", "5")),
}
ARCHS = {"cyclegan": "cyclegan", "aging": "aginggan", "pix2pix": "pix2pix"}


def _args(extra: tuple[str, ...], root: Path) -> list[str]:
    """Folder names after --data* / --edges-from flags made absolute under ``root``."""
    return [str(root / value) if index and extra[index - 1].startswith(("--data", "--edges")) else value
            for index, value in enumerate(extra)]


@pytest.mark.parametrize("case", list(CASES))
def test_each_family_trains_exports_and_loads(case: str, data: Path, tmp_path: Path) -> None:
    family, task, extra = CASES[case]
    run_dir = tmp_path / "run"
    result = train(family, run_dir, "--steps", "3", *_args(extra, data))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(run_dir)
    for name in ("config.toml", "metrics.csv", "checkpoints/step_0000003.pt", "samples/step_0000003.png"):
        assert (run_dir / name).is_file(), name
    values = logged(run_dir)
    losses = {key: series for key, series in values.items() if key.startswith("train/")}
    assert {"train/l_gan", "train/l_d"} <= set(losses) and all(len(series) == 3 for series in losses.values())
    assert all(math.isfinite(value) for series in losses.values() for value in series)
    unpaired = family != "pix2pix"
    assert set(k for k in values if k.startswith("val/")) == ({"val/cycle_l1"} if unpaired else {"val/l1", "val/psnr"})
    with Image.open(run_dir / "samples/step_0000003.png") as grid:  # rows of [input | output | target or back]
        assert grid.size == (3 * 32, (6 if unpaired else 3) * 32)

    model = tmp_path / "model.safetensors"
    assert runner.invoke(app, ["train", "export", str(run_dir), "--out", str(model)]).exit_code == 0
    from imgan.models import load_model

    descriptor = load_model(str(model), task=task)
    assert (descriptor.arch, descriptor.task, descriptor.value_range) == (ARCHS[family], task, (-1.0, 1.0))
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert descriptor(image).shape == image.shape


def test_cyclegan_resume_continues_exactly_like_an_uninterrupted_run(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imgan.train.translation import UnpairedTrainer

    # A pool of 2 is full after step 1; the learning rate decays over steps 3 and 4.
    extra = (*_args(CASES["cyclegan"][2], data), "--steps", "4", "--decay-steps", "2", "--batch-size", "2",
             "--ema", "0.9")
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train("cyclegan", straight, *extra).exit_code == 0
    original = UnpairedTrainer.train_step

    def interrupted_at_step_2(self: UnpairedTrainer, batch: list, step: int) -> dict[str, float]:
        if step == 2:
            raise KeyboardInterrupt
        return original(self, batch, step)

    monkeypatch.setattr(UnpairedTrainer, "train_step", interrupted_at_step_2)
    assert "interrupted at step 2" in train("cyclegan", split, *extra).stderr
    monkeypatch.setattr(UnpairedTrainer, "train_step", original)
    result = resume(split)
    assert result.exit_code == 0, result.output
    expected, resumed = weights(straight), weights(split)
    assert set(expected) == {"generator", "generator_ba", "discriminator_a", "discriminator_b", "history_a",
                             "history_b", "generator_ema"}
    for module in expected:
        for key, tensor in expected[module].items():
            assert torch.equal(resumed[module][key], tensor), f"{module}.{key}"
    assert int(expected["history_a"]["count"]) == 2
    assert load_checkpoint(split)["step"] == 4
    assert logged(split)["lr/generator"] == logged(straight)["lr/generator"]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_cyclegan_trains_under_torchrun_with_accumulation(data: Path, tmp_path: Path) -> None:
    """Each generator runs three times per micro-batch under DDP (fake, cycle, identity)."""
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "imgan",
               "train", "cyclegan", "--out", str(run_dir), *TINY, *_args(CASES["cyclegan"][2], data), "--steps", "2",
               "--accum", "2"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=180,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert load_checkpoint(run_dir)["step"] == 2  # the loop checked that both ranks' generators agree


def test_fake_history_fills_then_mixes_old_fakes_and_resumes_from_its_state() -> None:
    history = FakeHistory(2, (1, 1, 1), generator=sample_generator(0, -1))
    first = history(torch.tensor([1.0, 2.0]).view(2, 1, 1, 1))
    assert first.flatten().tolist() == [1.0, 2.0] and int(history.count) == 2
    copy = FakeHistory(2, (1, 1, 1), generator=torch.Generator())
    copy.load_state_dict(history.state_dict())
    shown = [history(torch.full((1, 1, 1, 1), 10.0 + step)).item() for step in range(20)]
    again = [copy(torch.full((1, 1, 1, 1), 10.0 + step)).item() for step in range(20)]
    assert shown == again  # the state dict carries the random stream
    old = [value for step, value in enumerate(shown) if value != 10.0 + step]
    assert 3 <= len(old) <= 17  # odds 1/2 of an older fake
    assert FakeHistory(0, (1, 1, 1), generator=torch.Generator())(first) is first


def test_linear_decay_holds_then_falls_like_cyclegans_policy() -> None:
    assert [linear_decay(step, steps=4, decay_steps=2) for step in range(4)] == pytest.approx([1, 1, 2 / 3, 1 / 3])
    assert [linear_decay(step, steps=3, decay_steps=0) for step in range(3)] == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(("family", "extra", "message"), [
    ("cyclegan", ("--data-a", "a"), "--data-b is required: a folder of domain B images"),
    ("aging", ("--data-young", "a"), "--data-old is required: a folder of old faces"),
    ("cyclegan", ("--data-a", "a", "--data-b", "b", "--crop", "34"), "--crop 34: must be a multiple of 4"),
    ("pix2pix", ("--data", "side-by-side", "--downs", "5", "--crop", "48", "--load-size", "64"),
     "--crop 48: must be a multiple of 32"),
    ("aging", ("--data-young", "a", "--data-old", "b", "--load-size", "30"), "--load-size 30: must be at least"),
    ("pix2pix", ("--data-a", "a", "--downs", "5"), "--data-b is required with --data-a"),
    ("pix2pix", ("--data", "side-by-side", "--edges-from", "photos", "--downs", "5"), "one source of training pairs"),
    ("pix2pix", ("--downs", "5"), "training pairs are required"),
    ("pix2pix", ("--data-a", "a", "--data-b", "unmatched", "--downs", "5"), "have no partner: --data-a img2"),
    ("cyclegan", ("--data-a", "a", "--data-b", "b", "--steps", "10", "--decay-steps", "20"), "--decay-steps 5"),
])
def test_options_that_cannot_work_exit_2_naming_the_flag(
    family: str, extra: tuple[str, ...], message: str, data: Path, tmp_path: Path
) -> None:
    result = train(family, tmp_path / "run", *_args(extra, data))
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_each_command_shows_only_its_own_flags() -> None:
    def help_text(*command: str) -> str:
        result = runner.invoke(app, ["train", *command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0
        return result.stdout

    cyclegan, pix2pix, aging = help_text("cyclegan"), help_text("pix2pix"), help_text("aging")
    assert "--lambda-cycle" in cyclegan and "--pool-size" in cyclegan and "(default: 50)" in cyclegan
    assert not any(flag in cyclegan for flag in ("--scale", "--degradation", "--data-young", "--perceptual"))
    assert "--edges-from" in pix2pix and "--direction" in pix2pix and "--data-young" not in pix2pix
    assert "--data-young" in aging and "--data-a" not in aging and "(default: 306)" in aging
    assert "--lambda-cycle" not in help_text("esrgan")
    assert all(name in help_text() for name in ("cyclegan", "pix2pix", "aging"))


def test_translation_config_round_trips_and_keeps_to_its_options(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    config = resolve(defaults_for("cyclegan"), {}, {"data_a": "x", "data_b": "y", "lambda_identity": 0.1})
    config = replace(config, out=str(tmp_path / "run"))
    save_config(config, tmp_path / "run" / "config.toml")
    assert resolve(defaults_for("srresnet"), load_config(tmp_path / "run" / "config.toml"), {}) == config
    with pytest.raises(UsageError, match="--crop cannot change"):
        prepare_run(None, config_file=None, resume=str(tmp_path / "run"), overrides={"crop": 128})
    with pytest.raises(UsageError, match="esrgan has no --pool-size option"):
        resolve(defaults_for("esrgan"), {"data": "x", "pool_size": 3}, {})
    monkeypatch.chdir(tmp_path)
    aging = prepare_run("aging", config_file=None, resume=None, overrides={"data_young": "y", "data_old": "o"})
    assert Path(aging.out) == Path("runs/aging")


def test_a_short_run_with_default_flags_decays_over_its_second_half(data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    without_decay = [arg for index, arg in enumerate(TINY)
                     if "--decay-steps" not in TINY[max(0, index - 1) : index + 1]]
    result = runner.invoke(app, ["train", "pix2pix", "--out", str(run_dir), *without_decay, "--steps", "4",
                                 *_args(("--edges-from", "photos", "--downs", "5"), data)])
    assert result.exit_code == 0, result.output
    assert "decay_steps = 2" in (run_dir / "config.toml").read_text()
    rates_after_each_step = logged(run_dir)["lr/generator"]  # the rates of steps 2, 3, 4 (and after the last)
    assert rates_after_each_step == pytest.approx([2e-4, 2e-4 * 2 / 3, 2e-4 / 3, 0.0], rel=1e-4)
