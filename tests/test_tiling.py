"""Tiling invariants: coverage, blend weights, tiled output equal to untiled output, resized tile by tile."""

from __future__ import annotations

import copy
import itertools
import logging
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from imgan import engine as engine_module
from imgan.descriptor import ModelDescriptor
from imgan.engine import Engine, resize_to, strict_fp32
from imgan.tiling import (
    Resampler,
    assemble,
    axis_weights,
    pad_to_multiple,
    plan_tiles,
    resized_blocks,
    run_tiled,
    tile_starts,
    tiled_blocks,
)


class LocalNet(nn.Module):
    """Three 3x3 convolutions (receptive radius 3) then a pixel shuffle to ``scale``."""

    def __init__(self, scale: int, *, size_multiple: int = 1) -> None:
        super().__init__()
        self.scale = scale
        self.size_multiple = size_multiple
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, 3 * scale * scale, 3, padding=1),
        )
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.shuffle(self.body(x)))


def descriptor_for(module: nn.Module, *, scale: int, overlap: int = 16, multiple: int = 1) -> ModelDescriptor:
    return ModelDescriptor(module=module, name="local", arch="test", task="upscale", scale=scale,
                           size_multiple=multiple, tile_overlap=overlap)


@pytest.mark.parametrize("length,tile,overlap,multiple", [
    (100, 32, 8, 1), (97, 40, 12, 1), (64, 64, 8, 1), (30, 64, 8, 1), (200, 48, 16, 4), (1001, 128, 24, 2),
])
def test_tile_starts_cover_with_overlap(length: int, tile: int, overlap: int, multiple: int) -> None:
    length -= length % multiple
    starts = tile_starts(length, min(tile, length), overlap, multiple=multiple)
    assert starts[0] == 0
    assert starts[-1] + min(tile, length) == length
    assert all(s % multiple == 0 for s in starts)
    for before, after in itertools.pairwise(starts):
        assert after > before
        assert before + tile - after >= overlap


