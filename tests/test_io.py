"""Behaviour of imgan.io: what comes out of a file, what goes back in, and what fails how."""

from __future__ import annotations

import io
import logging
import os
import signal
import struct
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, ImageFile, ImageOps

from imgan import io as imgan_io
from imgan.errors import InputError, OutputError
from imgan.files import STALE_TEMPORARY_SECONDS
from imgan.io import (
    Picture,
    decode_picture,
    encode_picture,
    format_for_path,
    is_image_path,
    read_picture,
    write_picture,
)

RNG = np.random.default_rng(0)


def random_u8(*shape: int) -> np.ndarray:
    return RNG.integers(0, 256, size=shape, dtype=np.uint8)


def random_u16(*shape: int) -> np.ndarray:
    """16-bit values that are mostly not multiples of 257, so 8-bit paths would lose them."""
    values = RNG.integers(0, 65536, size=shape, dtype=np.uint16)
    assert (values % 257 != 0).mean() > 0.9
    return values


def as_uint(tensor: torch.Tensor, scale: int) -> np.ndarray:
    """(1,C,H,W) float tensor -> HWC integer array at ``scale``."""
    return np.rint(tensor[0].permute(1, 2, 0).numpy() * scale).astype(np.int64)


def png_chunks(data: bytes) -> list[bytes]:
    kinds, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        kinds.append(data[offset + 4 : offset + 8])
        offset += 12 + length
    return kinds


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload)))


def png16(array: np.ndarray, color_type: int) -> bytes:
    """A 16-bit PNG written by hand, for layouts no library here writes (gray + alpha)."""
    height, width = array.shape[:2]
    rows = b"".join(b"\0" + array[y].astype(">u2").tobytes() for y in range(height))

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b""))


def save_16bit_cv2(path: Path, rgb: np.ndarray) -> None:
    """Write a 16-bit RGB(A) array with OpenCV (which wants BGR)."""
    order = [2, 1, 0, 3][: rgb.shape[2]]
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, order]))


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif_bytes(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"  # Make
    return exif.tobytes()


def make_picture(rgb: np.ndarray, *, alpha: np.ndarray | None = None, bit_depth: int = 8,
                 grayscale: bool = False) -> Picture:
    """A Picture from HWC floats in [0,1], as a task would hand it back."""
    def tensor(array: np.ndarray) -> torch.Tensor:
        planes = np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32)
        return torch.from_numpy(planes)[None]

    return Picture(rgb=tensor(rgb), alpha=None if alpha is None else tensor(alpha),
                   bit_depth=bit_depth, grayscale=grayscale, icc_profile=None, exif=None,
                   source_format="png", name="made.png")


@pytest.fixture(autouse=True)
def _fresh_alpha_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imgan_io, "_alpha_warned", set())


# --------------------------------------------------------------------------- round trips


def test_8bit_rgb_png_round_trips_exactly(tmp_path: Path) -> None:
    pixels = random_u8(6, 5, 3)
    Image.fromarray(pixels).save(tmp_path / "in.png")

    picture = read_picture(tmp_path / "in.png")
    assert (picture.bit_depth, picture.grayscale, picture.alpha, picture.source_format) == (
        8, False, None, "png")
    assert picture.rgb.shape == (1, 3, 6, 5) and picture.rgb.dtype == torch.float32
    assert np.array_equal(as_uint(picture.rgb, 255), pixels)

    write_picture(picture, tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as written:
        assert written.mode == "RGB"
        assert np.array_equal(np.asarray(written), pixels)


def test_16bit_rgb_png_round_trips_at_16_bits(tmp_path: Path) -> None:
    pixels = random_u16(5, 7, 3)
    save_16bit_cv2(tmp_path / "in.png", pixels)

    picture = read_picture(tmp_path / "in.png")
    assert (picture.bit_depth, picture.grayscale) == (16, False)
    assert np.array_equal(as_uint(picture.rgb, 65535), pixels)

    write_picture(picture, tmp_path / "out.png")
    data = (tmp_path / "out.png").read_bytes()
    assert (data[24], data[25]) == (16, 2)  # IHDR: 16-bit RGB
    written = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)[:, :, ::-1]
    assert np.array_equal(written, pixels)


def test_16bit_rgba_png_keeps_16_bit_alpha(tmp_path: Path) -> None:
    pixels = random_u16(4, 3, 4)
    save_16bit_cv2(tmp_path / "in.png", pixels)

    picture = read_picture(tmp_path / "in.png")
    assert picture.alpha is not None
    assert np.array_equal(as_uint(picture.alpha, 65535)[:, :, 0], pixels[:, :, 3])

    write_picture(picture, tmp_path / "out.png")
    written = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(written[:, :, [2, 1, 0, 3]], pixels)


