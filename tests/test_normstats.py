"""Tiles of instance-normalised networks share whole-image statistics (imgan.normstats + Engine)."""

from __future__ import annotations

import pytest
import torch

from imgan.archs import build_model
from imgan.archs.pix2pix import set_batchnorm_mode
from imgan.descriptor import ModelDescriptor
from imgan.engine import Engine
from imgan.normstats import per_image_norm_layers, uses_image_statistics, whole_image_statistics
from imgan.tiling import run_tiled

CPU = torch.device("cpu")


def _stylizer() -> ModelDescriptor:
    torch.manual_seed(0)
    module = build_model("cyclegan", {"num_features": 8, "num_blocks": 2})
    return ModelDescriptor(module=module, name="random", arch="cyclegan", task="stylize", scale=1,
                           size_multiple=4, value_range=(-1.0, 1.0), tile_overlap=64)


def _picture(height: int = 256, width: int = 320) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    image = torch.stack([x, y, (torch.sin(x * 20) * torch.cos(y * 13) + 1) / 2]).unsqueeze(0)
    image[..., 100:180, 60:140] = torch.tensor([0.9, 0.2, 0.1]).view(1, 3, 1, 1)
    return image


def _cell_spread(error: torch.Tensor, cell: int = 32) -> float:
    """How much the mean error differs between 32x32 cells: blocks of different colour show here."""
    cells = error.unfold(2, cell, cell).unfold(3, cell, cell).mean(dim=(-1, -2))
    return float((cells.amax(dim=(2, 3)) - cells.amin(dim=(2, 3))).max())


def test_detects_per_image_normalisation() -> None:
    assert uses_image_statistics(build_model("cyclegan", {"num_features": 4, "num_blocks": 1}))
    assert not uses_image_statistics(build_model("aginggan", {"num_features": 4, "num_blocks": 1}))  # running BN
    unet = build_model("pix2pix", {"num_features": 4, "num_downs": 5})
    assert not uses_image_statistics(unet)
    set_batchnorm_mode(unet, per_image=True)
    assert len(per_image_norm_layers(unet)) == 7
    assert not uses_image_statistics(build_model("srvgg", {"num_features": 8, "num_conv": 2, "scale": 2}))


def test_tiles_with_the_whole_images_statistics_equal_the_untiled_result() -> None:
    descriptor, image = _stylizer(), _picture()
    untiled = Engine(descriptor, CPU, tile_size=0).run(image)
    engine = Engine(descriptor, CPU, tile_size=128)
    engine._statistics_image = lambda image, tile: image  # type: ignore[method-assign]  # exact statistics
    tiled = engine.run(image)
    assert tiled.shape == untiled.shape == image.shape
    assert (tiled - untiled).abs().max() < 0.01  # what is left: tiles see less context at their edges


def test_tiled_stylize_has_no_blocks_of_different_colour() -> None:
    descriptor, image = _stylizer(), _picture()
    untiled = Engine(descriptor, CPU, tile_size=0).run(image)
    tiled = Engine(descriptor, CPU, tile_size=128).run(image)  # statistics from a 144x116 copy
    naive = run_tiled(descriptor, image, scale=1, tile_size=128, overlap=64, multiple=4, batch_size=1)
    shared_error, naive_error = tiled - untiled, naive - untiled
    # Each tile normalised alone: blocks (measured 0.072 cell spread); shared: one smooth shift (0.028).
    assert _cell_spread(naive_error) > 0.05
    assert _cell_spread(shared_error) < 0.5 * _cell_spread(naive_error)
    assert shared_error.abs().mean() < 0.6 * naive_error.abs().mean()


def test_layers_get_their_own_forward_back() -> None:
    descriptor, image = _stylizer(), _picture(64, 64)
    before = descriptor(image)
    with whole_image_statistics(descriptor.module, lambda: descriptor(torch.zeros_like(image) + 0.5)):
        frozen = descriptor(image)
    assert not torch.allclose(frozen, before, atol=1e-3)  # statistics of a flat grey image differ
    assert torch.equal(descriptor(image), before)
    assert all("forward" not in vars(layer) for layer in per_image_norm_layers(descriptor.module))


def test_a_statistics_pass_that_skips_layers_is_an_error() -> None:
    descriptor = _stylizer()
    with pytest.raises(RuntimeError, match="did not run"):
        with whole_image_statistics(descriptor.module, lambda: None):
            pass
    assert all("forward" not in vars(layer) for layer in per_image_norm_layers(descriptor.module))
