"""imgan eval --task inpaint: a fixed, seeded hole per photo, scores inside it, Telea and NS beside the model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from imgan.cli import app
from imgan.metrics import masked_psnr, masked_ssim
from imgan.tasks.inpaint_eval import protocol_item

runner = CliRunner()


def photos(folder: Path) -> Path:
    """Two real photographs (public domain / CC0, from scikit-image) at 300x200 and 2100x1400."""
    from skimage import data

    folder.mkdir()
    Image.fromarray(data.coffee()[:200, :300]).save(folder / "coffee.png")
    Image.fromarray(np.asarray(Image.fromarray(data.astronaut()).resize((2100, 1400)))).save(folder / "astronaut.png")
    return folder


def test_each_photo_gets_its_own_hole_the_same_every_time() -> None:
    image = torch.rand(1, 3, 2100, 1400)
    crop, hole = protocol_item(image, "a")
    assert crop.shape == (1, 3, 256, 256) and hole.shape == (1, 1, 256, 256)  # 1050x700 after halving
    assert torch.equal(protocol_item(image, "a")[1], hole)
    assert not torch.equal(protocol_item(image, "b")[1], hole)
    assert 0.05 <= float(hole.float().mean()) <= 0.25
    small_crop, small_hole = protocol_item(torch.rand(1, 3, 100, 150), "c")
    assert small_crop.shape[-2:] == small_hole.shape[-2:] == (96, 96)


def test_scores_inside_the_hole_ignore_everything_outside() -> None:
    reference = torch.rand(1, 3, 40, 40)
    hole = torch.zeros(1, 1, 40, 40)
    hole[..., 10:30, 10:30] = 1
    prediction = reference.clone()
    prediction[..., :5, :] = 1 - prediction[..., :5, :]  # outside the hole: no effect
    assert masked_psnr(prediction, reference, hole) == math.inf
    assert masked_ssim(prediction, reference, hole) == pytest.approx(1.0)
    prediction[..., 10:30, 10:30] += 10 / 255  # 10 levels everywhere in the hole
    assert masked_psnr(prediction.clamp(0, 2), reference, hole) == pytest.approx(20 * math.log10(255 / 10), abs=1e-6)


def test_the_table_scores_the_model_next_to_telea_and_ns(tmp_path: Path) -> None:
    folder = photos(tmp_path / "held-out")
    result = runner.invoke(app, ["eval", "--task", "inpaint", "--model", "telea", "--data", str(folder), "--json",
                                 "--quiet"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [record["name"] for record in records] == ["astronaut", "coffee", "mean"]
    for record in records[:2]:
        assert set(record) == {"name", "telea", "ns", "model"}
        assert record["model"] == record["telea"]  # the same method, the same hole
        assert 10 < record["telea"]["psnr"] < 40 and 0 < record["ns"]["ssim"] < 1
    assert records[2]["count"] == 2
    table = runner.invoke(app, ["eval", "--task", "inpaint", "--model", "ns", "--data", str(folder), "--quiet"])
    assert "telea PSNR" in table.stdout and "ns PSNR" in table.stdout and "mean" in table.stdout


@pytest.mark.parametrize(("args", "problem"), [
    (["--task", "inpaint", "--data", "x"], "give --model NAME --data DIR"),
    (["--task", "inpaint", "--model", "telea", "--data", "x", "--shave", "4"], "are for super-resolution"),
    (["--task", "denoise", "--model", "telea", "--data", "x"], "--task 'denoise'"),
])
def test_usage_errors(args: list[str], problem: str) -> None:
    result = runner.invoke(app, ["eval", *args])
    assert result.exit_code == 2 and problem in result.stderr
