"""A fuzz corpus of image inputs, made by code at test time (nothing is committed).

``make_corpus(folder)`` writes a few hundred tiny files and returns what each one is and what
must happen to it:

- ``control``: valid images in every format and pixel mode imgan reads (1, L, LA, P with and
  without transparency, RGB, RGBA, CMYK, 16-bit gray/RGB/RGBA, EXIF orientations, animations,
  odd sizes), plus the same files under a wrong suffix. Every command must write each of them,
  at the size recorded (upright, first frame).
- ``fail``: what no command may turn into an output: empty and text files, bare signatures,
  files cut short in their header or pixels, headers that claim 100000x100000 pixels, a small
  zlib bomb over the ``--max-pixels`` the tests use, a palette PNG without its palette, a
  float RGB TIFF, broken chunk structure, directories named like images, symlink loops,
  dangling symlinks.
- ``any``: damaged files that a decoder may still read (bytes flipped inside the pixel data,
  odd modes imgan may refuse, huge metadata chunks): either an output or a one-line failure.

``scale`` multiplies the corruptions made of each valid file (1: about 350 files; 4: about
1,200, for ``benchmarks/fuzz_full.py``).
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

MAX_PIXELS = 250_000
"""The ``--max-pixels`` the fuzz runs use: the small zlib bomb (2000x2000) is over it."""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Entry:
    """One input of the corpus: its path, what must happen to it, and why it is there."""

    path: Path
    expect: str  # "control" | "fail" | "any"
    kind: str
    size: tuple[int, int] | None = None
    """(width, height) of a control as read: upright, first frame."""


@dataclass
class Corpus:
    folder: Path
    entries: list[Entry] = field(default_factory=list)

    def by_expectation(self, expect: str) -> list[Entry]:
        return [entry for entry in self.entries if entry.expect == expect]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in self.entries:
            counts[entry.kind] = counts.get(entry.kind, 0) + 1
        return counts


# --------------------------------------------------------------------------- valid images


def _pixels(rng: np.random.Generator, width: int, height: int, channels: int, dtype: type = np.uint8) -> np.ndarray:
    top = np.iinfo(dtype).max
    return rng.integers(0, top + 1, size=(height, width, channels), dtype=dtype)


def _pillow(image: Image.Image, format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png(width: int, height: int, *, depth: int = 8, colour: int = 2, rows: bytes | None = None,
         extra: bytes = b"", palette: bytes | None = None, interlace: int = 0) -> bytes:
    """A PNG made by hand: IHDR, optional chunks, optional PLTE, IDAT, IEND."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 3)
    if rows is None:
        row = b"\0" + bytes(width * channels * depth // 8)
        rows = row * height
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    plte = b"" if palette is None else _chunk(b"PLTE", palette)
    return (PNG_SIGNATURE + _chunk(b"IHDR", header) + extra + plte + _chunk(b"IDAT", zlib.compress(rows, 9))
            + _chunk(b"IEND", b""))


def _cv2(array: np.ndarray, suffix: str) -> bytes:
    if array.ndim == 3 and array.shape[2] >= 3:
        array = array[:, :, [2, 1, 0, 3][: array.shape[2]]]
    ok, encoded = cv2.imencode(suffix, np.ascontiguousarray(array))
    assert ok, suffix
    return encoded.tobytes()


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _valid(rng: np.random.Generator) -> list[tuple[str, str, bytes, tuple[int, int]]]:
    """(stem, suffix, bytes, upright size) of valid images in every layout imgan reads."""
    made: list[tuple[str, str, bytes, tuple[int, int]]] = []

    def add(stem: str, suffix: str, data: bytes, size: tuple[int, int]) -> None:
        made.append((stem, suffix, data, size))

    sizes = [(1, 1), (1, 9), (9, 1), (3, 5), (16, 16), (33, 21), (7, 12)]

    def size_for(index: int) -> tuple[int, int]:
        return sizes[index % len(sizes)]

    rgb = lambda w, h: Image.fromarray(_pixels(rng, w, h, 3), "RGB")  # noqa: E731
    rgba = lambda w, h: Image.fromarray(_pixels(rng, w, h, 4), "RGBA")  # noqa: E731
    gray = lambda w, h: Image.fromarray(_pixels(rng, w, h, 1)[:, :, 0], "L")  # noqa: E731

    modes: dict[str, Callable[[int, int], Image.Image]] = {
        "1": lambda w, h: gray(w, h).convert("1"),
        "L": gray,
        "LA": lambda w, h: Image.merge("LA", (gray(w, h), gray(w, h))),
        "P": lambda w, h: rgb(w, h).quantize(16),
        "RGB": rgb,
        "RGBA": rgba,
        "CMYK": lambda w, h: rgb(w, h).convert("CMYK"),
    }
    index = 0
    formats = {
        "png": ("PNG", "1 L LA P RGB RGBA"),
        "tif": ("TIFF", "1 L LA P RGB RGBA CMYK"),
        "jpg": ("JPEG", "L RGB CMYK"),
        "webp": ("WEBP", "RGB RGBA"),
        "bmp": ("BMP", "1 L P RGB"),
        "gif": ("GIF", "L P"),
        "ppm": ("PPM", "RGB"),
        "pgm": ("PPM", "L"),
        "pbm": ("PPM", "1"),
    }
    for suffix, (format, names) in formats.items():
        for mode in names.split():
            width, height = size_for(index)
            index += 1
            add(f"{suffix}_{mode.lower()}", suffix, _pillow(modes[mode](width, height), format), (width, height))

    # Transparency, 16 bits, orientation, animation, compression and layout variants.
    width, height = 11, 6
    palette = rgb(width, height).quantize(8)
    palette.info["transparency"] = 3
    add("png_p_transparent", "png", _pillow(palette, "PNG", transparency=3), (width, height))
    add("gif_p_transparent", "gif", _pillow(palette, "GIF", transparency=3), (width, height))
    gray16 = Image.fromarray(_pixels(rng, width, height, 1, np.uint16)[:, :, 0])
    add("png_i16", "png", _pillow(gray16, "PNG"), (width, height))
    add("tif_i16", "tif", _pillow(gray16, "TIFF"), (width, height))
    add("pgm_16", "pgm", _pillow(gray16, "PPM"), (width, height))
    add("png_rgb16", "png", _cv2(_pixels(rng, width, height, 3, np.uint16), ".png"), (width, height))
    add("png_rgba16", "png", _cv2(_pixels(rng, width, height, 4, np.uint16), ".png"), (width, height))
    add("png_gray16", "png", _cv2(_pixels(rng, width, height, 1, np.uint16)[:, :, 0], ".png"), (width, height))
    add("tif_rgb16", "tif", _cv2(_pixels(rng, width, height, 3, np.uint16), ".tiff"), (width, height))
    add("tif_rgba16", "tif", _cv2(_pixels(rng, width, height, 4, np.uint16), ".tiff"), (width, height))
    rows16 = b"".join(b"\0" + _pixels(rng, width, 1, 2, np.uint16).astype(">u2").tobytes() for _ in range(height))
    add("png_la16", "png", _png(width, height, depth=16, colour=4, rows=rows16), (width, height))
    for orientation in range(1, 9):
        size = (width, height) if orientation < 5 else (height, width)
        add(f"jpg_orientation{orientation}", "jpg", _pillow(rgb(width, height), "JPEG", exif=_exif(orientation)), size)
        if orientation in (3, 6):
            add(f"png_orientation{orientation}", "png", _pillow(rgb(width, height), "PNG", exif=_exif(orientation)),
                size)
            add(f"tif_orientation{orientation}", "tif",
                _pillow(rgb(width, height), "TIFF", tiffinfo={0x0112: orientation}), size)
    frames = [rgb(width, height) for _ in range(3)]
    add("gif_animated", "gif", _pillow(frames[0], "GIF", save_all=True, append_images=frames[1:]), (width, height))
    add("png_animated", "png", _pillow(frames[0], "PNG", save_all=True, append_images=frames[1:]), (width, height))
    add("webp_animated", "webp", _pillow(frames[0], "WEBP", save_all=True, append_images=frames[1:]),
        (width, height))
    add("tif_multipage", "tif", _pillow(frames[0], "TIFF", save_all=True, append_images=frames[1:]), (width, height))
    add("webp_lossless", "webp", _pillow(rgba(width, height), "WEBP", lossless=True), (width, height))
    add("jpg_progressive", "jpg", _pillow(rgb(width, height), "JPEG", progressive=True), (width, height))
    add("png_by_opencv", "png", _cv2(_pixels(rng, width, height, 3), ".png"), (width, height))
    # Adam7 on 2x2: pass 1 holds pixel (0,0), pass 6 pixel (1,0), pass 7 the second row.
    passes = b"\0" + bytes(_pixels(rng, 1, 1, 3)) + b"\0" + bytes(_pixels(rng, 1, 1, 3)) + b"\0" + bytes(
        _pixels(rng, 2, 1, 3))
    add("png_interlaced", "png", _png(2, 2, rows=passes, interlace=1), (2, 2))
    add("tif_lzw", "tif", _pillow(rgb(width, height), "TIFF", compression="tiff_lzw"), (width, height))
    add("tif_deflate", "tif", _pillow(rgb(width, height), "TIFF", compression="tiff_adobe_deflate"),
        (width, height))
    add("tif_jpeg", "tif", _pillow(rgb(16, 16), "TIFF", compression="jpeg"), (16, 16))
    add("tif_pa", "tif", _pillow(Image.new("PA", (width, height)), "TIFF"), (width, height))
    add("tif_ycbcr", "tif", _pillow(rgb(width, height).convert("YCbCr"), "TIFF"), (width, height))
    add("bmp_rgba", "bmp", _pillow(rgba(width, height), "BMP"), (width, height))
    add("png_palette_gray", "png", _png(4, 3, colour=3, rows=(b"\0" + bytes([0, 1, 2, 1])) * 3,
                                       palette=bytes(range(9))), (4, 3))
    return made


# --------------------------------------------------------------------------- damage


def _flip(rng: np.random.Generator, data: bytes, count: int, start: int) -> bytes:
    """``count`` bytes inverted at random places from ``start`` (past the signature) on."""
    array = bytearray(data)
    start = min(start, len(array) - 1)
    for position in rng.integers(start, len(array), size=count):
        array[position] ^= 0xFF
    return bytes(array)


def _bombs() -> dict[str, tuple[str, bytes]]:
    """Headers that claim far more pixels than they hold, and a real zlib bomb."""
    bombs = {
        "bomb_png": ("png", _png(100_000, 100_000, rows=b"\0" * 301)[:-12]),
        "bomb_png_complete": ("png", _png(100_000, 100_000, rows=b"\0" * 301)),
        "bomb_png_small_zlib": ("png", _png(2000, 2000, colour=0)),  # 4 MB of pixels from 4 KB
        "bomb_bmp": ("bmp", b"BM" + struct.pack("<IHHI", 70, 0, 0, 54)
                     + struct.pack("<IiiHHIIiiII", 40, 100_000, 100_000, 1, 24, 0, 16, 2835, 2835, 0, 0)
                     + bytes(16)),
        "bomb_ppm": ("ppm", b"P6\n100000 100000\n255\n" + bytes(30)),
        "bomb_gif": ("gif", b"GIF89a" + struct.pack("<HHBBB", 65535, 65535, 0, 0, 0)
                     + b"\x2c" + struct.pack("<HHHHB", 0, 0, 65535, 65535, 0) + b"\x02\x02\x44\x01\x00\x3b"),
        "bomb_jpg": ("jpg", _jpeg_with_size(65_000, 65_000)),
        "bomb_tif": ("tif", _tiff_with_size(100_000, 100_000)),
        "bomb_webp": ("webp", _webp_with_canvas(16_000, 16_000)),
    }
    return bombs


def _jpeg_with_size(width: int, height: int) -> bytes:
    data = _pillow(Image.new("RGB", (8, 8)), "JPEG")
    at = data.index(b"\xff\xc0")
    return data[: at + 5] + struct.pack(">HH", height, width) + data[at + 9 :]


def _tiff_with_size(width: int, height: int) -> bytes:
    data = bytearray(_pillow(Image.new("L", (8, 8)), "TIFF"))
    (offset,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, offset)
    for entry in range(count):
        at = offset + 2 + 12 * entry
        tag, kind = struct.unpack_from("<HH", data, at)
        if tag in (256, 257):
            value = width if tag == 256 else height
            struct.pack_into("<HHII", data, at, tag, 4, 1, value)  # LONG
    return bytes(data)


def _webp_with_canvas(width: int, height: int) -> bytes:
    data = _pillow(Image.new("RGB", (8, 8)), "WEBP")
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0" + (width - 1).to_bytes(3, "little") + (
        height - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x + data[12:]
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _specials(rng: np.random.Generator) -> list[tuple[str, str, str, bytes]]:
    """(stem, suffix, expectation, bytes) of hand-made broken or odd files."""
    rgb_png = _pillow(Image.fromarray(_pixels(rng, 6, 5, 3)), "PNG")
    specials: list[tuple[str, str, str, bytes]] = []
    for suffix in ("png", "jpg", "webp", "tif", "bmp", "gif", "ppm"):
        specials.append((f"empty_{suffix}", suffix, "fail", b""))
    for stem, suffix, data in [
        ("text", "png", b"hello, I am a text file\n"),
        ("random", "jpg", bytes(rng.integers(0, 256, 512, dtype=np.uint8))),
        ("zeros", "tif", bytes(1024)),
        ("html", "webp", b"<!DOCTYPE html><html><body>404 not found</body></html>"),
        ("sig_png", "png", PNG_SIGNATURE),
        ("sig_jpg", "jpg", b"\xff\xd8\xff"),
        ("sig_gif", "gif", b"GIF89a"),
        ("sig_bmp", "bmp", b"BM"),
        ("sig_tif", "tif", b"II*\x00"),
        ("sig_tif_big_endian", "tif", b"MM\x00*"),
        ("sig_webp", "webp", b"RIFF\x00\x00\x00\x00WEBP"),
        ("sig_ppm", "ppm", b"P6\n"),
        ("png_no_idat", "png", PNG_SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
         + _chunk(b"IEND", b"")),
        ("png_no_plte", "png", _png(4, 4, colour=3, rows=(b"\0" + bytes([1, 2, 3, 4])) * 4)),
        ("png_zero_size", "png", _png(0, 0, rows=b"")),
        ("png_chunk_length_huge", "png", rgb_png[:33] + struct.pack(">I", 0xFFFFFFF0) + b"IDAT" + rgb_png[41:]),
        ("png_bad_ihdr_crc", "png", rgb_png[:29] + b"\0\0\0\0" + rgb_png[33:]),
        ("png_bad_depth", "png", _png(4, 4, depth=7, colour=2)),
        ("png_bad_colour_type", "png", _png(4, 4, colour=5)),
        ("png_idat_garbage", "png", rgb_png[:33] + _chunk(b"IDAT", b"\x78\x9c" + bytes(range(200, 256)) * 4)
         + _chunk(b"IEND", b"")),
        ("png_iccp_bomb", "png", _png(4, 4, extra=_chunk(b"iCCP", b"icc\0\0" + zlib.compress(bytes(5_000_000), 9)))),
        ("gif_no_frames", "gif", b"GIF89a" + struct.pack("<HHBBB", 4, 4, 0, 0, 0) + b"\x3b"),
        ("tif_float_rgb", "tif", _cv2(rng.random((5, 4, 3), dtype=np.float32), ".tiff")),
        ("tif_loop_ifd", "tif", b"II*\x00\x08\x00\x00\x00" + struct.pack("<H", 0) + struct.pack("<I", 8)),
        ("bmp_bad_offset", "bmp", b"BM" + struct.pack("<IHHI", 70, 0, 0, 0xFFFFFF)
         + struct.pack("<IiiHHIIiiII", 40, 4, 4, 1, 24, 0, 48, 2835, 2835, 0, 0) + bytes(48)),
        ("ppm_bad_maxval", "ppm", b"P6\n4 4\n0\n" + bytes(48)),
    ]:
        specials.append((stem, suffix, "fail", data))
    for stem, (suffix, data) in _bombs().items():
        specials.append((stem, suffix, "fail", data))
    # Decodable or not, as the decoder sees fit: odd modes, big metadata, odd but legal structure.
    specials += [
        ("tif_float_gray", "tif", "any", _pillow(Image.fromarray(rng.random((5, 4), dtype=np.float32)), "TIFF")),
        ("tif_int32", "tif", "any", _pillow(Image.fromarray(rng.integers(-9, 9, (5, 4), dtype=np.int32)), "TIFF")),
        ("tif_lab", "tif", "any", _pillow(Image.new("LAB", (5, 4)), "TIFF")),
        ("tif_i16_big_endian", "tif", "any", _pillow(Image.new("I;16B", (5, 4)), "TIFF")),
        ("pgm_i32", "pgm", "any", b"P5\n4 3\n65535\n" + bytes(24)),
        ("png_exif_huge", "png", "any", _png(5, 4, extra=_chunk(b"eXIf", b"MM\x00*" + bytes(300_000)))),
        ("png_exif_garbage", "png", "any", _png(5, 4, extra=_chunk(b"eXIf", bytes(rng.integers(0, 256, 999,
                                                                                              dtype=np.uint8))))),
        ("png_iccp_garbage", "png", "any", _png(5, 4, extra=_chunk(b"iCCP", b"icc\0\0" + zlib.compress(
            bytes(rng.integers(0, 256, 200_000, dtype=np.uint8)))))),
        ("png_text_many", "png", "any", _png(5, 4, extra=b"".join(_chunk(b"tEXt", b"k\0" + b"v" * 1000)
                                                                  for _ in range(200)))),
        ("jpg_exif_orientation_9", "jpg", "any", _pillow(Image.new("RGB", (5, 4)), "JPEG", exif=_exif(9))),
        ("jpg_exif_garbage", "jpg", "any", _jpeg_with_app1(b"Exif\0\0" + bytes(rng.integers(0, 256, 500,
                                                                                          dtype=np.uint8)))),
        ("png_palette_short", "png", "any", _png(4, 3, colour=3, rows=(b"\0" + bytes([0, 9, 200, 255])) * 3,
                                                 palette=bytes(6))),
        ("png_trailing_garbage", "png", "any", rgb_png + bytes(rng.integers(0, 256, 100, dtype=np.uint8))),
        ("jpg_trailing_garbage", "jpg", "any", _pillow(Image.new("RGB", (5, 4)), "JPEG") + b"garbage" * 10),
    ]
    return specials


def _jpeg_with_app1(payload: bytes) -> bytes:
    data = _pillow(Image.new("RGB", (5, 4)), "JPEG")
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:]


