"""Read and write image files; the only module that sees Pillow, OpenCV and numpy pixels.

Everything else gets a `Picture`: upright RGB float tensors (1,C,H,W) in [0,1] plus what is
needed to write a result back the way the source was (bit depth, grayscale, ICC, EXIF). A large
result can instead be built block by block as the integer levels it will be written with
(`blank_picture(..., quantized=True)` and `put_block`): the output's own size in memory, and PNG
is then written from it in bands of rows, never as a whole-image array.

Pillow decodes 8-bit images. 16-bit PNG and TIFF go through OpenCV, because Pillow reduces
16-bit colour to 8 bits. Pillow's decompression-bomb limit (`Image.MAX_IMAGE_PIXELS`, one
setting for the whole process) is switched off once, the first time this module opens an
image; every read instead checks the header size against its own `max_pixels` before any
pixel is decoded. OpenCV's log is switched off the same way, at the first 16-bit read: imgan
reports a file it cannot decode in one line of its own. Nothing toggles global state per
call, so reads in threads cannot race.

Heavy imports (numpy, torch, Pillow, OpenCV) happen inside functions, so importing this
module stays cheap.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import stat
import struct
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import IO, TYPE_CHECKING

from imgan.errors import InputError, OutputError, PixelLimitError
from imgan.files import write_atomically

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image as PILImage

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "READABLE_SUFFIXES",
    "SUPPORTED_FORMATS",
    "Picture",
    "blank_picture",
    "decode_picture",
    "encode_picture",
    "format_for_path",
    "is_image_path",
    "put_block",
    "read_picture",
    "text_strip",
    "write_picture",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 178_956_970
"""Largest width*height read without asking (about 179 MP, Pillow's own error threshold)."""

SUPPORTED_FORMATS: tuple[str, ...] = ("png", "jpg", "webp", "tiff", "bmp")
"""Formats that can be written, by their canonical extension name."""

READABLE_SUFFIXES: tuple[str, ...] = (
    "png", "apng", "jpg", "jpeg", "jpe", "jfif", "webp", "tif", "tiff", "bmp", "gif",
    "ppm", "pgm", "pbm", "pnm",
)
"""File name suffixes (lower case, no dot) that directory scans pick up."""

_SUFFIX_FORMATS = {
    "png": "png", "apng": "png", "jpg": "jpg", "jpeg": "jpg", "jpe": "jpg", "jfif": "jpg",
    "webp": "webp", "tif": "tiff", "tiff": "tiff", "bmp": "bmp", "gif": "gif",
    "ppm": "ppm", "pgm": "ppm", "pbm": "ppm", "pnm": "ppm",
}

# Pillow format name -> our name. Pillow is only asked to try these, so a file in any other
# format Pillow knows (ICO, PSD, TGA...) is reported as unsupported. Its JPEG opener also
# returns MPO (camera JPEG with extra preview images).
_PILLOW_FORMATS = {
    "PNG": "png", "JPEG": "jpg", "WEBP": "webp", "TIFF": "tiff", "BMP": "bmp", "GIF": "gif",
    "PPM": "ppm",
}
_PILLOW_NAMES = {**_PILLOW_FORMATS, "MPO": "jpg"}
_PILLOW_SAVE_NAMES = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP", "tiff": "TIFF", "bmp": "BMP"}

_SIXTEEN_BIT_FORMATS = ("png", "tiff")
_ALPHA_FORMATS = ("png", "webp", "tiff")
_MAX_SIDE = {"jpg": 65_535, "webp": 16_383}
_DEFAULT_QUALITY = {"jpg": 95, "webp": 95}
_JPEG_MAX_EXIF = 65_533  # one APP1 segment
_PNG_COMPRESS_LEVEL = 6
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*")
_TIFF_SAMPLE_KINDS: dict[object, str] = {1: "unsigned", 2: "signed integer", 3: "floating-point"}
_TIFF_COLOURS: dict[object, str] = {0: "gray", 1: "gray", 2: "RGB", 3: "palette", 4: "mask", 5: "CMYK",
                                    6: "YCbCr", 8: "CIELab"}
_EXIF_HEADER = b"Exif\x00\x00"
_ORIENTATION_TAG = 0x0112
_GRAY_MODES = ("1", "L", "LA", "La")
_COLOUR_MODES = ("P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr")
_SIXTEEN_BIT_GRAY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_BT601_LUMA = (0.299, 0.587, 0.114)

_HEADER_BYTES = 16  # what Pillow reads to recognise a format, and all a file is read for if it is none
_SPECIAL_FILES = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
                  (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))

_alpha_warned: set[str] = set()


@dataclass
class Picture:
    """One decoded image and the facts needed to write a processed version of it back."""

    rgb: torch.Tensor
    """(1,3,H,W) float32 in [0,1]; grayscale sources are replicated to 3 channels. A quantized
    result (see `blank_picture`), or a picture read with ``levels``, holds the levels instead:
    uint8, or uint16 when ``bit_depth`` is 16; only this module, and ``tiling.unit`` tile by tile,
    read those."""
    alpha: torch.Tensor | None
    """(1,1,H,W) float32 in [0,1] (levels, like ``rgb``, in a quantized result), or None when the
    source has no transparency."""
    bit_depth: int
    """8 or 16: the bits per channel of the source."""
    grayscale: bool
    """The source had no colour; it is written back as a one-channel image."""
    icc_profile: bytes | None
    exif: bytes | None
    """Raw EXIF ("Exif\\0\\0" + TIFF block) with Orientation set to 1: pixels are upright."""
    source_format: str
    """Format the bytes were in, by content: "png", "jpg", "webp", "tiff", "bmp", "gif", "ppm"."""
    name: str
    """The path as given, or "<stdin>"; every message about this picture starts with it."""

    @property
    def quantized(self) -> bool:
        """Whether the pixels are stored as the integer levels to write (see `blank_picture`)."""
        return not self.rgb.dtype.is_floating_point