def test_axis_weights_sum_to_one() -> None:
    starts = tile_starts(300, 64, 16)
    weights = axis_weights(300, starts, 64, 16)
    total = torch.zeros(300)
    for start, weight in zip(starts, weights, strict=True):
        total[start : start + 64] += weight
    assert torch.allclose(total, torch.ones(300), atol=1e-6)
    # Interior tile edges carry no weight: their pixels saw zero padding, not neighbours.
    assert weights[1][0] == 0 and weights[0][-1] == 0


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [(37, 53), (64, 41), (9, 11)])
def test_tiled_equals_untiled(scale: int, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    net = LocalNet(scale).eval()
    image = torch.rand(1, 3, *size)
    with torch.no_grad():
        whole = net(image)
        tiled = run_tiled(net, image, scale=scale, tile_size=32, overlap=16, batch_size=3)
    assert tiled.shape == whole.shape
    # Receptive radius 3 is inside the discarded margin (16 // 4): the blend is exact.
    assert (tiled - whole).abs().max().item() < 1e-5


def test_plan_tiles_same_size_for_batching_and_no_wasted_overlap() -> None:
    tiles = plan_tiles(70, 90, tile_size=32, overlap=8, scale=2)
    sizes = {(t.height, t.width) for t in tiles}
    assert len(sizes) == 1
    height, width = sizes.pop()
    assert height <= 32 and width <= 32
    assert tiles[0].weight_y.shape == (2 * height,)
    # 3 x 4 tiles, shrunk from 32 to the least size that still covers the image.
    assert len(tiles) == 12 and (height, width) == (29, 29)


def test_tiles_shrink_instead_of_adding_overlap() -> None:
    # 768 px in tiles of at most 384 with overlap 32 needs 3 tiles; they are 278 px, not 384.
    tiles = plan_tiles(768, 768, tile_size=384, overlap=32, scale=1)
    assert len(tiles) == 9 and tiles[0].height == 278


def test_pad_to_multiple_reflects_and_handles_tiny_images() -> None:
    image = torch.rand(1, 3, 5, 6)
    padded = pad_to_multiple(image, 4)
    assert padded.shape[-2:] == (8, 8)
    assert torch.equal(padded[..., :5, :6], image)
    assert pad_to_multiple(torch.rand(1, 3, 1, 1), 4).shape[-2:] == (4, 4)


def test_pad_to_a_minimum_side_reflects_again_past_the_picture() -> None:
    row = torch.tensor([1.0, 2.0, 3.0]).view(1, 1, 1, 3)
    padded = pad_to_multiple(row, 4, min_side=8)
    assert padded.shape[-2:] == (8, 8)
    assert padded[0, 0, 0].tolist() == [1, 2, 3, 2, 1, 2, 3, 2]  # mirrored, then mirrored again
    assert torch.equal(padded[0, 0, 7], padded[0, 0, 0])  # a one-pixel side is repeated
    assert pad_to_multiple(row, 1, min_side=2).shape[-2:] == (2, 3)


@pytest.mark.parametrize("multiple", [2, 4])
def test_engine_pads_to_size_multiple_and_crops_back(multiple: int) -> None:
    torch.manual_seed(1)
    net = LocalNet(2, size_multiple=multiple)
    engine = Engine(descriptor_for(net, scale=2, multiple=multiple), torch.device("cpu"), tile_size=32)
    image = torch.rand(1, 3, 45, 67)
    result = engine.run(image)
    assert result.shape == (1, 3, 90, 134)
    with torch.no_grad():
        reference = net(pad_to_multiple(image, multiple))[..., :90, :134]
    assert (result - reference).abs().max().item() < 1e-5


def test_tiled_blocks_tell_the_tiles_done_as_they_go() -> None:
    image = torch.rand(1, 3, 100, 90)
    tiles = plan_tiles(100, 90, tile_size=48, overlap=8, scale=2)
    heard: list[tuple[int, int]] = []
    with torch.no_grad():
        list(tiled_blocks(LocalNet(2), image, scale=2, tile_size=48, overlap=8, batch_size=2,
                          progress=lambda done, total: heard.append((done, total))))
    assert len(tiles) > 1
    assert heard == [(done, len(tiles)) for done in range(len(tiles) + 1)]


def test_an_untiled_run_is_one_tile_for_progress() -> None:
    heard: list[tuple[int, int]] = []
    with torch.no_grad():
        list(tiled_blocks(LocalNet(2), torch.rand(1, 3, 20, 20), scale=2, tile_size=0, overlap=8,
                          progress=lambda done, total: heard.append((done, total))))
    assert heard == [(0, 1), (1, 1)]


def test_an_engine_tells_its_progress_the_tiles_of_each_run() -> None:
    heard: list[tuple[int, int]] = []
    engine = Engine(descriptor_for(LocalNet(2), scale=2), torch.device("cpu"), tile_size=32,
                    progress=lambda done, total: heard.append((done, total)))
    engine.run(torch.rand(1, 3, 70, 50))
    total = heard[-1][1]
    assert total > 1 and heard[0] == (0, total) and heard[-1] == (total, total)
    assert [done for done, _ in heard] == list(range(total + 1))


@pytest.mark.parametrize(("dtype", "peak"), [(torch.uint8, 255), (torch.uint16, 65535)])
def test_an_engine_takes_integer_levels_tile_by_tile_as_their_floats(dtype: torch.dtype, peak: int) -> None:
    torch.manual_seed(5)
    engine = Engine(descriptor_for(LocalNet(2, size_multiple=4), scale=2, multiple=4), torch.device("cpu"),
                    tile_size=32)
    levels = torch.randint(0, peak + 1, (1, 3, 45, 67), dtype=torch.int64).to(dtype)  # padded to 48 x 68
    assert torch.equal(engine.run(levels), engine.run(levels.float() / peak))
    blocks = list(engine.run_blocks(levels, size=(50, 70)))
    assert all(block.pixels.dtype == torch.float32 for block in blocks)


class OutOfMemoryAbove(nn.Module):
    """A network that runs out of memory on batches larger than ``limit`` pixels."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.inner = LocalNet(2)
        self.scale = 2
        self.limit = limit
        self.largest_seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixels = x.shape[0] * x.shape[-2] * x.shape[-1]
        if pixels > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        self.largest_seen = max(self.largest_seen, pixels)
        return self.inner(x)


def test_out_of_memory_halves_the_failing_tile_and_keeps_the_result(caplog: pytest.LogCaptureFixture) -> None:
    torch.manual_seed(2)
    net = OutOfMemoryAbove(limit=70 * 70)
    engine = Engine(descriptor_for(net, scale=2), torch.device("cpu"), tile_size=128, batch_size=4)
    image = torch.rand(1, 3, 200, 180)
    with caplog.at_level(logging.WARNING, logger="imgan"):
        result = engine.run(image)
    with torch.no_grad():
        reference = net.inner(image)
    assert (result - reference).abs().max().item() < 1e-5
    assert net.largest_seen <= 70 * 70
    assert engine.batch_size == 1
    assert engine._current_tile <= 64
    assert "out of memory" in caplog.text


def test_out_of_memory_at_the_smallest_tile_is_a_clear_error() -> None:
    from imgan.errors import ImganError

    engine = Engine(descriptor_for(OutOfMemoryAbove(limit=10), scale=2), torch.device("cpu"), tile_size=64)
    with pytest.raises(ImganError, match="out of memory"):
        engine.run(torch.rand(1, 3, 64, 64))


class NaNInHalf(nn.Module):
    """Gives NaN unless it runs in fp32, like fp16 overflow in some published models."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = LocalNet(1)
        self.scale = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        return out if x.dtype == torch.float32 else out * float("nan")


def test_non_finite_low_precision_output_falls_back_to_fp32(caplog: pytest.LogCaptureFixture) -> None:
    engine = Engine(descriptor_for(NaNInHalf(), scale=1), torch.device("cpu"), precision="bf16", tile_size=0)
    assert engine.dtype == torch.bfloat16
    with caplog.at_level(logging.WARNING, logger="imgan"):
        result = engine.run(torch.rand(1, 3, 16, 16))
    assert bool(torch.isfinite(result).all())
    assert engine.dtype == torch.float32
    assert "switching to fp32" in caplog.text


def test_fp32_fallback_runs_the_weights_as_loaded_not_as_rounded_to_half() -> None:
    torch.manual_seed(3)
    net = NaNInHalf()
    exact = Engine(descriptor_for(copy.deepcopy(net), scale=1), torch.device("cpu"), precision="fp32", tile_size=0)
    half = Engine(descriptor_for(net, scale=1), torch.device("cpu"), precision="bf16", tile_size=0)
    image = torch.rand(1, 3, 16, 16)
    assert torch.equal(half.run(image), exact.run(image))  # bf16 gave NaN: fp32 with the original weights


def test_a_replica_of_a_half_engine_starts_from_the_weights_as_loaded() -> None:
    torch.manual_seed(4)
    net = NaNInHalf()
    exact = Engine(descriptor_for(copy.deepcopy(net), scale=1), torch.device("cpu"), precision="fp32", tile_size=0)
    replica = Engine(descriptor_for(net, scale=1), torch.device("cpu"), precision="bf16", tile_size=0).replica(
        torch.device("cpu"))
    assert replica.dtype == torch.bfloat16
    image = torch.rand(1, 3, 16, 16)
    assert torch.equal(replica.run(image), exact.run(image))


@pytest.mark.parametrize(("precision", "device", "strict"), [
    ("fp32", "cuda", True), ("fp32", "cuda:1", True), ("fp32", "cpu", False),
    ("auto", "cuda", False), ("fp16", "cuda", False), ("bf16", "cuda", False),
])
def test_only_fp32_on_cuda_switches_tf32_off(precision: str, device: str, strict: bool) -> None:
    assert strict_fp32(precision, torch.device(device)) is strict


@pytest.fixture
def tf32_flags() -> Iterator[None]:
    """TF32 allowed for matmuls and cuDNN during the test; torch's flags as they were afterwards."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.usefixtures("tf32_flags")
def test_an_fp32_engine_on_cuda_switches_tf32_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "auto_tile_size", lambda *args: 64)  # no CUDA memory to ask about
    descriptor = descriptor_for(LocalNet(1), scale=1)
    monkeypatch.setattr(descriptor, "to", lambda device, dtype=None: descriptor)  # no CUDA to move to
    Engine(descriptor, torch.device("cuda"), precision="fp16")
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    Engine(descriptor, torch.device("cuda"), precision="fp32")
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32


class OutOfRange(nn.Module):
    """LocalNet stretched past [0,1], as real super-resolution outputs are before clamping."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.inner = LocalNet(scale)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * 1.6 - 0.3


@pytest.mark.parametrize("antialias", [False, True])
@pytest.mark.parametrize("sizes", [(37, 74), (64, 16), (388, 291), (97, 33), (10, 10), (5, 40), (3, 1), (1, 4)])
def test_resampler_taps_are_those_of_interpolate(antialias: bool, sizes: tuple[int, int]) -> None:
    in_size, out_size = sizes
    values = torch.rand(1, 2, in_size, 7)
    expected = F.interpolate(values, size=(out_size, 7), mode="bicubic", align_corners=False, antialias=antialias)
    taps = Resampler.bicubic(in_size, out_size, antialias=antialias)
    assert (taps(values, dim=-2) - expected).abs().max().item() < 1e-5
    assert (taps(values.transpose(-1, -2), dim=-1) - expected.transpose(-1, -2)).abs().max().item() < 1e-5


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("factor", [0.05, 0.25, 0.5, 0.75, 1.3])  # 0.05: several rows of tiles per pixel
def test_tiled_blocks_resized_equal_resizing_the_whole_output(scale: int, factor: float) -> None:
    torch.manual_seed(3)
    net = OutOfRange(scale).eval()
    image = torch.rand(1, 3, 70, 45)
    size = (round(70 * scale * factor), round(45 * scale * factor))
    with torch.no_grad():
        expected = resize_to(net(image).clamp(0, 1), *size)
        blocks = tiled_blocks(net, image, scale=scale, tile_size=32, overlap=16, batch_size=2, size=size)
        result = assemble(blocks, *size)
    assert result.shape == expected.shape
    assert (result - expected).abs().max().item() < 1e-5


@pytest.mark.parametrize("size", [None, (150, 61)])
def test_tiled_blocks_cover_the_output_once_and_come_finished(size: tuple[int, int] | None) -> None:
    net = LocalNet(2).eval()
    image = torch.rand(1, 3, 100, 90)
    height, width = size or (200, 180)
    seen = torch.zeros(height, width)
    with torch.no_grad():
        whole = net(image) if size is None else resize_to(net(image).clamp(0, 1), *size)
        for top, left, pixels in tiled_blocks(net, image, scale=2, tile_size=32, overlap=16, size=size):
            rows, cols = slice(top, top + pixels.shape[-2]), slice(left, left + pixels.shape[-1])
            seen[rows, cols] += 1
            assert (pixels - whole[..., rows, cols]).abs().max().item() < 1e-5  # final when handed over
    assert bool((seen == 1).all())


def test_tiled_blocks_crop_drops_padding() -> None:
    net = LocalNet(2).eval()
    padded = pad_to_multiple(torch.rand(1, 3, 45, 67), 8)
    with torch.no_grad():
        expected = net(padded)[..., :90, :134]
        result = assemble(tiled_blocks(net, padded, scale=2, tile_size=32, overlap=16, multiple=8, crop=(90, 134)),
                          90, 134)
    assert (result - expected).abs().max().item() < 1e-5


def test_resized_blocks_equal_resize_to() -> None:
    image = torch.rand(1, 1, 53, 41)
    for height, width in [(160, 120), (20, 17), (53, 90)]:
        result = assemble(resized_blocks(image, height, width, block_pixels=500), height, width)
        assert (result - resize_to(image, height, width)).abs().max().item() < 1e-5


@pytest.mark.parametrize("scale", [1.0, 2.5, 4.0])
def test_engine_blocks_resized_equal_resizing_its_whole_output(scale: float) -> None:
    torch.manual_seed(4)
    net = OutOfRange(4)
    engine = Engine(descriptor_for(net, scale=4, multiple=2), torch.device("cpu"), tile_size=32)
    image = torch.rand(1, 3, 45, 67)
    size = (round(45 * scale), round(67 * scale))
    result = assemble(engine.run_blocks(image, size=size), *size)
    with torch.no_grad():
        expected = resize_to(net(pad_to_multiple(image, 2))[..., :180, :268].clamp(0, 1), *size)
    assert (result - expected).abs().max().item() < 1e-5


def test_automatic_tiles_keep_one_batch_of_outputs_small_on_the_host() -> None:
    engine = Engine(descriptor_for(LocalNet(4), scale=4), torch.device("cpu"), batch_size=4)
    tile = engine._tile_for(2048 * 2048)  # an 8-bit output of 12.6 MB: the 64 MiB floor applies
    assert tile < engine._current_tile
    assert 4 * (3 * 16 * 4) * tile**2 <= 64 * 2**20  # four float32 x4 tile outputs
    chosen = Engine(descriptor_for(LocalNet(4), scale=4), torch.device("cpu"), tile_size=384, batch_size=4)
    assert chosen._tile_for(2048 * 2048) == 384  # a --tile the user chose is left alone