# --------------------------------------------------------------------------- the corpus


_OTHER_SUFFIX = {"png": "jpg", "jpg": "png", "webp": "tif", "tif": "webp", "bmp": "gif", "gif": "bmp",
                 "ppm": "png", "pgm": "jpeg", "pbm": "tiff"}


def make_corpus(folder: Path, *, seed: int = 0, scale: int = 1) -> Corpus:
    """Write the corpus into ``folder`` (created; must be empty) and describe it."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    corpus = Corpus(folder)

    def write(name: str, data: bytes, expect: str, kind: str, size: tuple[int, int] | None = None) -> None:
        path = folder / name
        assert not path.exists() and not path.is_symlink(), name
        path.write_bytes(data)
        corpus.entries.append(Entry(path, expect, kind, size))

    valid = _valid(rng)
    for stem, suffix, data, size in valid:
        write(f"{stem}.{suffix}", data, "control", "valid", size)
        write(f"{stem}_as.{_OTHER_SUFFIX[suffix]}", data, "control", "mislabelled", size)
    write("png_named_txt.txt", valid[0][2], "control", "mislabelled", valid[0][3])
    write("jpg_no_suffix", next(v for v in valid if v[1] == "jpg")[2], "control", "mislabelled",
          next(v for v in valid if v[1] == "jpg")[3])

    for stem, suffix, data, _ in valid:
        # Cut inside the header and inside the pixels. The last byte is kept: a JPEG whose
        # end-of-image marker is cut, or a TIFF whose last padding byte is, is still whole.
        cuts = sorted({max(1, len(data) * part // (2 * scale + 2)) for part in range(1, 2 * scale + 2)} | {12})
        for cut in cuts:
            if cut < len(data) - 2:
                # A TIFF of three pages cut in its last ones still holds a whole first page.
                expect = "any" if stem == "tif_multipage" and cut > len(data) // 3 else "fail"
                write(f"{stem}_cut{cut}.{suffix}", data[:cut], expect, "truncated")
        for flip in range(2 * scale):
            count = 1 + 3 * flip
            write(f"{stem}_flip{flip}.{suffix}", _flip(rng, data, count, 16), "any", "byte flips")

    for stem, suffix, expect, data in _specials(rng):
        write(f"{stem}.{suffix}", data, expect, "broken" if expect == "fail" else "odd")

    for name in ("unicode_ünïcødé.png", "with space.png", "[brackets].png", "star*.png", "{stem}.png", ".hidden.png"):
        write(name, _pillow(Image.fromarray(_pixels(rng, 5, 4, 3)), "PNG"), "control", "odd name", (5, 4))

    _add_file_system_oddities(corpus, rng)
    return corpus


def _add_file_system_oddities(corpus: Corpus, rng: np.random.Generator) -> None:
    """Directories named like images, symlinks: loops, dangling, and to a good image."""
    folder = corpus.folder
    (folder / "folder.png").mkdir()
    corpus.entries.append(Entry(folder / "folder.png", "fail", "directory"))
    (folder / "folder_with_text.jpg").mkdir()
    (folder / "folder_with_text.jpg" / "notes.txt").write_text("not an image")
    corpus.entries.append(Entry(folder / "folder_with_text.jpg", "fail", "directory"))
    if not hasattr(os, "symlink"):
        return
    os.symlink("loop_b.png", folder / "loop_a.png")
    os.symlink("loop_a.png", folder / "loop_b.png")
    os.symlink("self.png", folder / "self.png")
    os.symlink("missing.png", folder / "dangling.png")
    for name in ("loop_a.png", "loop_b.png", "self.png", "dangling.png"):
        corpus.entries.append(Entry(folder / name, "fail", "symlink"))
    # Only the link is an input: given both, imgan would read the image once, under the first name.
    (folder / "linked_target.image").write_bytes(_pillow(Image.fromarray(_pixels(rng, 6, 3, 3)), "PNG"))
    os.symlink("linked_target.image", folder / "link_to_image.png")
    corpus.entries.append(Entry(folder / "link_to_image.png", "control", "symlink", (6, 3)))


# --------------------------------------------------------------------------- running and checking

SCALES = {"upscale": 2, "stylize": 1, "sketch2photo": 1, "age": 1}
"""How much larger than its input each command's output is."""