def test_16bit_gray_png_stays_16_bit_gray(tmp_path: Path) -> None:
    pixels = random_u16(4, 6)
    Image.fromarray(pixels).save(tmp_path / "in.png")  # Pillow mode I;16

    picture = read_picture(tmp_path / "in.png")
    assert (picture.bit_depth, picture.grayscale) == (16, True)
    assert np.array_equal(as_uint(picture.rgb, 65535), np.repeat(pixels[:, :, None], 3, axis=2))

    write_picture(picture, tmp_path / "out.png")
    data = (tmp_path / "out.png").read_bytes()
    assert (data[24], data[25]) == (16, 0)  # IHDR: 16-bit gray
    assert np.array_equal(cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED), pixels)


def test_16bit_gray_alpha_png_reads_as_gray_with_alpha(tmp_path: Path) -> None:
    pixels = random_u16(3, 4, 2)
    (tmp_path / "in.png").write_bytes(png16(pixels, color_type=4))

    picture = read_picture(tmp_path / "in.png")
    assert (picture.bit_depth, picture.grayscale) == (16, True)
    assert picture.alpha is not None
    assert np.array_equal(as_uint(picture.rgb, 65535)[:, :, 1], pixels[:, :, 0])
    assert np.array_equal(as_uint(picture.alpha, 65535)[:, :, 0], pixels[:, :, 1])


def test_16bit_rgb_tiff_round_trips_at_16_bits(tmp_path: Path) -> None:
    pixels = random_u16(5, 4, 3)
    save_16bit_cv2(tmp_path / "in.tif", pixels)

    picture = read_picture(tmp_path / "in.tif")
    assert (picture.bit_depth, picture.source_format) == (16, "tiff")
    assert np.array_equal(as_uint(picture.rgb, 65535), pixels)

    write_picture(picture, tmp_path / "out.tiff")
    written = cv2.imread(str(tmp_path / "out.tiff"), cv2.IMREAD_UNCHANGED)[:, :, ::-1]
    assert np.array_equal(written, pixels)


def test_16bit_source_written_as_jpg_is_8_bit(tmp_path: Path) -> None:
    picture = make_picture(np.full((4, 4, 3), 0.5), bit_depth=16)
    write_picture(picture, tmp_path / "out.jpg")
    with Image.open(tmp_path / "out.jpg") as written:
        assert written.mode == "RGB"
        assert abs(int(np.asarray(written)[0, 0, 0]) - 128) <= 1


