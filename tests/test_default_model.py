"""The embedded default upscaler: ships in the package, works offline, and is really trained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from imgan import hub
from imgan.cli import app
from imgan.engine import Engine
from imgan.metrics import psnr
from imgan.models import load_model
from imgan.tasks.evaluate import bicubic_upscale
from imgan.train.data import bicubic_downscale

DEFAULT = "imgan-sr-x4"


def real_photo(size: int = 192) -> torch.Tensor:
    """A crop of a real photograph (NASA, public domain), not part of the training pool."""
    from skimage import data

    crop = data.astronaut()[100 : 100 + size, 140 : 140 + size]
    return torch.from_numpy(crop.copy()).permute(2, 0, 1)[None].float() / 255


def test_the_default_ships_inside_the_package_and_matches_its_digest() -> None:
    spec = hub.get_spec(DEFAULT)
    assert spec.embedded and hub.cached_path(spec).is_file()
    assert Path(hub.__file__).parent in hub.cached_path(spec).parents
    [(name, _, ok, reason)] = hub.verify_cache(specs=[spec])
    assert name == DEFAULT and ok, reason


def test_upscale_uses_the_default_offline_with_no_model_flag(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGAN_OFFLINE", "1")
    photo = (real_photo(48)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    result = CliRunner().invoke(app, ["upscale", str(tmp_path / "photo.png"), "--quiet"])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "photo_x4.png") as image:
        assert image.size == (192, 192)


def test_the_default_beats_bicubic_on_a_real_photo() -> None:
    original = real_photo()
    low = bicubic_downscale(original, 4)
    engine = Engine(load_model(DEFAULT, task="upscale"), torch.device("cpu"))
    restored = torch.round(engine.run(low).clamp(0, 1) * 255) / 255
    gain = psnr(restored, original, shave=4, y_channel=True) - psnr(
        bicubic_upscale(low, 4), original, shave=4, y_channel=True)
    # The shipped weights gain 2.25 dB on this crop; random weights of the same shape lose 3.2 dB.
    assert gain > 1.5