_TEMPORARY = re.compile(r"\..{1,100}\.[a-z0-9_]{8}\.tmp", re.DOTALL)
# batch.describe_error writes "<input>: <ExceptionType>: ..." for anything that is not an ImganError.
_UNHANDLED = re.compile(r"(\w+Error|\w+Exception|error|\w+Warning): ")


def tiny_models(folder: Path) -> dict[str, Path]:
    """Random-weight model files, one per image command, small enough for CPU fuzzing."""
    import torch

    from imgan.archs import build_model
    from imgan.archs.srvgg import SRVGGNetCompact

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    models = {name: folder / f"{name}.pth" for name in SCALES}
    torch.save({"params": SRVGGNetCompact(num_features=4, num_conv=1, scale=2).state_dict()}, models["upscale"])
    torch.save(build_model("cyclegan", {"num_features": 4, "num_blocks": 1}).state_dict(), models["stylize"])
    torch.save(build_model("pix2pix", {"num_features": 4, "num_downs": 6}).state_dict(), models["sketch2photo"])
    torch.save(build_model("aginggan", {"num_features": 4, "num_blocks": 1}).state_dict(), models["age"])
    return models


def command_line(command: str, corpus: Corpus, model: Path, out: Path) -> list[str]:
    """The arguments of one batch: every input of the corpus, JSON records, outputs into ``out``."""
    options = {
        "upscale": ["--model", str(model)],
        "stylize": ["--style", str(model)],
        "sketch2photo": ["--model", str(model), "--size", "64"],
        "age": ["--model", str(model), "--face", "0,0,8,8"],  # a face given: no detection cost
    }[command]
    inputs = [str(entry.path) for entry in corpus.entries]
    return [command, *inputs, *options, "--out", str(out), "--json", "-q", "--max-pixels", str(MAX_PIXELS)]


