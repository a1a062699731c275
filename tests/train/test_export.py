"""imgan train export: a run becomes a .safetensors model that imgan upscale loads with no other flag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import safetensors
import torch
from PIL import Image
from typer.testing import CliRunner

from imgan.cli import app
from imgan.train.checkpoint import load_checkpoint
from tests.train.test_sr_training import make_images, train

runner = CliRunner()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny x2 RRDBNet run of 2 steps (EMA on)."""
    root = tmp_path_factory.mktemp("export")
    run_dir = root / "run"
    result = train("esrgan", make_images(root / "images"), run_dir, "--steps", "2", "--scale", "2")
    assert result.exit_code == 0, result.output
    return run_dir


def test_export_writes_the_ema_generator_with_upscale_metadata(trained_run: Path, tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    result = runner.invoke(app, ["train", "export", str(trained_run), "--out", str(target)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(target)
    with safetensors.safe_open(str(target), framework="pt") as file:
        metadata = file.metadata()
        tensors = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118 - safe_open has no iterator
    assert metadata["arch"] == "rrdbnet" and metadata["task"] == "upscale" and metadata["scale"] == "2"
    assert json.loads(metadata["params"])["num_blocks"] == 1
    assert json.loads(metadata["value_range"]) == [0.0, 1.0]
    assert (metadata["family"], metadata["step"]) == ("esrgan", "2")
    ema = load_checkpoint(trained_run)["modules"]["generator_ema"]
    assert tensors.keys() == ema.keys()
    assert all(torch.equal(tensors[key], ema[key]) for key in ema)


def test_exported_model_upscales_with_no_other_flag(trained_run: Path, tmp_path: Path) -> None:
    model = tmp_path / "tiny.safetensors"
    assert runner.invoke(app, ["train", "export", str(trained_run), "--out", str(model)]).exit_code == 0
    picture = tmp_path / "small.png"
    Image.new("RGB", (20, 14), (120, 40, 200)).save(picture)
    upscaled = tmp_path / "big.png"
    result = runner.invoke(app, ["upscale", str(picture), "--model", str(model), "--out", str(upscaled),
                                 "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    with Image.open(upscaled) as image:
        assert image.size == (40, 28)


def test_half_export_stores_float16_and_loads_into_float32(trained_run: Path, tmp_path: Path) -> None:
    from imgan.models import load_model

    full, half = tmp_path / "full.safetensors", tmp_path / "half.safetensors"
    assert runner.invoke(app, ["train", "export", str(trained_run), "--out", str(full)]).exit_code == 0
    assert runner.invoke(app, ["train", "export", str(trained_run), "--out", str(half), "--half"]).exit_code == 0
    with safetensors.safe_open(str(half), framework="pt") as file:
        assert {file.get_tensor(key).dtype for key in file.keys()} == {torch.float16}  # noqa: SIM118
    assert half.stat().st_size < 0.6 * full.stat().st_size
    exact, rounded = load_model(str(full), task="upscale"), load_model(str(half), task="upscale")
    assert all(p.dtype == torch.float32 for p in rounded.module.parameters())
    image = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert (exact(image) - rounded(image)).abs().max() < 2e-3


def test_export_defaults_into_the_run_directory(trained_run: Path) -> None:
    result = runner.invoke(app, ["train", "export", str(trained_run)])
    assert result.exit_code == 0, result.output
    assert (trained_run / "model.safetensors").is_file()


def test_export_of_a_folder_without_checkpoints_is_one_line_exit_1(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "export", str(tmp_path)])
    assert result.exit_code == 1
    assert "no checkpoint" in result.stderr and "Traceback" not in result.output


def test_export_is_byte_for_byte_reproducible() -> None:
    import safetensors.torch
    import torch

    from imgan.train.export import canonical_safetensors

    tensors = {"b": torch.arange(6.0).reshape(2, 3), "a": torch.ones(5)}
    metadata = {f"key{index}": str(index) for index in range(12)}
    files = {canonical_safetensors(safetensors.torch.save(tensors, metadata=metadata)) for _ in range(5)}
    assert len(files) == 1
    loaded = safetensors.torch.load(files.pop())
    assert torch.equal(loaded["b"], tensors["b"]) and torch.equal(loaded["a"], tensors["a"])