# --------------------------------------------------------------------------- names & paths


def format_for_path(path: str | os.PathLike[str], *, for_reading: bool = False) -> str:
    """Canonical format name ("png", "jpg", ...) from the file name suffix.

    Raises OutputError for a suffix that cannot be written, or with ``for_reading`` an
    InputError for one that cannot be read.
    """
    suffix = Path(path).suffix.lower().lstrip(".")
    if for_reading:
        if suffix in READABLE_SUFFIXES:
            return _SUFFIX_FORMATS[suffix]
        raise InputError(
            f"{os.fspath(path)}: {_describe_suffix(suffix)} is not an image format imgan "
            f"reads; use one of {', '.join(READABLE_SUFFIXES)}"
        )
    name = _SUFFIX_FORMATS.get(suffix)
    if name in SUPPORTED_FORMATS:
        return name
    raise OutputError(
        f"{os.fspath(path)}: {_describe_suffix(suffix)} is not a format imgan writes; "
        f"end the name in .{', .'.join(SUPPORTED_FORMATS)}"
    )


def is_image_path(path: str | os.PathLike[str]) -> bool:
    """Whether the file name has a suffix imgan reads (for directory scans)."""
    return Path(path).suffix.lower().lstrip(".") in READABLE_SUFFIXES


def _describe_suffix(suffix: str) -> str:
    return f"suffix .{suffix}" if suffix else "a name without a suffix"


def _output_format(format: str, *, label: str) -> str:
    name = _SUFFIX_FORMATS.get(format.lower().lstrip("."))
    if name in SUPPORTED_FORMATS:
        return name
    raise OutputError(
        f"{label}: cannot write format {format!r}; use one of {', '.join(SUPPORTED_FORMATS)}"
    )


# --------------------------------------------------------------------------- reading


def read_picture(
    path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS, levels: bool = False
) -> Picture:
    """Read an image file into an upright Picture; InputError for anything unreadable.

    ``max_pixels`` of None or 0 lifts the size limit. ``levels`` keeps the pixels as the file's
    integer levels (a quantized Picture, a quarter of float32's memory at 8 bits) for a task that
    converts them piece by piece (``tiling.unit``).
    """
    name = os.fspath(path)
    file = Path(path)
    try:
        data = _read_image_file(name)
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{name}: is a directory, not an image file") from None
    except PermissionError:
        if file.is_dir():  # Windows reports directories this way
            raise InputError(f"{name}: is a directory, not an image file") from None
        raise InputError(f"{name}: permission denied; check the file's permissions") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot read the file ({_reason(exc)})") from exc
    return decode_picture(data, name=name, max_pixels=max_pixels, levels=levels)


def _read_image_file(name: str) -> bytes:
    """The contents of the regular file ``name``, read whole only once its first bytes are those of
    a format imgan reads: a large file of something else is refused after a few bytes, and a named
    pipe or device (opened without waiting for a writer) before any."""
    descriptor = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(name)
        if not stat.S_ISREG(mode):
            kind = next((kind for test, kind in _SPECIAL_FILES if test(mode)), "a special file")
            raise InputError(f"{name}: not a regular file ({kind}); give image files, or '-' to read stdin")
        with open(descriptor, "rb", closefd=False) as file:
            head = file.read(_HEADER_BYTES)
            if head and not _known_format(head):
                raise _not_an_image(name)
            return head + file.read()
    finally:
        os.close(descriptor)


def _known_format(head: bytes) -> bool:
    """Whether Pillow would recognise one of the formats imgan reads from a file's first bytes."""
    image_module = _pillow()
    if any(format not in image_module.OPEN for format in _PILLOW_FORMATS):
        image_module.init()  # WebP and TIFF register only when every plugin loads
    prefix = head[:_HEADER_BYTES]
    return prefix.startswith(_TIFF_SIGNATURES) or any(
        bool(accept(prefix)) for format in _PILLOW_FORMATS
        if format in image_module.OPEN and (accept := image_module.OPEN[format][1]) is not None)


def _not_an_image(name: str) -> InputError:
    return InputError(f"{name}: not an image, or not a format imgan reads (png, jpg, webp, tiff, bmp, gif, ppm)")


def decode_picture(
    data: bytes, *, name: str, max_pixels: int | None = DEFAULT_MAX_PIXELS, levels: bool = False
) -> Picture:
    """Decode an encoded image (file contents, stdin) into an upright Picture.

    ``name`` starts every error message. ``max_pixels`` of None or 0 lifts the size limit.
    ``levels`` as for `read_picture`.
    """
    if max_pixels is not None and max_pixels < 0:
        raise ValueError(f"max_pixels must be None or >= 0, not {max_pixels}")
    if not data:
        raise InputError(f"{name}: empty file; nothing to read")
    image_module = _pillow()
    try:
        image = image_module.open(io.BytesIO(data), formats=tuple(_PILLOW_FORMATS))
    except image_module.UnidentifiedImageError:
        if data.startswith(_TIFF_SIGNATURES):  # Pillow has no mode for some layouts (float RGB)
            raise _unsupported_tiff(_tiff_tags(data), name=name) from None
        raise _not_an_image(name) from None
    except image_module.DecompressionBombError as exc:  # only if someone re-enabled Pillow's limit
        raise InputError(f"{name}: {exc} Pass --max-pixels 0 to allow it") from exc
    except Exception as exc:
        raise InputError(f"{name}: cannot read the image header ({_reason(exc)})") from exc
    with image:
        try:
            return _decode_opened(image, data, name=name, max_pixels=max_pixels, levels=levels)
        except InputError:
            raise
        except MemoryError:
            raise InputError(
                f"{name}: not enough memory to decode {image.width}x{image.height} pixels"
            ) from None
        except Exception as exc:
            raise InputError(
                f"{name}: cannot decode the image ({_reason(exc)}); "
                "the file may be truncated or corrupt"
            ) from exc


