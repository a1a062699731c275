"""The embedded sketch2photo default: ships in the package, works offline, and is really trained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from imgan import hub
from imgan.archs.pix2pix import set_batchnorm_mode
from imgan.cli import app
from imgan.engine import Engine
from imgan.io import Picture
from imgan.models import load_model
from imgan.tasks.sketch2photo import sketch2photo_picture

DEFAULT = "imgan-sketch2photo"


def drawn_sketch(path: Path) -> Path:
    """A pear drawn as black lines on white, 256x256, as a user might sketch it."""
    image = Image.new("L", (256, 256), 255)
    draw = ImageDraw.Draw(image)
    draw.ellipse((70, 100, 190, 230), outline=0, width=2)
    draw.ellipse((95, 45, 165, 125), outline=0, width=2)
    draw.line((130, 45, 140, 20), fill=0, width=2)
    image.save(path)
    return path


def inside_and_outside(photo: np.ndarray) -> tuple[float, float]:
    """Mean brightness (0..1) inside the drawn body and in the paper's corners."""
    yy, xx = np.mgrid[0:256, 0:256]
    body = ((xx - 130) / 55) ** 2 + ((yy - 165) / 60) ** 2 < 1
    corners = (np.minimum(xx, 255 - xx) < 30) & (np.minimum(yy, 255 - yy) < 30)
    grey = photo.astype(float).mean(-1) / 255
    return float(grey[body].mean()), float(grey[corners].mean())


def test_the_default_ships_inside_the_package_and_matches_its_digest() -> None:
    spec = hub.get_spec(DEFAULT)
    assert spec.embedded and spec.task == "sketch2photo"
    [(name, _, ok, reason)] = hub.verify_cache(specs=[spec])
    assert name == DEFAULT and ok, reason


def test_sketch2photo_uses_the_default_offline_and_fills_the_drawing(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGAN_OFFLINE", "1")
    result = CliRunner().invoke(app, ["sketch2photo", str(drawn_sketch(tmp_path / "pear.png")), "--quiet"])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "pear_photo.png") as image:
        assert image.size == (256, 256)
        inside, outside = inside_and_outside(np.asarray(image.convert("RGB")))
    # The shipped weights paint the body (measured inside 0.57) and leave the paper white (1.00);
    # random weights of the same shape give grey everywhere (inside 0.51, corners 0.51).
    assert inside < 0.75 and outside > 0.9


def test_random_weights_of_the_same_shape_fail_that_check(tmp_path: Path) -> None:
    descriptor = load_model(DEFAULT, task="sketch2photo")
    torch.manual_seed(0)
    for parameter in descriptor.module.parameters():
        torch.nn.init.normal_(parameter, 0.0, 0.02)
    set_batchnorm_mode(descriptor.module, per_image=True)
    sketch = np.asarray(Image.open(drawn_sketch(tmp_path / "pear.png")).convert("RGB"))
    rgb = torch.from_numpy(sketch.copy()).permute(2, 0, 1)[None].float() / 255
    picture = Picture(rgb=rgb, alpha=None, bit_depth=8, grayscale=False, icc_profile=None, exif=None,
                      source_format="png", name="pear.png")
    photo, _ = sketch2photo_picture(picture, Engine(descriptor, torch.device("cpu")))
    inside, outside = inside_and_outside((photo.rgb[0].permute(1, 2, 0).numpy() * 255).round())
    assert not (inside < 0.75 and outside > 0.9)
