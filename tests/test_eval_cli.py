"""``imgan eval`` as a user runs it: folders of results, the held-out protocol, JSON, failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from imgan.archs.srvgg import SRVGGNetCompact
from imgan.cli import app
from imgan.metrics import psnr

runner = CliRunner()


def save(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture()
def folders(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    noisy = np.clip(reference.astype(int) + rng.integers(-8, 9, reference.shape), 0, 255).astype(np.uint8)
    save(tmp_path / "ref" / "a.png", reference), save(tmp_path / "pred" / "a_x4.png", noisy)
    save(tmp_path / "ref" / "b.png", reference), save(tmp_path / "pred" / "b.png", reference[:16])
    save(tmp_path / "ref" / "c.png", reference)
    return tmp_path / "pred", tmp_path / "ref", reference, noisy


def test_folders_give_a_table_with_the_mean_and_fail_per_image(folders) -> None:  # noqa: ANN001
    pred, ref, _, _ = folders
    result = runner.invoke(app, ["eval", "--pred", str(pred), "--ref", str(ref)])
    assert result.exit_code == 1
    assert "PSNR (dB)" in result.stdout and "mean" in result.stdout
    assert "no prediction named c.*" in result.stderr and "must be the same size" in result.stderr


def test_folder_scores_in_json_are_the_metric_of_the_files(folders) -> None:  # noqa: ANN001
    pred, ref, reference, noisy = folders
    result = runner.invoke(app, ["eval", "--pred", str(pred), "--ref", str(ref), "--json", "--shave", "2"])
    records = [json.loads(line) for line in result.stdout.splitlines()]
    expected = psnr(torch.from_numpy(noisy).permute(2, 0, 1)[None] / 255.0,
                    torch.from_numpy(reference).permute(2, 0, 1)[None] / 255.0, shave=2, y_channel=True)
    assert records[0]["name"] == "a" and records[0]["psnr"] == pytest.approx(expected, abs=1e-5)
    assert records[-1] == {"name": "mean", "psnr": records[0]["psnr"], "ssim": records[0]["ssim"], "count": 1}


def test_the_protocol_scores_a_model_against_bicubic(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = tmp_path / "tiny.pth"
    torch.save({"params": SRVGGNetCompact(num_features=4, num_conv=1, scale=2).state_dict()}, model)
    rng = np.random.default_rng(1)
    save(tmp_path / "hr" / "one.png", rng.integers(0, 256, (64, 48, 3), dtype=np.uint8))
    (tmp_path / "hr" / "two.png").write_bytes(b"broken")
    result = runner.invoke(app, ["eval", "--model", str(model), "--data", str(tmp_path / "hr"), "--json", "-q"])
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["name"] for r in records] == ["one", "mean"]
    assert set(records[0]) == {"name", "bicubic", "model"} and records[1]["count"] == 1
    assert records[0]["bicubic"]["psnr"] > 5 and records[0]["model"]["psnr"] > 0
    assert "two.png" in result.stderr
    table = runner.invoke(app, ["eval", "--model", str(model), "--data", str(tmp_path / "hr"), "-q"])
    assert "bicubic PSNR" in table.stdout and "tiny PSNR" in table.stdout


@pytest.mark.parametrize("args", [
    ["--pred", "a"],
    ["--pred", "a", "--ref", "b", "--model", "m"],
    ["--model", "m", "--data", "d", "--shave", "4"],
])
def test_mixed_or_partial_modes_are_usage_errors(args: list[str]) -> None:
    result = runner.invoke(app, ["eval", *args])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1


def test_a_scale_the_model_does_not_have_is_a_usage_error(tmp_path: Path) -> None:
    model = tmp_path / "tiny.pth"
    torch.save({"params": SRVGGNetCompact(num_features=4, num_conv=1, scale=2).state_dict()}, model)
    save(tmp_path / "hr" / "one.png", np.zeros((32, 32, 3), np.uint8))
    result = runner.invoke(app, ["eval", "--model", str(model), "--data", str(tmp_path / "hr"), "--scale", "4"])
    assert result.exit_code == 2 and "is a x2 model" in result.stderr