def _decode_opened(
    image: PILImage.Image, data: bytes, *, name: str, max_pixels: int | None, levels: bool = False
) -> Picture:
    """Turn an opened (header-only) Pillow image into a Picture."""
    source_format = _PILLOW_NAMES.get(image.format or "", (image.format or "").lower())
    width, height = image.size
    if max_pixels and width * height > max_pixels:
        raise PixelLimitError(
            f"{name}: {width * height} pixels is over the limit of {max_pixels}; "
            "pass --max-pixels 0 to allow it"
        )
    frames = getattr(image, "n_frames", 1)

    exif, orientation = _exif_and_orientation(image, data, name=name)
    if _is_sixteen_bit(image, data):
        _check_sixteen_bit_tiff(image, name=name)
        array, grayscale = _decode_with_opencv(image, data, name=name)
        bit_depth = 16
        if _opencv_applies_orientation(source_format):
            orientation = 1
    else:
        array, bit_depth, grayscale = _decode_with_pillow(image, name=name)
        if image.format == "TIFF" and _ORIENTATION_TAG not in image.tag_v2:
            orientation = 1  # Pillow turned the TIFF upright while loading and dropped the tag
    array = _apply_orientation(array, orientation)
    if frames > 1 and image.format != "MPO":  # MPO: camera JPEG with extra preview images
        logger.warning("%s: has %d frames; only the first one is used", name, frames)  # said once it decoded
    rgb, alpha = _to_levels(array) if levels else _to_tensors(array, bit_depth=bit_depth)
    return Picture(
        rgb=rgb,
        alpha=alpha,
        bit_depth=bit_depth,
        grayscale=grayscale,
        icc_profile=_matching_icc(image.info.get("icc_profile"), grayscale=grayscale, name=name),
        exif=exif,
        source_format=source_format,
        name=name,
    )


def _exif_and_orientation(
    image: PILImage.Image, data: bytes, *, name: str
) -> tuple[bytes | None, int]:
    """The EXIF block to carry over (Orientation reset to 1) and the orientation to apply."""
    if image.format == "TIFF":
        # A TIFF's tags are its EXIF, mixed with layout tags that mean nothing elsewhere.
        return None, _valid_orientation(image.tag_v2.get(_ORIENTATION_TAG))
    raw = _png_exif(data, name=name) if image.format == "PNG" else image.info.get("exif")
    if not raw:
        return None, 1
    if not raw.startswith(_EXIF_HEADER):
        raw = _EXIF_HEADER + raw  # WebP and PNG store the TIFF block without the header
    try:
        exif = _pillow().Exif()
        exif.load(raw)
        orientation = exif.get(_ORIENTATION_TAG)
        if orientation is None or orientation == 1:
            return raw, 1
        exif[_ORIENTATION_TAG] = 1
        return exif.tobytes(), _valid_orientation(orientation)
    except Exception as exc:
        logger.warning("%s: ignoring unreadable EXIF data (%s)", name, _reason(exc))
        return None, 1


def _valid_orientation(value: object) -> int:
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _png_exif(data: bytes, *, name: str) -> bytes | None:
    """Walk the PNG chunks up to IEND; return the eXIf payload.

    InputError if the file is cut short, if a critical chunk (IHDR, PLTE, IDAT...) fails its
    checksum (Pillow does not check IDAT's, and would decode flipped bytes into garbage), or if
    it is a palette image whose palette (PLTE) does not come before its pixels: decoders would
    otherwise paint every pixel black. Ancillary chunks that fail their checksum are ignored.
    """
    view = memoryview(data)
    exif = None
    palette_needed = len(data) > 25 and data[12:16] == b"IHDR" and data[25] == 3
    offset = len(_PNG_SIGNATURE)
    while offset + 8 <= len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        kind = bytes(view[offset + 4 : offset + 8])
        end = offset + 12 + length
        if end > len(data):
            break
        intact = zlib.crc32(view[offset + 4 : end - 4]) == struct.unpack_from(">I", data, end - 4)[0]
        if not intact and not kind[0] & 0x20:  # bit 5 of the first letter clear: a critical chunk
            raise InputError(
                f"{name}: the PNG file is corrupt (its {kind.decode('latin-1')!r} chunk fails its "
                "checksum); copy or download it again"
            )
        if kind == b"eXIf" and exif is None and intact:
            exif = bytes(view[offset + 8 : offset + 8 + length])
        if kind == b"PLTE":
            palette_needed = False
        if kind == b"IDAT" and palette_needed:
            raise InputError(
                f"{name}: the PNG file is corrupt (a palette image without its PLTE palette chunk); "
                "copy or download it again"
            )
        if kind == b"IEND":
            return exif
        offset = end
    raise InputError(
        f"{name}: the PNG file is truncated (it stops before its IEND chunk); copy or download "
        "it again"
    )


