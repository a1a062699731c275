"""The published realesr-animevideov3 checkpoint through every imgan path equals a plain forward pass."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from imgan.cli import app
from imgan.engine import Engine, resize_to
from imgan.io import read_picture
from imgan.models import load_model
from imgan.tasks.upscale import upscale_picture

CHECKPOINT = Path(__file__).resolve().parents[2] / "shared" / "weights" / "realesr-animevideov3.pth"
pytestmark = pytest.mark.skipif(not CHECKPOINT.exists(), reason="../shared/weights is not present")
ONE_LEVEL = 1 / 255


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """An odd-sized crop of a real photograph (NASA, public domain), HWC uint8."""
    from skimage import data

    return data.astronaut()[40:137, 150:281].copy()  # 97 x 131


@pytest.fixture(scope="module")
def reference(photo: np.ndarray) -> torch.Tensor:
    """A plain full-image forward pass of the network, in [0,1]."""
    descriptor = load_model(str(CHECKPOINT), task="upscale")
    tensor = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        return descriptor.module.eval()(tensor).clamp(0, 1)


def as_tensor(array: np.ndarray, peak: int = 255) -> torch.Tensor:
    return torch.from_numpy(array.astype(np.float32) / peak).permute(2, 0, 1)[None]


def test_loads_strictly_with_the_published_hyperparameters() -> None:
    descriptor = load_model(str(CHECKPOINT), task="upscale")
    assert descriptor.arch == "srvgg" and descriptor.scale == 4
    assert descriptor.params["num_conv"] == 16 and descriptor.params["num_features"] == 64


@pytest.mark.parametrize("tile,batch", [(48, 1), (40, 4), (64, 3)])
def test_tiled_and_batched_equal_the_whole_image(photo: np.ndarray, reference: torch.Tensor,
                                                 tile: int, batch: int) -> None:
    engine = Engine(load_model(str(CHECKPOINT), task="upscale"), torch.device("cpu"),
                    tile_size=tile, batch_size=batch)
    result = engine.run(as_tensor(photo)).clamp(0, 1)
    assert result.shape == reference.shape == (1, 3, 97 * 4, 131 * 4)
    assert (result - reference).abs().max().item() < ONE_LEVEL


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_every_scale_tiled_equals_untiled(photo: np.ndarray, reference: torch.Tensor, scale: int) -> None:
    from imgan.io import Picture

    picture = Picture(rgb=as_tensor(photo), alpha=None, bit_depth=8, grayscale=False, icc_profile=None,
                      exif=None, source_format="png", name="crop.png")
    engine = Engine(load_model(str(CHECKPOINT), task="upscale"), torch.device("cpu"), tile_size=48)
    result = upscale_picture(picture, engine, scale=scale).rgb
    expected = resize_to(reference, 97 * scale, 131 * scale)
    assert result.shape == expected.shape
    assert (result - expected).abs().max().item() < ONE_LEVEL


def test_cli_file_and_stdin_paths_match_the_forward_pass(tmp_path: Path, photo: np.ndarray,
                                                         reference: torch.Tensor) -> None:
    Image.fromarray(photo).save(tmp_path / "crop.png")
    expected = np.rint(reference[0].permute(1, 2, 0).numpy() * 255)
    runner = CliRunner()
    by_file = runner.invoke(app, ["upscale", str(tmp_path / "crop.png"), "--model", str(CHECKPOINT),
                                  "--tile", "40", "--batch-size", "3", "-o", str(tmp_path / "out.png")])
    assert by_file.exit_code == 0, by_file.output
    by_pipe = runner.invoke(app, ["upscale", "-", "--model", str(CHECKPOINT), "--quiet"],
                            input=(tmp_path / "crop.png").read_bytes())
    assert by_pipe.exit_code == 0, by_pipe.stderr
    for data in ((tmp_path / "out.png").read_bytes(), by_pipe.stdout_bytes):
        written = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64)
        assert written.shape == expected.shape
        assert np.abs(written - expected).max() <= 1


def test_sixteen_bit_path_matches_the_forward_pass(tmp_path: Path, photo: np.ndarray) -> None:
    deep = photo.astype(np.uint16) * 257 + np.random.default_rng(0).integers(0, 257, photo.shape,
                                                                            dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep[..., ::-1])
    picture = read_picture(tmp_path / "deep.png")
    assert picture.bit_depth == 16
    descriptor = load_model(str(CHECKPOINT), task="upscale")
    with torch.no_grad():
        expected = descriptor.module.eval()(as_tensor(deep, 65535)).clamp(0, 1)
    result = CliRunner().invoke(app, ["upscale", str(tmp_path / "deep.png"), "--model", str(CHECKPOINT),
                                      "--tile", "48", "-o", str(tmp_path / "out.png")])
    assert result.exit_code == 0, result.output
    written = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert written.dtype == np.uint16
    assert np.abs(written / 65535 - expected[0].permute(1, 2, 0).numpy()).max() < ONE_LEVEL