def snapshot(folder: Path) -> dict[str, tuple[object, ...]]:
    """Everything under ``folder`` as it is: kinds, symlink targets, file contents and times."""
    import hashlib

    state: dict[str, tuple[object, ...]] = {}
    for root, folders, files in os.walk(folder):
        for name in folders + files:
            path = Path(root, name)
            info = path.lstat()
            key = str(path.relative_to(folder))
            if stat.S_ISLNK(info.st_mode):
                state[key] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                state[key] = ("folder",)
            else:
                state[key] = ("file", info.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    return state


def temporary_files(*folders: Path) -> list[Path]:
    """Files named like ``write_atomically``'s temporary files under any of ``folders``."""
    return [Path(root, name) for folder in folders for root, _, files in os.walk(folder)
            for name in files if _TEMPORARY.fullmatch(name)]


def check_batch(corpus: Corpus, command: str, out: Path, *, exit_code: int, stdout: str, stderr: str,
                before: dict[str, tuple[object, ...]], own_stderr: bool = False) -> list[str]:
    """Every way the batch broke the rules, one line each; [] when it kept them all.

    ``own_stderr``: ``stderr`` holds only what imgan printed (not what native libraries wrote
    to the process's stderr), so it must be one "failed:" line per failed input and warnings.
    """
    from imgan.errors import ImganError
    from imgan.io import read_picture

    problems: list[str] = []
    if exit_code not in (0, 1, 2):
        problems.append(f"exit code {exit_code}")
    elif exit_code != 1:
        problems.append(f"exit code {exit_code}, not 1: the corpus has both good and bad inputs")
    if "Traceback" in stdout or "Traceback" in stderr:
        problems.append("a traceback: " + (stderr + stdout)[(stderr + stdout).index("Traceback"):][:2000])
    records: dict[str, dict[str, object]] = {}
    for line in stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            problems.append(f"not a JSON record on stdout: {line[:200]!r}")
            continue
        records[str(record["input"])] = record
    written: set[Path] = set()
    scale = SCALES[command]
    for entry in corpus.entries:
        name = str(entry.path)
        record = records.pop(name, None)
        if record is None:
            problems.append(f"{name}: no record")
            continue
        status, error = record.get("status"), str(record.get("error", ""))
        if status == "failed":
            if "\n" in error or not error.startswith(name):
                problems.append(f"{name}: the error is not one line that names the file: {error!r}")
            elif _UNHANDLED.match(error[len(name):].lstrip(": ")):
                problems.append(f"{name}: an unexpected exception: {error}")
            if record["output"] != "-" and Path(str(record["output"])).exists():
                problems.append(f"{name}: failed, yet {record['output']} was written")
            if entry.expect == "control":
                problems.append(f"{name}: a valid {entry.kind} input failed: {error}")
            continue
        if status != "ok":
            problems.append(f"{name}: status {status!r}")
            continue
        output = Path(str(record["output"]))
        written.add(output)
        if entry.expect == "fail":
            problems.append(f"{name}: a {entry.kind} input was processed into {output}")
        try:
            picture = read_picture(output, max_pixels=None)
        except ImganError as exc:
            problems.append(f"{name}: its output does not read back: {exc}")
            continue
        size = (picture.rgb.shape[-1], picture.rgb.shape[-2])
        if entry.size is not None and size != (entry.size[0] * scale, entry.size[1] * scale):
            problems.append(f"{name}: output is {size[0]}x{size[1]}, expected {entry.size} x{scale}")
    problems += [f"{name}: a record for no input given" for name in records]
    if own_stderr:
        lines = [line for line in stderr.splitlines() if line.strip()]
        problems += [f"a stray line on stderr: {line[:300]!r}" for line in lines
                     if not line.startswith(("failed: ", "warning: "))]
        failures = sum(line.startswith("failed: ") for line in lines)
        expected = sum(json.loads(line).get("status") == "failed" for line in stdout.splitlines()
                       if line.startswith("{"))
        if failures != expected:
            problems.append(f"{failures} 'failed:' lines on stderr for {expected} failed inputs")
    found = {Path(root, name) for root, _, files in os.walk(out) for name in files}
    problems += [f"{path}: written, yet no record says so" for path in sorted(found - written)]
    problems += [f"{path}: a temporary file left behind" for path in temporary_files(corpus.folder, out)]
    after = snapshot(corpus.folder)
    for key in sorted(before.keys() | after.keys()):
        if before.get(key) != after.get(key):
            problems.append(f"{key}: an input changed ({before.get(key)} -> {after.get(key)})")
    return problems
