"""Bounded memory: results built block by block as the levels they are written with.

``imgan upscale`` keeps its result at the output's own bit depth (a quantized Picture, filled as
tiles finish) and streams PNG out of it in bands, so its peak memory follows the size of what it
writes, at any scale. The peak is measured in a fresh process from the moment it starts reading
its input (imports and model loading left out); the full table over sizes and scales is
``benchmarks/bench_memory.py``, which measures the same way.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgan.archs.srvgg import SRVGGNetCompact
from imgan.engine import Engine
from imgan.io import Picture, blank_picture, put_block, read_picture, write_picture
from imgan.tasks.upscale import upscale_picture

DRIVER = """
import sys
import imgan.io

def resident(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field))

start = []
read_picture = imgan.io.read_picture

def read_from_here(*args, **kwargs):
    if not start:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # the peak (VmHWM) starts again from the present size
        start.append(resident("VmRSS:"))
    return read_picture(*args, **kwargs)

imgan.io.read_picture = read_from_here
from imgan.cli import app
try:
    app(sys.argv[1:])
    code = 0
except SystemExit as exit_:
    code = exit_.code or 0
print(resident("VmHWM:") - start[0], code)
"""
TILE = 128
SLACK = 32e6  # decoding, bands of rows, allocator noise: a fixed amount, whatever the image size


@pytest.fixture(scope="module")
def tiny_x4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "tiny_x4.pth"
    torch.save({"params": SRVGGNetCompact(num_features=4, num_conv=1, scale=4).state_dict()}, path)
    return path


def growth(folder: Path, model: Path, size: int, scale: float | None = None) -> int:
    """How far the resident memory of ``imgan upscale`` on a ``size`` px noise PNG, in tiles of
    ``TILE``, rises above what it was when reading began."""
    source = folder / f"noise_{size}.png"
    if not source.exists():
        pixels = np.random.default_rng(size).integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(source)
    command = ["upscale", str(source), "--model", str(model), "--tile", str(TILE), "-o", str(folder / "out.png"),
               "--overwrite", "--quiet"]
    if scale is not None:
        command += ["--scale", str(scale)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # many small tiles: one thread is faster, and steady
    result = subprocess.run([sys.executable, "-c", DRIVER, *command], cwd=folder, env=env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, check=True)
    grown, code = result.stdout.split()[-2:]
    assert code == "0", result.stderr
    return int(grown)


@pytest.fixture(scope="module")
def one_tile(tmp_path_factory: pytest.TempPathFactory, tiny_x4: Path) -> int:
    """The growth of a run on one tile's input: a tile's working memory."""
    return growth(tmp_path_factory.mktemp("baseline"), tiny_x4, TILE)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="measures through Linux's /proc")
@pytest.mark.parametrize("size,scale", [(1024, 4.0), (1024, 2.0)], ids=["native x4", "x2 through x4"])
def test_peak_memory_is_bounded_by_the_output_size(tmp_path: Path, tiny_x4: Path, one_tile: int,
                                                   size: int, scale: float) -> None:
    # The model's float32 output alone is 4x the 8-bit output at x4, and 16x it at x2.
    output_bytes = round(size * scale) ** 2 * 3
    extra = growth(tmp_path, tiny_x4, size, scale) - one_tile
    assert extra <= 2.5 * output_bytes + SLACK, (
        f"{extra / 1e6:.0f} MB over one tile's run for a {output_bytes / 1e6:.1f} MB output")


def picture(*, bit_depth: int = 8, grayscale: bool = False, alpha: bool = False, size: tuple[int, int] = (23, 37),
            icc: bytes | None = None, exif: bytes | None = None) -> Picture:
    """A float picture with values a little past [0,1] and a NaN, as a task hands one back."""
    generator = torch.Generator().manual_seed(5)
    rgb = torch.rand(1, 3, *size, generator=generator) * 1.2 - 0.1
    if grayscale:
        rgb = rgb[:, :1].expand(1, 3, *size) + torch.rand(1, 3, *size, generator=generator) * 0.01
    rgb[0, 0, 0, 0] = float("nan")
    opacity = torch.rand(1, 1, *size, generator=generator) if alpha else None
    return Picture(rgb=rgb, alpha=opacity, bit_depth=bit_depth, grayscale=grayscale, icc_profile=icc, exif=exif,
                   source_format="png", name="made.png")


def quantized(source: Picture) -> Picture:
    height, width = source.rgb.shape[-2:]
    result = blank_picture(source, height, width, alpha=source.alpha is not None, quantized=True)
    put_block(result, 0, 0, rgb=source.rgb[..., :, :11])
    put_block(result, 0, 11, rgb=source.rgb[..., :, 11:])
    if source.alpha is not None:
        put_block(result, 0, 0, alpha=source.alpha)
    return result


@pytest.mark.parametrize("bit_depth", [8, 16])
@pytest.mark.parametrize("grayscale", [False, True])
@pytest.mark.parametrize("alpha", [False, True])
def test_quantized_result_holds_its_own_size(bit_depth: int, grayscale: bool, alpha: bool) -> None:
    result = quantized(picture(bit_depth=bit_depth, grayscale=grayscale, alpha=alpha))
    assert result.quantized and result.rgb.shape == (1, 3, 23, 37)
    planes = (1 if grayscale else 3) + int(alpha)
    stored = [result.rgb] if result.alpha is None else [result.rgb, result.alpha]
    assert sum(t.untyped_storage().nbytes() for t in stored) == 23 * 37 * planes * bit_depth // 8


@pytest.mark.parametrize("fmt", ["png", "tiff", "jpg", "webp", "bmp"])
@pytest.mark.parametrize("kind", ["rgb", "rgba", "gray", "gray+alpha", "rgb16", "rgba16", "gray16", "gray+alpha16"])
def test_quantized_result_writes_the_pixels_of_the_float_one(tmp_path: Path, fmt: str, kind: str) -> None:
    alpha = "alpha" in kind or "rgba" in kind
    composited = alpha and fmt in ("jpg", "bmp")  # put on white from stored levels: within a level
    if composited and fmt == "jpg":
        pytest.skip("a level's difference before a lossy encoder proves nothing; bmp covers it")
    source = picture(bit_depth=16 if kind.endswith("16") else 8, grayscale=kind.startswith("gray"), alpha=alpha)
    write_picture(source, tmp_path / f"float.{fmt}")
    write_picture(quantized(source), tmp_path / f"levels.{fmt}")
    expected, written = read_picture(tmp_path / f"float.{fmt}"), read_picture(tmp_path / f"levels.{fmt}")
    assert (written.bit_depth, written.grayscale) == (expected.bit_depth, expected.grayscale)
    assert (written.rgb - expected.rgb).abs().max().item() <= (1.01 / 255 if composited else 0)
    assert (written.alpha is None) == (expected.alpha is None)
    assert written.alpha is None or torch.equal(written.alpha, expected.alpha)


def test_streamed_png_keeps_icc_and_exif(tmp_path: Path) -> None:
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    result = quantized(picture(icc=icc, exif=exif.tobytes()))
    write_picture(result, tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as written:
        assert written.info.get("icc_profile") == icc
        assert written.getexif()[0x010F] == "TestCam"


def test_upscaled_result_is_quantized_to_what_the_float_one_writes(tmp_path: Path, tiny_x4: Path) -> None:
    from imgan.models import load_model

    engine = Engine(load_model(str(tiny_x4), task="upscale"), torch.device("cpu"), tile_size=32)
    source = picture(alpha=True, size=(45, 38))
    for scale in (4.0, 1.5):
        for alpha in ("model", "resize"):
            as_float = upscale_picture(source, engine, scale=scale, alpha=alpha)
            as_levels = upscale_picture(source, engine, scale=scale, alpha=alpha, quantized=True)
            assert as_levels.quantized and not as_float.quantized
            write_picture(as_float, tmp_path / "float.png")
            write_picture(as_levels, tmp_path / "levels.png")
            expected, written = read_picture(tmp_path / "float.png"), read_picture(tmp_path / "levels.png")
            assert torch.equal(written.rgb, expected.rgb) and torch.equal(written.alpha, expected.alpha)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "RGBA16"])
def test_an_input_read_as_levels_upscales_to_what_its_floats_give(tmp_path: Path, tiny_x4: Path, mode: str) -> None:
    import cv2

    from imgan.models import load_model

    if mode == "RGBA16":  # OpenCV writes 16-bit PNG, in BGRA order (the same noise either way)
        pixels = np.random.default_rng(7).integers(0, 65536, (38, 45, 4), dtype=np.uint16)
        assert cv2.imwrite(str(tmp_path / "in.png"), pixels)
    else:
        pixels = np.random.default_rng(7).integers(0, 256, (38, 45, len(mode)), dtype=np.uint8)
        Image.fromarray(pixels, mode).save(tmp_path / "in.png")
    engine = Engine(load_model(str(tiny_x4), task="upscale"), torch.device("cpu"), tile_size=32)
    as_float, as_levels = read_picture(tmp_path / "in.png"), read_picture(tmp_path / "in.png", levels=True)
    for scale in (4.0, 1.0):
        for alpha in ("model", "resize"):
            expected = upscale_picture(as_float, engine, scale=scale, alpha=alpha, quantized=True)
            result = upscale_picture(as_levels, engine, scale=scale, alpha=alpha, quantized=True)
            assert torch.equal(result.rgb, expected.rgb) and torch.equal(result.alpha, expected.alpha)