def _is_sixteen_bit(image: PILImage.Image, data: bytes) -> bool:
    """Whether the source holds more than 8 bits per sample (PNG IHDR, TIFF BitsPerSample)."""
    if image.format == "PNG":
        return data[12:16] == b"IHDR" and data[24] == 16
    if image.format == "TIFF":
        bits = image.tag_v2.get(258, 1)
        return max(bits if isinstance(bits, tuple) else (bits,)) > 8
    return False


def _check_sixteen_bit_tiff(image: PILImage.Image, *, name: str) -> None:
    if image.format != "TIFF":
        return
    bits = image.tag_v2.get(258, 1)
    bits = bits if isinstance(bits, tuple) else (bits,)
    sample_format = image.tag_v2.get(339, 1)
    sample_format = sample_format[0] if isinstance(sample_format, tuple) else sample_format
    photometric = image.tag_v2.get(262)
    if set(bits) != {16} or sample_format != 1 or photometric not in (1, 2):
        raise _unsupported_tiff(image.tag_v2, name=name)


def _tiff_tags(data: bytes) -> Mapping[int, object]:
    """The tags of a TIFF's first image, read without Pillow opening it; {} if unreadable."""
    from PIL import TiffImagePlugin

    try:
        tags = TiffImagePlugin.ImageFileDirectory_v2(data[:8])
        stream = io.BytesIO(data)
        stream.seek(tags.next)
        tags.load(stream)
        return dict(tags)
    except Exception:  # noqa: BLE001 - a damaged directory: describe the file as unreadable
        return {}


def _unsupported_tiff(tags: Mapping[int, object], *, name: str) -> InputError:
    """'TIFF with 32-bit floating-point samples (RGB, 3 per pixel) is not supported; ...'."""
    try:
        bits = tags[258] if isinstance(tags[258], tuple) else (tags[258],)
        sample_format = tags.get(339, 1)
        sample_format = sample_format[0] if isinstance(sample_format, tuple) else sample_format
        kind = _TIFF_SAMPLE_KINDS.get(sample_format, f"sample format {sample_format}")
        colour = _TIFF_COLOURS.get(tags.get(262), f"photometric {tags.get(262)}")
        size = str(bits[0]) if len(set(bits)) == 1 else "/".join(map(str, bits))
        layout = f"{size}-bit {kind} samples ({colour}, {tags.get(277, len(bits))} per pixel)"
    except (LookupError, TypeError):  # no BitsPerSample, or odd values: a damaged directory
        return InputError(f"{name}: a TIFF file imgan cannot read (damaged, or an unusual layout); "
                          "convert it to 8- or 16-bit RGB or gray")
    return InputError(
        f"{name}: TIFF with {layout} is not supported; convert it to 8- or 16-bit unsigned RGB or gray"
    )


def _decode_with_opencv(
    image: PILImage.Image, data: bytes, *, name: str
) -> tuple[np.ndarray, bool]:
    """Decode 16-bit PNG/TIFF pixels as they are: HWC uint16 with 1, 2, 3 or 4 channels."""
    import numpy as np

    cv2 = _quiet_opencv()
    array = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None or array.dtype != np.uint16:
        raise InputError(f"{name}: cannot decode the 16-bit image; the file may be corrupt")
    if array.ndim == 2:
        array = array[:, :, None]
    channels = array.shape[2]
    if channels == 3:
        array = array[:, :, ::-1]  # BGR -> RGB
    elif channels == 4:
        array = array[:, :, [2, 1, 0, 3]]  # BGRA -> RGBA
    if image.format == "PNG":
        grayscale = data[25] in (0, 4)  # IHDR colour type: gray, gray + alpha
    else:
        grayscale = image.tag_v2.get(262) == 1  # photometric BlackIsZero
    if grayscale and channels >= 3:  # OpenCV expands gray(+alpha) to BGR(A)
        array = array[:, :, [0, 3]] if channels == 4 else array[:, :, :1]
    return array, grayscale


@functools.cache
def _quiet_opencv() -> ModuleType:
    """cv2 with its own log off: a damaged file makes libtiff print lines of errors to stderr,
    while imgan reports the failed decode itself, in one line."""
    import cv2

    logs = getattr(getattr(cv2, "utils", None), "logging", None)
    if logs is not None:
        logs.setLogLevel(logs.LOG_LEVEL_SILENT)
    return cv2


@functools.cache
def _opencv_applies_orientation(source_format: str) -> bool:
    """Whether this OpenCV build turns 16-bit images of this format upright by itself.

    Versions differ (5.x does for TIFF but not PNG), so a 2x1 image stored upside down is
    decoded once to find out.
    """
    import cv2
    import numpy as np

    image_module = _pillow()
    probe = image_module.fromarray(np.array([[1, 2]], dtype=np.uint16))
    buffer = io.BytesIO()
    if source_format == "tiff":
        probe.save(buffer, format="TIFF", tiffinfo={_ORIENTATION_TAG: 3})
    else:
        exif = image_module.Exif()
        exif[_ORIENTATION_TAG] = 3
        probe.save(buffer, format="PNG", exif=exif.tobytes())
    decoded = cv2.imdecode(np.frombuffer(buffer.getvalue(), np.uint8), cv2.IMREAD_UNCHANGED)
    return decoded is not None and int(decoded.reshape(-1)[0]) == 2