def test_gray_png_stays_gray(tmp_path: Path) -> None:
    pixels = random_u8(5, 5)
    Image.fromarray(pixels).save(tmp_path / "in.png")

    picture = read_picture(tmp_path / "in.png")
    assert (picture.grayscale, picture.bit_depth) == (True, 8)
    assert picture.rgb.shape == (1, 3, 5, 5)
    assert torch.equal(picture.rgb[:, 0], picture.rgb[:, 2])

    write_picture(picture, tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as written:
        assert written.mode == "L"
        assert np.array_equal(np.asarray(written), pixels)


def test_rgba_png_keeps_its_alpha(tmp_path: Path) -> None:
    pixels = random_u8(4, 6, 4)
    Image.fromarray(pixels).save(tmp_path / "in.png")

    picture = read_picture(tmp_path / "in.png")
    assert picture.alpha is not None and picture.alpha.shape == (1, 1, 4, 6)
    assert np.array_equal(as_uint(picture.alpha, 255)[:, :, 0], pixels[:, :, 3])

    write_picture(picture, tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as written:
        assert written.mode == "RGBA"
        assert np.array_equal(np.asarray(written), pixels)


def _write_levels_source(path: Path, kind: str) -> None:
    if kind == "rgb16":
        save_16bit_cv2(path, random_u16(6, 5, 3))
    elif kind == "gray+alpha16":
        path.write_bytes(png16(random_u16(6, 5, 2), color_type=4))
    else:
        channels = {"rgb": 3, "rgba": 4, "gray": 1, "gray+alpha": 2}[kind]
        pixels = random_u8(6, 5, channels)
        Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels).save(path)


@pytest.mark.parametrize("kind", ["rgb", "rgba", "gray", "gray+alpha", "rgb16", "gray+alpha16"])
def test_levels_are_the_integers_the_float_picture_is_made_of(tmp_path: Path, kind: str) -> None:
    from imgan.tiling import unit

    _write_levels_source(tmp_path / "in.png", kind)
    as_float = read_picture(tmp_path / "in.png")
    as_levels = read_picture(tmp_path / "in.png", levels=True)
    assert as_levels.quantized and as_levels.rgb.dtype == (torch.uint16 if kind.endswith("16") else torch.uint8)
    assert as_levels.rgb.shape == as_float.rgb.shape == (1, 3, 6, 5)
    assert torch.equal(unit(as_levels.rgb), as_float.rgb)
    assert (as_levels.alpha is None) == (as_float.alpha is None)
    assert as_levels.alpha is None or torch.equal(unit(as_levels.alpha), as_float.alpha)
    assert (as_levels.bit_depth, as_levels.grayscale) == (as_float.bit_depth, as_float.grayscale)


def test_levels_of_a_turned_jpeg_are_upright(tmp_path: Path) -> None:
    from imgan.tiling import unit

    Image.fromarray(random_u8(4, 6, 3)).save(tmp_path / "turned.jpg", exif=exif_bytes(3))  # stored upside down
    as_levels = read_picture(tmp_path / "turned.jpg", levels=True)
    assert torch.equal(unit(as_levels.rgb), read_picture(tmp_path / "turned.jpg").rgb)


def test_la_png_is_gray_with_alpha(tmp_path: Path) -> None:
    pixels = random_u8(3, 5, 2)
    Image.fromarray(pixels).save(tmp_path / "in.png")  # Pillow mode LA

    picture = read_picture(tmp_path / "in.png")
    assert picture.grayscale and picture.alpha is not None
    assert np.array_equal(as_uint(picture.alpha, 255)[:, :, 0], pixels[:, :, 1])

    write_picture(picture, tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as written:
        assert written.mode == "LA"
        assert np.array_equal(np.asarray(written), pixels)


def test_palette_with_transparency_gives_alpha(tmp_path: Path) -> None:
    indices = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    palette = Image.fromarray(indices, mode="L").convert("P")
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    palette.save(tmp_path / "in.png", transparency=1)

    picture = read_picture(tmp_path / "in.png")
    assert picture.alpha is not None and not picture.grayscale
    assert as_uint(picture.alpha, 255)[:, :, 0].tolist() == [[255, 0], [255, 0]]
    assert as_uint(picture.rgb, 255)[1, 0].tolist() == [0, 0, 255]


def test_cmyk_jpeg_reads_as_rgb(tmp_path: Path) -> None:
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "in.jpg", quality=100)

    picture = read_picture(tmp_path / "in.jpg")
    assert picture.rgb.shape == (1, 3, 8, 8) and not picture.grayscale
    red, green, blue = as_uint(picture.rgb, 255)[4, 4]
    assert red > 240 and green < 15 and blue < 15


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp", "tiff", "bmp"])
def test_every_writable_format_reads_back(tmp_path: Path, fmt: str) -> None:
    pixels = np.zeros((8, 8, 3))
    pixels[:, 4:] = 1.0
    write_picture(make_picture(pixels), tmp_path / f"out.{fmt}")

    picture = read_picture(tmp_path / f"out.{fmt}")
    assert picture.source_format == fmt
    assert np.abs(as_uint(picture.rgb, 255) - np.rint(pixels * 255)).max() <= 8


def test_encode_and_decode_through_bytes(tmp_path: Path) -> None:
    pixels = random_u8(4, 4, 3)
    Image.fromarray(pixels).save(tmp_path / "in.png")
    picture = read_picture(tmp_path / "in.png")

    data = encode_picture(picture, format="png")
    again = decode_picture(data, name="<stdin>")
    assert data.startswith(b"\x89PNG")
    assert again.name == "<stdin>"
    assert torch.equal(again.rgb, picture.rgb)


# --------------------------------------------------------------------------- writing details


def test_values_are_rounded_not_truncated(tmp_path: Path) -> None:
    picture = make_picture(np.full((2, 2, 3), 100.6 / 255))
    write_picture(picture, tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as written:
        assert np.asarray(written)[0, 0].tolist() == [101, 101, 101]


def test_out_of_range_values_are_clamped(tmp_path: Path) -> None:
    pixels = np.array([[[-0.5, 1.5, float("nan")]]])
    write_picture(make_picture(pixels), tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as written:
        assert np.asarray(written)[0, 0].tolist() == [0, 255, 0]


def test_grayscale_output_uses_bt601_luma(tmp_path: Path) -> None:
    red = np.zeros((2, 2, 3))
    red[:, :, 0] = 1.0
    write_picture(make_picture(red, grayscale=True), tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as written:
        assert written.mode == "L"
        assert int(np.asarray(written)[0, 0]) == round(0.299 * 255)


def test_jpg_output_of_rgba_picture_composites_on_white(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    black = np.zeros((16, 16, 3))
    alpha = np.ones((16, 16, 1))
    alpha[:, :8] = 0.0  # left half fully transparent
    picture = make_picture(black, alpha=alpha)

    with caplog.at_level(logging.WARNING, logger="imgan.io"):
        write_picture(picture, tmp_path / "a.jpg")
        write_picture(picture, tmp_path / "b.jpg")

    with Image.open(tmp_path / "a.jpg") as written:
        pixels = np.asarray(written).astype(int)
    assert pixels[8, 2].min() > 245  # transparent -> white
    assert pixels[8, 13].max() < 10  # opaque black stays black
    assert sum("no alpha channel" in r.getMessage() for r in caplog.records) == 1


def test_webp_keeps_alpha_and_exif(tmp_path: Path) -> None:
    pixels = random_u8(6, 6, 4)
    pixels[:, :, 3] = 0
    pixels[:, 3:, 3] = 255
    Image.fromarray(pixels).save(tmp_path / "in.png", exif=exif_bytes(1))

    write_picture(read_picture(tmp_path / "in.png"), tmp_path / "out.webp")
    picture = read_picture(tmp_path / "out.webp")
    assert picture.alpha is not None
    assert as_uint(picture.alpha, 255)[0, :, 0].tolist() == [0, 0, 0, 255, 255, 255]
    exif = Image.Exif()
    exif.load(picture.exif)
    assert exif[0x010F] == "TestCam"


def test_write_rejects_unknown_format(tmp_path: Path) -> None:
    picture = make_picture(np.zeros((2, 2, 3)))
    with pytest.raises(OutputError, match=r"out\.gif"):
        write_picture(picture, tmp_path / "out.gif")
    with pytest.raises(OutputError, match="'heic'"):
        encode_picture(picture, format="heic")
    assert not (tmp_path / "out.gif").exists()


def test_quality_sets_jpeg_size_and_is_checked(tmp_path: Path) -> None:
    picture = make_picture(RNG.random((32, 32, 3)))
    assert len(encode_picture(picture, format="jpg", quality=10)) < len(
        encode_picture(picture, format="jpg"))
    with pytest.raises(ValueError, match="quality"):
        encode_picture(picture, format="jpg", quality=0)


def test_explicit_format_overrides_suffix(tmp_path: Path) -> None:
    write_picture(make_picture(np.zeros((2, 2, 3))), tmp_path / "out.bin", format="jpeg")
    assert (tmp_path / "out.bin").read_bytes()[:2] == b"\xff\xd8"


# --------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int) -> None:
    Image.fromarray(random_u8(3, 5, 3)).save(tmp_path / "in.png", exif=exif_bytes(orientation))

    picture = read_picture(tmp_path / "in.png")
    with Image.open(tmp_path / "in.png") as source:
        expected = np.asarray(ImageOps.exif_transpose(source))
    assert np.array_equal(as_uint(picture.rgb, 255), expected)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_to_16bit_png(tmp_path: Path, orientation: int) -> None:
    pixels = random_u16(3, 5)
    Image.fromarray(pixels).save(tmp_path / "in.png", exif=exif_bytes(orientation))

    picture = read_picture(tmp_path / "in.png")
    with Image.open(tmp_path / "in.png") as source:
        expected = np.asarray(ImageOps.exif_transpose(source))  # Pillow keeps I;16 here
    assert picture.bit_depth == 16
    assert np.array_equal(as_uint(picture.rgb, 65535)[:, :, 0], expected)


@pytest.mark.parametrize("compression", [None, "tiff_lzw"])
@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_tiff_orientation_is_applied_once(
    tmp_path: Path, orientation: int, bits: int, compression: str | None
) -> None:
    # Pillow and some OpenCV versions turn TIFFs upright themselves; it must not happen twice.
    pixels = random_u16(3, 5) if bits == 16 else random_u8(3, 5)
    Image.fromarray(pixels).save(tmp_path / "in.tif", tiffinfo={0x0112: orientation},
                                 compression=compression)
    quarter_turns = {3: 2, 6: -1, 8: 1}[orientation]  # positive: anticlockwise

    picture = read_picture(tmp_path / "in.tif")
    assert picture.bit_depth == bits
    scale = 65535 if bits == 16 else 255
    assert np.array_equal(as_uint(picture.rgb, scale)[:, :, 0], np.rot90(pixels, quarter_turns))


def test_jpeg_orientation_6_is_upright_and_written_exif_says_1(tmp_path: Path) -> None:
    stored = np.zeros((16, 32, 3), dtype=np.uint8)
    stored[:, :16] = 255  # white left half, as stored
    Image.fromarray(stored).save(tmp_path / "in.jpg", exif=exif_bytes(6), quality=100)

    picture = read_picture(tmp_path / "in.jpg")
    assert picture.rgb.shape == (1, 3, 32, 16)  # turned a quarter clockwise
    upright = as_uint(picture.rgb, 255)
    assert upright[4, 8].min() > 240 and upright[28, 8].max() < 15  # white on top

    write_picture(picture, tmp_path / "out.jpg")
    with Image.open(tmp_path / "out.jpg") as written:
        assert written.size == (16, 32)
        assert written.getexif()[0x0112] == 1
        assert written.getexif()[0x010F] == "TestCam"


# --------------------------------------------------------------------------- ICC & EXIF


@pytest.mark.parametrize("kind", ["png8", "jpg", "png16"])
def test_icc_profile_is_kept(tmp_path: Path, kind: str) -> None:
    profile = srgb_profile()
    suffix = "jpg" if kind == "jpg" else "png"
    if kind == "png16":  # OpenCV writes no profile, so add the iCCP chunk by hand
        save_16bit_cv2(tmp_path / "in.png", random_u16(4, 4, 3))
        data = (tmp_path / "in.png").read_bytes()
        chunk = png_chunk(b"iCCP", b"sRGB\0\0" + zlib.compress(profile))
        (tmp_path / "in.png").write_bytes(data[:33] + chunk + data[33:])
    else:
        Image.fromarray(random_u8(4, 4, 3)).save(tmp_path / f"in.{suffix}", icc_profile=profile)

    picture = read_picture(tmp_path / f"in.{suffix}")
    assert picture.icc_profile == profile

    write_picture(picture, tmp_path / f"out.{suffix}")
    with Image.open(tmp_path / f"out.{suffix}") as written:
        assert written.info.get("icc_profile") == profile


def test_16bit_png_keeps_exif_in_its_own_chunk(tmp_path: Path) -> None:
    Image.fromarray(random_u16(3, 5)).save(tmp_path / "in.png", exif=exif_bytes(8))

    picture = read_picture(tmp_path / "in.png")
    write_picture(picture, tmp_path / "out.png")
    data = (tmp_path / "out.png").read_bytes()
    assert png_chunks(data)[:2] == [b"IHDR", b"eXIf"]
    with Image.open(tmp_path / "out.png") as written:
        assert written.size == (3, 5)
        assert written.getexif()[0x0112] == 1
        assert written.getexif()[0x010F] == "TestCam"


def test_16bit_tiff_cannot_keep_icc_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    picture = make_picture(np.full((2, 2, 3), 0.25), bit_depth=16)
    picture.icc_profile = srgb_profile()
    with caplog.at_level(logging.WARNING, logger="imgan.io"):
        write_picture(picture, tmp_path / "out.tiff")
    assert any("ICC profile" in r.getMessage() for r in caplog.records)
    assert cv2.imread(str(tmp_path / "out.tiff"), cv2.IMREAD_UNCHANGED).dtype == np.uint16


# --------------------------------------------------------------------------- animation & size


def test_animated_gif_gives_first_frame_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    frames = [Image.new("RGB", (4, 4), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])

    with caplog.at_level(logging.WARNING, logger="imgan.io"):
        picture = read_picture(tmp_path / "anim.gif")
    assert as_uint(picture.rgb, 255)[0, 0].tolist() == [255, 0, 0]
    assert picture.source_format == "gif"
    assert any("anim.gif" in r.getMessage() and "2 frames" in r.getMessage()
               for r in caplog.records)


def test_bomb_guard_names_file_count_and_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Image.new("RGB", (20, 10)).save(tmp_path / "big.png")
    monkeypatch.chdir(tmp_path)

    with pytest.raises(InputError) as caught:
        read_picture("big.png", max_pixels=100)
    assert str(caught.value) == (
        "big.png: 200 pixels is over the limit of 100; pass --max-pixels 0 to allow it")
    assert read_picture("big.png", max_pixels=None).rgb.shape == (1, 3, 10, 20)
    assert read_picture("big.png", max_pixels=0).rgb.shape == (1, 3, 10, 20)


def png_with_header(width: int, height: int, *, complete: bool = True) -> bytes:
    """A PNG whose IHDR claims width x height (8-bit RGB) but holds almost no pixel data."""
    data = png16(np.zeros((1, 1), dtype=np.uint16), color_type=0)
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    data = data[:8] + header + data[33:]
    return data if complete else data[:-12]  # without IEND


def test_bomb_guard_reads_the_header_only() -> None:
    # Decoding 20000x20000 would fail as truncated after allocating 1.2 GB.
    with pytest.raises(InputError) as caught:
        decode_picture(png_with_header(20_000, 20_000), name="bomb.png")
    assert str(caught.value) == ("bomb.png: 400000000 pixels is over the limit of 178956970; "
                                 "pass --max-pixels 0 to allow it")


def test_pillows_own_bomb_check_stays_out_of_the_way() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow warns above 89 MP unless told not to
        with pytest.raises(InputError, match="^wide.png: 100000000 pixels is over the limit"):
            decode_picture(png_with_header(10_000, 10_000), name="wide.png", max_pixels=1000)
        # No limit: Pillow must not refuse the 400 MP header; the cut-off file fails as such.
        with pytest.raises(InputError, match="^huge.png: .*truncated"):
            decode_picture(png_with_header(20_000, 20_000, complete=False), name="huge.png",
                           max_pixels=None)


# --------------------------------------------------------------------------- bad inputs


def _missing(path: Path) -> None:
    pass


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _truncated_png(path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(random_u8(32, 32, 3)).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def _truncated_jpeg(path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(random_u8(64, 64, 3)).save(buffer, format="JPEG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def _truncated_16bit_png(path: Path) -> None:
    save_16bit_cv2(path, random_u16(32, 32, 3))
    path.write_bytes(path.read_bytes()[:-200])


def _garble_pixel_data(path: Path) -> None:
    """Keep every chunk complete and checksummed, but make the compressed pixels garbage."""
    data = path.read_bytes()
    start = data.index(b"IDAT") - 4
    (length,) = struct.unpack_from(">I", data, start)
    garbage = png_chunk(b"IDAT", b"\x78\x9c" + bytes(range(200, 256)) * 4)
    path.write_bytes(data[:start] + garbage + data[start + 12 + length :])


def _corrupt_png(path: Path) -> None:
    Image.fromarray(random_u8(32, 32, 3)).save(path)
    _garble_pixel_data(path)


def _corrupt_16bit_png(path: Path) -> None:
    save_16bit_cv2(path, random_u16(32, 32, 3))
    _garble_pixel_data(path)


def _not_an_image(path: Path) -> None:
    path.write_text("hello, I am a text file\n")


def _directory(path: Path) -> None:
    path.mkdir()


def _unsupported_format(path: Path) -> None:
    Image.new("RGB", (16, 16)).save(path, format="ICO")


def _float_tiff(path: Path) -> None:
    Image.fromarray(np.zeros((4, 4), dtype=np.float32)).save(path, format="TIFF")


def _float_rgb_tiff(path: Path) -> None:  # Pillow has no mode for it and cannot open it at all
    assert cv2.imwrite(str(path), RNG.random((4, 5, 3), dtype=np.float32))


def _png_with_a_flipped_pixel_byte(path: Path) -> None:  # Pillow alone decodes it into other pixels
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path, compress_level=0)
    data = bytearray(path.read_bytes())
    data[data.index(b"IDAT") + 20] ^= 0x10
    path.write_bytes(bytes(data))


def _palette_png_without_plte(path: Path) -> None:
    rows = b"".join(b"\0" + bytes([1, 2, 3, 4]) for _ in range(4))
    header = struct.pack(">IIBBBBB", 4, 4, 8, 3, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(rows))
                     + png_chunk(b"IEND", b""))


@pytest.mark.parametrize(
    ("make", "name", "words"),
    [
        (_missing, "photo.png", "no such file"),
        (_empty, "empty.png", "empty file"),
        (_truncated_png, "cut.png", "truncated"),
        (_truncated_jpeg, "cut.jpg", "truncated"),
        (_truncated_16bit_png, "cut16.png", "truncated"),
        (_corrupt_png, "bad.png", "corrupt"),
        (_corrupt_16bit_png, "bad16.png", "corrupt"),
        (_not_an_image, "notes.png", "not an image"),
        (_directory, "folder.png", "directory"),
        (_unsupported_format, "icon.ico", "not a format imgan reads"),
        (_float_tiff, "float.tif", "not supported"),
        (_float_rgb_tiff, "float_rgb.tif",
         "TIFF with 32-bit floating-point samples (RGB, 3 per pixel) is not supported"),
        (_palette_png_without_plte, "nopalette.png", "palette image without its PLTE"),
        (_png_with_a_flipped_pixel_byte, "flipped.png", "its 'IDAT' chunk fails its checksum"),
    ],
)
def test_unreadable_inputs_raise_input_error_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make, name: str, words: str
) -> None:
    monkeypatch.chdir(tmp_path)
    make(tmp_path / name)
    with pytest.raises(InputError) as caught:
        read_picture(name)
    message = str(caught.value)
    assert message.startswith(f"{name}: ")
    assert words in message
    assert "\n" not in message
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.skipif(not Path("/dev/null").is_char_device(), reason="needs /dev/null")
def test_a_device_is_not_a_regular_file() -> None:
    with pytest.raises(InputError, match=r"^/dev/null: not a regular file \(a character device\)"):
        read_picture("/dev/null")


def run_imgan_measured(arguments: list[str], *, cwd: Path) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run the CLI (under a timeout) and return its result and its peak resident memory in bytes."""
    wrapper = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024); sys.exit(code)")
    command = [sys.executable, "-c", wrapper, sys.executable, "-m", "imgan", *arguments]
    with subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # imgan too, not only the wrapper
            raise
    *output, peak = stdout.splitlines()
    return subprocess.CompletedProcess(command, process.returncode, "\n".join(output), stderr), int(peak)


INPAINT_WITHOUT_WEIGHTS = ["--box", "0,0,1,1", "--model", "telea", "--out", "out"]


@pytest.mark.skipif(sys.platform != "linux", reason="named pipes and ru_maxrss in KiB")
def test_a_named_pipe_given_as_input_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.png")  # reading it as a file would wait for a writer forever
    Image.new("RGB", (2, 2)).save(tmp_path / "fine.png")
    result, _ = run_imgan_measured(["inpaint", "pipe.png", "fine.png", *INPAINT_WITHOUT_WEIGHTS], cwd=tmp_path)
    assert result.returncode == 1
    assert "pipe.png: not a regular file (a named pipe); give image files, or '-' to read stdin" in result.stderr
    assert (tmp_path / "out" / "fine_inpainted.png").is_file()
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="sparse files and ru_maxrss in KiB")
def test_a_huge_file_that_is_no_image_is_refused_without_being_read_whole(tmp_path: Path) -> None:
    size = 2 * 2**30
    with open(tmp_path / "huge.png", "wb") as file:
        file.truncate(size)  # sparse: no disk used, yet 2 GB of zeros to read
    result, peak = run_imgan_measured(["inpaint", "huge.png", *INPAINT_WITHOUT_WEIGHTS], cwd=tmp_path)
    assert result.returncode == 1
    assert "huge.png: not an image, or not a format imgan reads" in result.stderr
    assert peak < size // 2  # torch and all, but not the file


def test_a_bad_checksum_on_an_ancillary_chunk_is_ignored() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (3, 2), (10, 20, 30)).save(buffer, format="PNG")
    data = buffer.getvalue()
    end = data.rindex(b"IEND") - 4
    text = struct.pack(">I", 3) + b"tEXt" + b"a\0b" + b"\0\0\0\0"  # after the pixels, checksum 0
    picture = decode_picture(data[:end] + text + data[end:], name="x.png")
    assert as_uint(picture.rgb, 255)[0, 0].tolist() == [10, 20, 30]


def test_decode_of_garbage_bytes_names_the_stream() -> None:
    with pytest.raises(InputError, match=r"^<stdin>: not an image"):
        decode_picture(b"\x00" * 100, name="<stdin>")


# --------------------------------------------------------------------------- atomic writes


def test_failing_encoder_leaves_target_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def half_then_fail(self: Image.Image, fp: io.BytesIO, *args: object, **kwargs: object) -> None:
        fp.write(b"\x89PNG half an image")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", half_then_fail)
    with pytest.raises(OutputError, match=r"out\.png.*No space left"):
        write_picture(make_picture(np.zeros((4, 4, 3))), target)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


@pytest.mark.parametrize("failure", [OSError(5, "Input/output error"), KeyboardInterrupt()])
def test_interrupted_write_removes_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def fail(fd: int) -> None:
        assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # written beside it
        raise failure

    monkeypatch.setattr(imgan_io.os, "fsync", fail)
    expected = OutputError if isinstance(failure, OSError) else KeyboardInterrupt
    with pytest.raises(expected):
        write_picture(make_picture(np.zeros((4, 4, 3))), target)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def _age(path: Path, seconds: float) -> Path:
    """Set a file's modification time ``seconds`` into the past."""
    when = time.time() - seconds
    os.utime(path, (when, when), follow_symlinks=False)
    return path


def test_old_temporary_files_of_a_killed_run_are_removed_by_the_next_write(tmp_path: Path) -> None:
    stale = STALE_TEMPORARY_SECONDS + 60
    (tmp_path / "sub").mkdir()
    old = [tmp_path / name for name in (".out.png.k2j_x9aq.tmp", ".a.b.c.jpg.00000000.tmp")]
    for path in old:
        path.write_bytes(b"half")
        _age(path, stale)
    kept = {
        ".out.png.abcd1234.tmp": "fresh",  # a write still under way in another process
        ".out.png.ABCD1234.tmp": "other",  # not tempfile's alphabet
        "out.png.abcd1234.tmp": "other",  # no leading dot
        ".out.png.abcd123.tmp": "other",  # 7 random characters
        ".notes.tmp": "other",
        "sub/.out.png.abcd1234.tmp": "other folder",
    }
    for name, why in kept.items():
        (tmp_path / name).write_bytes(b"keep")
        if why != "fresh":
            _age(tmp_path / name, stale)
    (tmp_path / ".dir.png.abcd1234.tmp").mkdir()
    _age(tmp_path / ".dir.png.abcd1234.tmp", stale)
    (tmp_path / ".link.png.abcd1234.tmp").symlink_to(tmp_path / "sub" / ".out.png.abcd1234.tmp")
    _age(tmp_path / ".link.png.abcd1234.tmp", stale)

    write_picture(make_picture(np.zeros((2, 2, 3))), tmp_path / "new.png")
    assert not any(path.exists() for path in old)
    assert all((tmp_path / name).read_bytes() == b"keep" for name in kept)
    assert (tmp_path / ".dir.png.abcd1234.tmp").is_dir() and (tmp_path / ".link.png.abcd1234.tmp").is_symlink()


def test_temporary_files_of_other_users_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / ".out.png.abcd1234.tmp"
    stale.write_bytes(b"theirs")
    _age(stale, STALE_TEMPORARY_SECONDS + 60)
    monkeypatch.setattr(os, "getuid", lambda: stale.stat().st_uid + 1, raising=False)
    write_picture(make_picture(np.zeros((2, 2, 3))), tmp_path / "new.png")
    assert stale.read_bytes() == b"theirs"


def test_a_folder_is_swept_once_per_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scans: list[str] = []
    scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path: scans.append(os.fspath(path)) or scandir(path))
    for index in range(3):
        write_picture(make_picture(np.zeros((2, 2, 3))), tmp_path / f"new{index}.png")
    assert scans == [str(tmp_path)]


def test_write_creates_missing_folders(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.png"
    write_picture(make_picture(np.zeros((2, 2, 3))), target)
    assert target.read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.png"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_written_file_gets_normal_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    write_picture(make_picture(np.zeros((2, 2, 3))), tmp_path / "new.png")
    assert (tmp_path / "new.png").stat().st_mode & 0o777 == 0o666 & ~umask

    (tmp_path / "kept.png").write_bytes(b"old")
    (tmp_path / "kept.png").chmod(0o640)
    write_picture(make_picture(np.zeros((2, 2, 3))), tmp_path / "kept.png")
    assert (tmp_path / "kept.png").stat().st_mode & 0o777 == 0o640


def test_writing_onto_a_directory_is_an_output_error(tmp_path: Path) -> None:
    (tmp_path / "out.png").mkdir()
    with pytest.raises(OutputError, match="directory"):
        write_picture(make_picture(np.zeros((2, 2, 3))), tmp_path / "out.png")


# --------------------------------------------------------------------------- names


def test_format_for_path_names_canonical_formats() -> None:
    assert format_for_path("a/b.JPEG") == "jpg"
    assert format_for_path("b.tif") == "tiff"
    assert format_for_path("b.webp") == "webp"
    assert format_for_path("b.gif", for_reading=True) == "gif"
    with pytest.raises(OutputError, match=r"^b\.gif: "):
        format_for_path("b.gif")
    with pytest.raises(OutputError, match="without a suffix"):
        format_for_path("noext")
    with pytest.raises(InputError, match=r"^b\.xyz: "):
        format_for_path("b.xyz", for_reading=True)


def test_is_image_path_by_suffix() -> None:
    assert is_image_path("x/photo.JPG") and is_image_path("scan.tiff") and is_image_path("a.gif")
    assert not is_image_path("notes.txt") and not is_image_path(".photo.png.abc123.tmp")


def test_importing_io_is_cheap() -> None:
    heavy = "{'torch', 'numpy', 'PIL', 'cv2'}"
    code = f"import sys, imgan.io; print(sorted({heavy} & sys.modules.keys()))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parents[1])
    assert result.stdout.strip() == "[]"
