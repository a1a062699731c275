"""imgan train inpaint: tiny CPU runs (hinge and WGAN-GP), exact resume, export as an inpaint model."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from imgan.cli import app
from imgan.train.checkpoint import load_checkpoint
from tests.train.test_sr_training import logged, make_images, resume, weights

runner = CliRunner()

TINY = ("--features", "4", "--blocks", "1", "--crop", "64", "--batch-size", "2", "--workers", "0", "--log-every", "1",
        "--val-every", "3", "--sample-every", "3", "--save-every", "3", "--device", "cpu", "--quiet")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_images(tmp_path_factory.mktemp("photos"), size=(80, 72))


def train(out: Path, data: Path, *extra: str):  # noqa: ANN201 - click Result
    return runner.invoke(app, ["train", "inpaint", "--data", str(data), "--out", str(out), *TINY, *extra])


@pytest.mark.parametrize("gan", ["hinge", "wgan-gp"])
def test_trains_validates_in_the_hole_and_exports_an_inpaint_model(gan: str, data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = train(run_dir, data, "--steps", "3", "--gan", gan)
    assert result.exit_code == 0, result.output
    values = logged(run_dir)
    expected = {"train/l_hole", "train/l_valid", "train/l_gan", "train/l_d"} | ({"train/l_gp"} if gan == "wgan-gp"
                                                                                  else set())
    assert expected <= set(values) and all(math.isfinite(v) for key in expected for v in values[key])
    assert {"val/psnr", "val/ssim", "val/psnr_telea", "val/ssim_telea"} <= set(values)
    with Image.open(run_dir / "samples/step_0000003.png") as grid:  # 3 rows of [holed | filled | photo]
        assert grid.size == (3 * 72, 3 * 72)  # the protocol's crop of an 80x72 photo: 72 px
    critic = weights(run_dir)["discriminator"]
    assert any(key.endswith("weight_orig") for key in critic) == (gan == "hinge")  # spectral norm for hinge only

    model = tmp_path / "model.safetensors"
    assert runner.invoke(app, ["train", "export", str(run_dir), "--out", str(model)]).exit_code == 0
    from imgan.models import load_model

    descriptor = load_model(str(model), task="inpaint")
    assert (descriptor.arch, descriptor.task, descriptor.in_channels, descriptor.working_size) == (
        "inpaint_ffc", "inpaint", 4, 512)
    image, hole = torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32)
    hole[..., 8:16, 8:16] = 1
    with torch.no_grad():
        out = descriptor(torch.cat([image, hole], dim=1))
    assert torch.equal(out[..., :8, :], image[..., :8, :])  # the photo is kept outside the hole


def test_resume_continues_exactly_like_an_uninterrupted_run(data: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from imgan.train.inpaint import InpaintTrainer

    extra = ("--steps", "4", "--ema", "0.9", "--schedule", "cosine", "--warmup-steps", "1")
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train(straight, data, *extra).exit_code == 0
    original = InpaintTrainer.train_step

    def interrupted_at_step_2(self: InpaintTrainer, batch: list, step: int) -> dict[str, float]:
        if step == 2:
            raise KeyboardInterrupt
        return original(self, batch, step)

    monkeypatch.setattr(InpaintTrainer, "train_step", interrupted_at_step_2)
    assert "interrupted at step 2" in train(split, data, *extra).stderr
    monkeypatch.setattr(InpaintTrainer, "train_step", original)
    result = resume(split)
    assert result.exit_code == 0, result.output
    expected, resumed = weights(straight), weights(split)
    assert set(expected) == {"generator", "discriminator", "generator_ema"}
    for module in expected:
        for key, tensor in expected[module].items():
            assert torch.equal(resumed[module][key], tensor), f"{module}.{key}"
    assert load_checkpoint(split)["step"] == 4
    assert logged(split)["lr/generator"] == logged(straight)["lr/generator"]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_trains_under_torchrun(data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "imgan",
               "train", "inpaint", "--data", str(data), "--out", str(run_dir), *TINY, "--steps", "2"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=180,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert load_checkpoint(run_dir)["step"] == 2  # the loop checked that both ranks' generators agree


@pytest.mark.parametrize(("flags", "problem"), [
    (("--crop", "60"), "--crop 60: must be a multiple of 4 and at least 64"),
    (("--hole-min", "0.3", "--hole-max", "0.2"), "--hole-max 0.2: must be at least --hole-min"),
    (("--gan", "vanilla"), "--gan 'vanilla': use one of hinge, wgan-gp"),
])
def test_options_that_cannot_work_exit_2_naming_the_flag(flags: tuple[str, ...], problem: str, data: Path,
                                                         tmp_path: Path) -> None:
    result = train(tmp_path / "run", data, "--steps", "1", *flags)
    assert result.exit_code == 2 and problem in result.stderr