def _decode_with_pillow(image: PILImage.Image, *, name: str) -> tuple[np.ndarray, int, bool]:
    """Decode pixels with Pillow: HWC uint8 (or uint16 gray) array, bit depth, grayscale."""
    import numpy as np

    image.load()  # decode now, so a truncated file fails here and not later
    mode = image.mode
    has_alpha = mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in image.info
    if mode in _SIXTEEN_BIT_GRAY_MODES:
        array = np.asarray(image)
        if mode == "I":  # 32-bit container Pillow uses for 16-bit PGM and some PNG
            array = np.clip(array, 0, 65535)
        return array.astype(np.uint16)[:, :, None], 16, True
    if mode in _GRAY_MODES:
        target, grayscale = ("LA" if has_alpha else "L"), True
    elif mode in _COLOUR_MODES:
        target, grayscale = ("RGBA" if has_alpha else "RGB"), False
    else:
        raise InputError(
            f"{name}: pixel mode {mode} is not supported; convert the image to 8- or 16-bit "
            "RGB or gray first"
        )
    converted = image.convert(target) if mode != target else image
    # Copied out in bands of rows: np.asarray(converted) would hold Pillow's tobytes() pieces, their
    # join and then (read-only, torch takes no such array) a copy at once, 3x the pixels' size.
    width, height = converted.size
    array = np.empty((height, width, len(target)), dtype=np.uint8)
    band = max(1, _BAND_PIXELS // max(width, 1))
    for top in range(0, height, band):
        rows = converted.crop((0, top, width, min(top + band, height)))
        array[top : top + rows.height] = np.asarray(rows).reshape(rows.height, width, -1)
    return array, 8, grayscale


_ORIENTATIONS: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],  # mirrored left-right
    3: lambda a: a[::-1, ::-1],  # upside down
    4: lambda a: a[::-1],  # mirrored top-bottom
    5: lambda a: a.swapaxes(0, 1),  # mirrored along the main diagonal
    6: lambda a: a.swapaxes(0, 1)[:, ::-1],  # needs a quarter turn clockwise
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),  # mirrored along the anti-diagonal
    8: lambda a: a.swapaxes(0, 1)[::-1],  # needs a quarter turn anticlockwise
}


def _apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an HWC array stored with EXIF ``orientation`` (1-8) upright; returns a view."""
    transform = _ORIENTATIONS.get(orientation)
    return array if transform is None else transform(array)


def _to_tensors(array: np.ndarray, *, bit_depth: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """HWC integer array with 1-4 channels (L, LA, RGB, RGBA) -> (rgb, alpha) in [0,1]."""
    import numpy as np
    import torch

    height, width, channels = array.shape
    planes = np.empty((channels, height, width), dtype=np.float32)
    np.divide(array.transpose(2, 0, 1), np.float32(65535 if bit_depth == 16 else 255), out=planes)
    tensor = torch.from_numpy(planes).unsqueeze(0)
    colour = 1 if channels in (1, 2) else 3
    rgb = tensor[:, :1].repeat(1, 3, 1, 1) if colour == 1 else tensor[:, :3]
    if channels in (2, 4):
        return rgb.clone() if colour == 3 else rgb, tensor[:, colour:].clone()
    return rgb, None


def _to_levels(array: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
    """HWC integer array with 1-4 channels -> (rgb, alpha) views of its levels, as a quantized result
    holds them (a grey plane shown three times over)."""
    import torch

    if not array.flags.writeable or any(stride < 0 for stride in array.strides):  # torch takes neither
        array = array.copy()
    height, width, channels = array.shape
    tensor = torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)
    colour = 1 if channels in (1, 2) else 3
    rgb = tensor[:, :1].expand(1, 3, height, width) if colour == 1 else tensor[:, :3]
    return rgb, tensor[:, colour:] if channels in (2, 4) else None


def _matching_icc(icc: bytes | None, *, grayscale: bool, name: str) -> bytes | None:
    """Keep an ICC profile only if its colour space fits the pixels (CMYK ones do not)."""
    if not icc:
        return None
    space = icc[16:20]
    if space == (b"GRAY" if grayscale else b"RGB "):
        return icc
    logger.info("%s: dropping its %s ICC profile", name, space.decode("ascii", "replace").strip())
    return None


# --------------------------------------------------------------------------- results


def blank_picture(
    like: Picture, height: int, width: int, *, alpha: bool, quantized: bool = False
) -> Picture:
    """A ``height`` x ``width`` result with ``like``'s bit depth, colour and metadata, all 0.

    Fill it with `put_block`. ``quantized`` keeps the levels the writer will store rather than
    float32: uint8 (uint16 for a 16-bit source), one plane for a grayscale source (``rgb`` shows
    it three times over), so a result takes its own size in its bit depth, and PNG is written
    from it band by band.
    """
    import torch

    dtype = torch.float32
    planes = 3
    if quantized:
        dtype = torch.uint16 if like.bit_depth == 16 else torch.uint8
        planes = 1 if like.grayscale else 3
    rgb = torch.zeros((1, planes, height, width), dtype=dtype).expand(1, 3, height, width)
    opacity = torch.zeros((1, 1, height, width), dtype=dtype) if alpha else None
    return replace(like, rgb=rgb, alpha=opacity)


def put_block(
    picture: Picture, top: int, left: int, *, rgb: torch.Tensor | None = None,
    alpha: torch.Tensor | None = None,
) -> None:
    """Store float values at (``top``, ``left``) of ``picture``: (1,3,h,w) colour, (1,1,h,w) alpha.

    Values are clamped to [0,1] (NaN counts as 0). A quantized picture gets them rounded to its
    levels, colour as BT.601 luma when it is grayscale: what `write_picture` would store.
    """
    if rgb is not None:
        _put(picture.rgb, top, left, rgb, luma=picture.grayscale)
    if alpha is not None:
        if picture.alpha is None:
            raise ValueError(f"{picture.name}: the picture has no alpha channel to put values in")
        _put(picture.alpha, top, left, alpha, luma=False)


def _put(target: torch.Tensor, top: int, left: int, values: torch.Tensor, *, luma: bool) -> None:
    import numpy as np
    import torch

    window = target[..., top : top + values.shape[-2], left : left + values.shape[-1]]
    if target.dtype.is_floating_point:
        window.copy_(torch.nan_to_num(values.detach()).clamp_(0.0, 1.0))
        return
    if luma:
        window = window[:, :1]  # the one plane behind a quantized grayscale picture
    stored = window[0].numpy()
    peak = np.float32(_peak(target.dtype))
    weights = np.array(_BT601_LUMA, dtype=np.float32).reshape(3, 1, 1)
    band = max(1, _BAND_PIXELS // max(values.shape[-1], 1))  # small numpy steps: no big temporaries
    for first in range(0, values.shape[-2], band):
        rows = slice(first, first + band)
        unit = _unit_array(values[0, :, rows])
        if luma:
            unit = np.clip((unit * weights).sum(axis=0, keepdims=True), 0, 1)
        stored[:, rows] = np.rint(unit * peak)


def _peak(dtype: torch.dtype) -> float:
    import torch

    return 65535.0 if dtype == torch.uint16 else 255.0


# --------------------------------------------------------------------------- writing


_BAND_PIXELS = 1 << 16  # pixels per band of rows converted at a time: small, fixed temporaries
_PILLOW_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
_PNG_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # gray, gray + alpha, RGB, RGBA


@dataclass(frozen=True)
class _Layout:
    """How a picture is written in one format: size, samples per pixel (L, LA, RGB or RGBA)."""

    height: int
    width: int
    channels: int
    sixteen: bool
    keep_alpha: bool


def encode_picture(picture: Picture, *, format: str, quality: int | None = None) -> bytes:
    """Encode a Picture as png/jpg/webp/tiff/bmp bytes (for stdout or a file).

    16 bits per channel when the source had 16 and the format holds them (png, tiff), else 8.
    A grayscale picture is written as one channel (ITU-R BT.601 luma of the RGB tensor; a
    16-bit TIFF of gray + alpha becomes RGBA, which OpenCV can write). Alpha is composited over
    white for formats without it (jpg, bmp). ``quality`` (1-100, default 95) applies to jpg and
    webp. ICC and EXIF go back where the format holds them (EXIF: png, jpg, webp). PNG of a
    quantized or 16-bit picture is written band by band by our own encoder; the rest by Pillow
    (8-bit, filled band by band) or OpenCV (16-bit TIFF).
    """
    name = _output_format(format, label=picture.name)
    layout = _layout(picture, name, quality, label=picture.name)
    buffer = io.BytesIO()
    _encode(picture, layout, name, quality, buffer, label=picture.name)
    return buffer.getvalue()


def write_picture(
    picture: Picture,
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    quality: int | None = None,
) -> None:
    """Encode a Picture and write it atomically to ``path`` (format from the suffix by default).

    The target either keeps its old content or gets the complete new file; the parent
    folder is created if missing. The encoder writes straight into the temporary file, so no
    encoded copy is held in memory. OutputError names the target when anything fails.
    """
    target = Path(path)
    label = os.fspath(path)
    name = format_for_path(target) if format is None else _output_format(format, label=label)
    layout = _layout(picture, name, quality, label=label)
    write_atomically(target, lambda file: _encode(picture, layout, name, quality, file, label=label),
                     label=label)


def _layout(picture: Picture, format: str, quality: int | None, *, label: str) -> _Layout:
    """Check that ``picture`` can be written as ``format`` and say how."""
    if quality is not None and not 1 <= quality <= 100:
        raise ValueError(f"quality must be between 1 and 100, not {quality}")
    rgb = picture.rgb
    if rgb.ndim != 4 or rgb.shape[:2] != (1, 3):
        raise ValueError(f"picture.rgb must have shape (1,3,H,W), not {tuple(rgb.shape)}")
    height, width = rgb.shape[2:]
    alpha = picture.alpha
    if alpha is not None and tuple(alpha.shape) != (1, 1, height, width):
        raise ValueError(f"picture.alpha must have shape (1,1,{height},{width}), not {tuple(alpha.shape)}")
    limit = _MAX_SIDE.get(format)
    if limit is not None and max(width, height) > limit:
        raise OutputError(
            f"{label}: {width}x{height} is too large for {format} (at most {limit} pixels "
            "per side); write png or tiff instead"
        )
    if alpha is not None and format not in _ALPHA_FORMATS:
        if format not in _alpha_warned:
            _alpha_warned.add(format)
            logger.warning(
                "%s: %s has no alpha channel; transparent areas are put on white "
                "(said once per format)", picture.name, format,
            )
    keep_alpha = alpha is not None and format in _ALPHA_FORMATS
    return _Layout(
        height=int(height), width=int(width),
        channels=(1 if picture.grayscale else 3) + int(keep_alpha),
        sixteen=picture.bit_depth == 16 and format in _SIXTEEN_BIT_FORMATS,
        keep_alpha=keep_alpha,
    )


def _encode(
    picture: Picture, layout: _Layout, format: str, quality: int | None, file: IO[bytes], *,
    label: str,
) -> None:
    icc = _icc_for_output(picture, channels=layout.channels, format=format)
    try:
        if format == "png" and (picture.quantized or layout.sixteen):
            _write_png(picture, layout, file, icc=icc, exif=picture.exif)
        elif layout.sixteen:
            file.write(_encode_with_opencv(_to_array(picture, layout), icc=icc, label=label))
        else:
            _encode_with_pillow(_pillow_image(picture, layout, format), format, quality, file,
                                icc=icc, exif=picture.exif, label=label)
    except OutputError:
        raise
    except Exception as exc:
        raise OutputError(f"{label}: cannot encode as {format} ({_reason(exc)})") from exc


def _bands(picture: Picture, layout: _Layout) -> Iterator[tuple[int, np.ndarray]]:
    """The samples to write, top to bottom: (first row, HWC uint8/uint16 band of rows).

    Float values are clamped to [0,1] (NaN as 0) and rounded. Stored levels are copied as they
    are, unless the format needs another depth, grayscale, or alpha put on white. Bands are
    converted with numpy: many small torch ops would each pay for waking its thread pool.
    """
    import numpy as np

    peak = 65535.0 if layout.sixteen else 255.0
    dtype = np.uint16 if layout.sixteen else np.uint8
    rgb, alpha = picture.rgb, picture.alpha
    as_stored = (picture.quantized and _peak(rgb.dtype) == peak
                 and (alpha is None or layout.keep_alpha)
                 and (not picture.grayscale or rgb.stride(1) == 0))  # gray: the one plane is the luma
    luma = np.array(_BT601_LUMA, dtype=np.float32).reshape(3, 1, 1)
    band = max(1, _BAND_PIXELS // max(layout.width, 1))
    for top in range(0, layout.height, band):
        rows = slice(top, min(top + band, layout.height))
        if as_stored:
            planes = [rgb[0, :1 if picture.grayscale else 3, rows].numpy()]
            if alpha is not None:
                planes.append(alpha[0, :, rows].numpy())
            yield top, np.ascontiguousarray(np.concatenate(planes).transpose(1, 2, 0))
            continue
        colour = _unit_array(rgb[0, :, rows])
        planes = [colour]
        if alpha is not None:
            opacity = _unit_array(alpha[0, :, rows])
            if layout.keep_alpha:
                planes.append(opacity)
            else:
                colour = colour * opacity + (1 - opacity)
        if picture.grayscale:
            colour = np.clip((colour * luma).sum(axis=0, keepdims=True), 0, 1)
        planes[0] = colour
        values = np.rint(np.concatenate(planes).transpose(1, 2, 0) * np.float32(peak))
        yield top, np.ascontiguousarray(values, dtype=dtype)


def _unit_array(values: torch.Tensor) -> np.ndarray:
    """(C,h,w) float32 numpy values in [0,1]: float values clamped (NaN as 0), or levels scaled."""
    import numpy as np
    import torch

    if values.dtype.is_floating_point:
        array = values.detach().to("cpu", torch.float32).numpy().copy()
        return np.clip(np.nan_to_num(array, copy=False), 0, 1, out=array)
    return values.numpy().astype(np.float32) / np.float32(_peak(values.dtype))


def _to_array(picture: Picture, layout: _Layout) -> np.ndarray:
    """The samples to write as one HWC uint8/uint16 array with 1-4 channels (L, LA, RGB, RGBA)."""
    import numpy as np

    array = np.empty((layout.height, layout.width, layout.channels),
                     dtype=np.uint16 if layout.sixteen else np.uint8)
    for top, band in _bands(picture, layout):
        array[top : top + band.shape[0]] = band
    return array


def _pillow_image(picture: Picture, layout: _Layout, format: str) -> PILImage.Image:
    """The 8-bit samples to write as a Pillow image, filled band by band (no whole-image array)."""
    import numpy as np

    image_module = _pillow()
    channels = layout.channels
    if format == "webp" and channels in (1, 2):  # WebP stores colour only
        channels += 2
    image = image_module.new(_PILLOW_MODES[channels], (layout.width, layout.height))
    for top, band in _bands(picture, layout):
        if band.shape[2] != channels:
            band = np.concatenate([np.repeat(band[:, :, :1], 3, axis=2), band[:, :, 1:]], axis=2)
        image.paste(image_module.fromarray(band[:, :, 0] if channels == 1 else band), (0, top))
    return image


def _icc_for_output(picture: Picture, *, channels: int, format: str) -> bytes | None:
    """The source ICC profile if the written pixels are in its colour space."""
    icc = picture.icc_profile
    if not icc:
        return None
    written_gray = channels in (1, 2) and format != "webp"  # WebP has no gray mode
    if icc[16:20] != (b"GRAY" if written_gray else b"RGB "):
        logger.info("%s: ICC profile does not fit the %s output; not written", picture.name,
                    format)
        return None
    return icc


def _encode_with_pillow(
    image: PILImage.Image, format: str, quality: int | None, file: IO[bytes], *,
    icc: bytes | None, exif: bytes | None, label: str,
) -> None:
    options: dict[str, object] = {}
    if format == "png":
        options["compress_level"] = _PNG_COMPRESS_LEVEL
    elif format in ("jpg", "webp"):
        options["quality"] = _DEFAULT_QUALITY[format] if quality is None else quality
    elif format == "tiff":
        options["compression"] = "tiff_lzw"
    if icc and format != "bmp":
        options["icc_profile"] = icc
    if exif and format in ("png", "jpg", "webp"):
        options["exif"] = exif
    if format == "jpg" and exif and len(exif) > _JPEG_MAX_EXIF:
        logger.warning("%s: EXIF block of %d bytes does not fit in a JPEG; not written",
                       label, len(exif))
        del options["exif"]
    image.save(file, format=_PILLOW_SAVE_NAMES[format], **options)


def _encode_with_opencv(array: np.ndarray, *, icc: bytes | None, label: str) -> bytes:
    """16-bit TIFF through OpenCV (Pillow has no 16-bit colour)."""
    import cv2
    import numpy as np

    channels = array.shape[2]
    if channels == 2:  # OpenCV writes no gray + alpha; keep 16 bits as RGBA instead
        array = np.concatenate([np.repeat(array[:, :, :1], 3, axis=2), array[:, :, 1:]], axis=2)
        channels = 4
    if channels == 3:
        array = array[:, :, ::-1]  # RGB -> BGR
    elif channels == 4:
        array = array[:, :, [2, 1, 0, 3]]  # RGBA -> BGRA
    ok, encoded = cv2.imencode(".tiff", np.ascontiguousarray(array))
    if not ok:
        raise OutputError(f"{label}: OpenCV could not encode a 16-bit tiff")
    if icc:
        logger.warning("%s: a 16-bit TIFF is written without its ICC profile; write png to "
                       "keep it", label)
    return encoded.tobytes()


def _write_png(
    picture: Picture, layout: _Layout, file: IO[bytes], *, icc: bytes | None, exif: bytes | None
) -> None:
    """Write a PNG band by band into ``file``: one zlib stream, IDAT chunks as it fills."""
    import numpy as np

    depth = 16 if layout.sixteen else 8
    header = struct.pack(">IIBBBBB", layout.width, layout.height, depth,
                         _PNG_COLOUR_TYPES[layout.channels], 0, 0, 0)
    file.write(_PNG_SIGNATURE + _png_chunk(b"IHDR", header) + _png_metadata(icc=icc, exif=exif))
    compressor = zlib.compressobj(_PNG_COMPRESS_LEVEL)
    pixel_bytes = layout.channels * depth // 8
    previous = np.zeros(layout.width * pixel_bytes, dtype=np.uint8)
    for _, band in _bands(picture, layout):
        rows = (band.astype(">u2") if layout.sixteen else band).view(np.uint8)
        rows = rows.reshape(band.shape[0], -1)
        data = compressor.compress(_png_filter(rows, previous, pixel_bytes))
        previous = rows[-1]
        if data:
            file.write(_png_chunk(b"IDAT", data))
    file.write(_png_chunk(b"IDAT", compressor.flush()) + _png_chunk(b"IEND", b""))


def _png_filter(rows: np.ndarray, previous: np.ndarray, pixel_bytes: int) -> bytes:
    """Filter each row of bytes with the PNG filter (none, sub, up, average, Paeth) that gives the
    smallest sum of absolute signed bytes, libpng's heuristic; ``previous`` is the row above."""
    import numpy as np

    here = rows.astype(np.int16)
    up = np.empty_like(here)
    up[0], up[1:] = previous, here[:-1]
    left = np.zeros_like(here)
    left[:, pixel_bytes:] = here[:, :-pixel_bytes]
    up_left = np.zeros_like(here)
    up_left[:, pixel_bytes:] = up[:, :-pixel_bytes]
    from_left, from_up = np.abs(up - up_left), np.abs(left - up_left)
    from_corner = np.abs(left + up - 2 * up_left)
    paeth = np.where((from_left <= from_up) & (from_left <= from_corner), left,
                     np.where(from_up <= from_corner, up, up_left))
    candidates = np.stack(
        [here, here - left, here - up, here - ((left + up) >> 1), here - paeth]
    ).astype(np.uint8)
    cost = np.abs(candidates.view(np.int8).astype(np.int16)).sum(axis=2, dtype=np.int64)
    choice = cost.argmin(axis=0)
    filtered = np.empty((rows.shape[0], rows.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = choice
    filtered[:, 1:] = candidates[choice, np.arange(rows.shape[0])]
    return filtered.tobytes()


def _png_metadata(*, icc: bytes | None, exif: bytes | None) -> bytes:
    """The iCCP and eXIf chunks that follow IHDR."""
    chunks = b""
    if icc:
        chunks += _png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc))
    if exif:
        chunks += _png_chunk(b"eXIf", exif.removeprefix(_EXIF_HEADER))
    return chunks


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload)))


def text_strip(text: str, *, width: int, font_size: int = 14) -> torch.Tensor:
    """``text`` in black on white, word-wrapped to ``width`` pixels: (1,3,h,width) in [0,1] (captions under grids)."""
    import numpy as np
    import torch
    from PIL import ImageDraw, ImageFont

    image_module = _pillow()
    font = ImageFont.load_default(size=font_size)
    measure = ImageDraw.Draw(image_module.new("L", (1, 1)))
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and measure.textlength(candidate, font=font) <= width - 8:
            lines[-1] = candidate
        else:
            lines.append(word)
    line_height = font_size + 4
    canvas = image_module.new("L", (width, line_height * max(len(lines), 1) + 6), 255)
    draw = ImageDraw.Draw(canvas)
    for row, line in enumerate(lines):
        draw.text((4, 3 + row * line_height), line, fill=0, font=font)
    grey = torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255.0)
    return grey.expand(1, 3, *grey.shape).clone()


# --------------------------------------------------------------------------- helpers


@functools.cache
def _pillow() -> ModuleType:
    """PIL.Image, with Pillow's global bomb limit handed over to our per-call check."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    return Image


def _reason(exc: BaseException) -> str:
    """A one-line description of an exception for an error message."""
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())
