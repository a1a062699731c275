"""Read and write image files; the only module that sees Pillow, OpenCV and numpy pixels.

Everything else gets a `Picture`: upright RGB float tensors (1,C,H,W) in [0,1] plus what is
needed to write a result back the way the source was (bit depth, grayscale, ICC, EXIF).

Pillow decodes 8-bit images. 16-bit PNG and TIFF go through OpenCV, because Pillow reduces
16-bit colour to 8 bits. Pillow's decompression-bomb limit (`Image.MAX_IMAGE_PIXELS`, one
setting for the whole process) is switched off once, the first time this module opens an
image; every read instead checks the header size against its own `max_pixels` before any
pixel is decoded. Nothing toggles global state per call, so reads in threads cannot race.

Heavy imports (numpy, torch, Pillow, OpenCV) happen inside functions, so importing this
module stays cheap.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from imgan.errors import InputError, OutputError
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
    "decode_picture",
    "encode_picture",
    "format_for_path",
    "is_image_path",
    "read_picture",
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
_EXIF_HEADER = b"Exif\x00\x00"
_ORIENTATION_TAG = 0x0112
_GRAY_MODES = ("1", "L", "LA", "La")
_COLOUR_MODES = ("P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr")
_SIXTEEN_BIT_GRAY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_BT601_LUMA = (0.299, 0.587, 0.114)

_alpha_warned: set[str] = set()


@dataclass
class Picture:
    """One decoded image and the facts needed to write a processed version of it back."""

    rgb: torch.Tensor
    """(1,3,H,W) float32 in [0,1]; grayscale sources are replicated to 3 channels."""
    alpha: torch.Tensor | None
    """(1,1,H,W) float32 in [0,1], or None when the source has no transparency."""
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
    path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> Picture:
    """Read an image file into an upright Picture; InputError for anything unreadable.

    ``max_pixels`` of None or 0 lifts the size limit.
    """
    name = os.fspath(path)
    file = Path(path)
    try:
        data = file.read_bytes()
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
    return decode_picture(data, name=name, max_pixels=max_pixels)


def decode_picture(
    data: bytes, *, name: str, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> Picture:
    """Decode an encoded image (file contents, stdin) into an upright Picture.

    ``name`` starts every error message. ``max_pixels`` of None or 0 lifts the size limit.
    """
    if max_pixels is not None and max_pixels < 0:
        raise ValueError(f"max_pixels must be None or >= 0, not {max_pixels}")
    if not data:
        raise InputError(f"{name}: empty file; nothing to read")
    image_module = _pillow()
    try:
        image = image_module.open(io.BytesIO(data), formats=tuple(_PILLOW_FORMATS))
    except image_module.UnidentifiedImageError:
        raise InputError(
            f"{name}: not an image, or not a format imgan reads "
            "(png, jpg, webp, tiff, bmp, gif, ppm)"
        ) from None
    except image_module.DecompressionBombError as exc:  # only if someone re-enabled Pillow's limit
        raise InputError(f"{name}: {exc} Pass --max-pixels 0 to allow it") from exc
    except Exception as exc:
        raise InputError(f"{name}: cannot read the image header ({_reason(exc)})") from exc
    with image:
        try:
            return _decode_opened(image, data, name=name, max_pixels=max_pixels)
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
    image: PILImage.Image, data: bytes, *, name: str, max_pixels: int | None
) -> Picture:
    """Turn an opened (header-only) Pillow image into a Picture."""
    source_format = _PILLOW_NAMES.get(image.format or "", (image.format or "").lower())
    width, height = image.size
    if max_pixels and width * height > max_pixels:
        raise InputError(
            f"{name}: {width * height} pixels is over the limit of {max_pixels}; "
            "pass --max-pixels 0 to allow it"
        )
    frames = getattr(image, "n_frames", 1)
    if frames > 1 and image.format != "MPO":  # MPO: camera JPEG with extra preview images
        logger.warning("%s: has %d frames; only the first one is used", name, frames)

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
    rgb, alpha = _to_tensors(array, bit_depth=bit_depth)
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
    """Walk the PNG chunks up to IEND; return the eXIf payload, InputError if cut short."""
    view = memoryview(data)
    exif = None
    offset = len(_PNG_SIGNATURE)
    while offset + 8 <= len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        kind = bytes(view[offset + 4 : offset + 8])
        end = offset + 12 + length
        if end > len(data):
            break
        if kind == b"eXIf" and exif is None:
            exif = bytes(view[offset + 8 : offset + 8 + length])
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
        raise InputError(
            f"{name}: TIFF with {'/'.join(map(str, bits))}-bit samples (sample format "
            f"{sample_format}, photometric {photometric}) is not supported; "
            "convert it to 8- or 16-bit unsigned RGB or gray"
        )


def _decode_with_opencv(
    image: PILImage.Image, data: bytes, *, name: str
) -> tuple[np.ndarray, bool]:
    """Decode 16-bit PNG/TIFF pixels as they are: HWC uint16 with 1, 2, 3 or 4 channels."""
    import cv2
    import numpy as np

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
    array = np.asarray(converted)
    if array.ndim == 2:
        array = array[:, :, None]
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


def _matching_icc(icc: bytes | None, *, grayscale: bool, name: str) -> bytes | None:
    """Keep an ICC profile only if its colour space fits the pixels (CMYK ones do not)."""
    if not icc:
        return None
    space = icc[16:20]
    if space == (b"GRAY" if grayscale else b"RGB "):
        return icc
    logger.info("%s: dropping its %s ICC profile", name, space.decode("ascii", "replace").strip())
    return None


# --------------------------------------------------------------------------- writing


def encode_picture(picture: Picture, *, format: str, quality: int | None = None) -> bytes:
    """Encode a Picture as png/jpg/webp/tiff/bmp bytes (for stdout or a file).

    16 bits per channel when the source had 16 and the format holds them (png, tiff), else 8.
    A grayscale picture is written as one channel (ITU-R BT.601 luma of the RGB tensor;
    16-bit gray + alpha becomes 16-bit RGBA, which OpenCV can write). Alpha is composited
    over white for formats without it (jpg, bmp). ``quality`` (1-100, default 95) applies to
    jpg and webp. ICC and EXIF go back where the format holds them (EXIF: png, jpg, webp).
    """
    return _encode(picture, _output_format(format, label=picture.name), quality,
                   label=picture.name)


def write_picture(
    picture: Picture,
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    quality: int | None = None,
) -> None:
    """Encode a Picture and write it atomically to ``path`` (format from the suffix by default).

    The target either keeps its old content or gets the complete new file; the parent
    folder is created if missing. OutputError names the target when anything fails.
    """
    target = Path(path)
    label = os.fspath(path)
    name = format_for_path(target) if format is None else _output_format(format, label=label)
    data = _encode(picture, name, quality, label=label)
    write_atomically(target, data, label=label)


def _encode(picture: Picture, format: str, quality: int | None, *, label: str) -> bytes:
    if quality is not None and not 1 <= quality <= 100:
        raise ValueError(f"quality must be between 1 and 100, not {quality}")
    array = _to_array(picture, format)
    height, width = array.shape[:2]
    limit = _MAX_SIDE.get(format)
    if limit is not None and max(width, height) > limit:
        raise OutputError(
            f"{label}: {width}x{height} is too large for {format} (at most {limit} pixels "
            "per side); write png or tiff instead"
        )
    icc = _icc_for_output(picture, channels=array.shape[2], format=format)
    try:
        if array.dtype.itemsize == 2:
            return _encode_with_opencv(array, format, icc=icc, exif=picture.exif, label=label)
        return _encode_with_pillow(array, format, quality, icc=icc, exif=picture.exif,
                                   label=label)
    except OutputError:
        raise
    except Exception as exc:
        raise OutputError(f"{label}: cannot encode as {format} ({_reason(exc)})") from exc


def _to_array(picture: Picture, format: str) -> np.ndarray:
    """Processed tensors -> HWC uint8/uint16 array with 1-4 channels (L, LA, RGB, RGBA).

    Converted in bands of rows into one preallocated array, so a huge output needs no full-size
    float temporaries beyond the tensors it came in.
    """
    import numpy as np
    import torch

    rgb = picture.rgb
    if rgb.ndim != 4 or rgb.shape[:2] != (1, 3):
        raise ValueError(f"picture.rgb must have shape (1,3,H,W), not {tuple(rgb.shape)}")
    height, width = rgb.shape[2:]
    alpha = picture.alpha
    if alpha is not None and tuple(alpha.shape) != (1, 1, height, width):
        raise ValueError(f"picture.alpha must have shape (1,1,{height},{width}), not {tuple(alpha.shape)}")
    if alpha is not None and format not in _ALPHA_FORMATS:
        if format not in _alpha_warned:
            _alpha_warned.add(format)
            logger.warning(
                "%s: %s has no alpha channel; transparent areas are put on white "
                "(said once per format)", picture.name, format,
            )
    keep_alpha = alpha is not None and format in _ALPHA_FORMATS
    sixteen = picture.bit_depth == 16 and format in _SIXTEEN_BIT_FORMATS
    peak = 65535.0 if sixteen else 255.0
    channels = (1 if picture.grayscale else 3) + int(keep_alpha)
    array = np.empty((height, width, channels), dtype=np.uint16 if sixteen else np.uint8)
    luma = torch.tensor(_BT601_LUMA, dtype=torch.float32).view(3, 1, 1)
    band = max(1, 4_000_000 // max(width, 1))
    for top in range(0, height, band):
        rows = slice(top, min(top + band, height))
        colour = torch.nan_to_num(rgb.detach()[0, :, rows].to("cpu", torch.float32)).clamp_(0, 1)
        planes = [colour]
        if alpha is not None:
            opacity = torch.nan_to_num(alpha.detach()[0, :, rows].to("cpu", torch.float32)).clamp_(0, 1)
            if keep_alpha:
                planes.append(opacity)
            else:
                colour = colour * opacity + (1 - opacity)
        if picture.grayscale:
            colour = (colour * luma).sum(0, keepdim=True).clamp_(0, 1)
        planes[0] = colour
        values = torch.cat(planes).permute(1, 2, 0).mul_(peak).round_()
        array[rows] = values.numpy()
    return array


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
    array: np.ndarray, format: str, quality: int | None, *, icc: bytes | None,
    exif: bytes | None, label: str,
) -> bytes:
    import numpy as np

    image_module = _pillow()
    channels = array.shape[2]
    if format == "webp" and channels in (1, 2):  # WebP stores colour only
        array = np.concatenate([np.repeat(array[:, :, :1], 3, axis=2), array[:, :, 1:]], axis=2)
    image = image_module.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
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
    buffer = io.BytesIO()
    image.save(buffer, format=_PILLOW_SAVE_NAMES[format], **options)
    return buffer.getvalue()


def _encode_with_opencv(
    array: np.ndarray, format: str, *, icc: bytes | None, exif: bytes | None, label: str
) -> bytes:
    """16-bit PNG/TIFF through OpenCV; ICC and EXIF chunks are added to PNG by hand."""
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
    params = [cv2.IMWRITE_PNG_COMPRESSION, _PNG_COMPRESS_LEVEL] if format == "png" else []
    ok, encoded = cv2.imencode(f".{format}", np.ascontiguousarray(array), params)
    if not ok:
        raise OutputError(f"{label}: OpenCV could not encode a 16-bit {format}")
    data = encoded.tobytes()
    if format == "png":
        return _add_png_metadata(data, icc=icc, exif=exif)
    if icc:
        logger.warning("%s: a 16-bit TIFF is written without its ICC profile; write png to "
                       "keep it", label)
    return data


def _add_png_metadata(png: bytes, *, icc: bytes | None, exif: bytes | None) -> bytes:
    """Insert iCCP and eXIf chunks right after IHDR."""
    end_of_header = len(_PNG_SIGNATURE) + 8 + 13 + 4
    if png[12:16] != b"IHDR":
        raise ValueError("encoded PNG does not start with IHDR")
    chunks = b""
    if icc:
        chunks += _png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc))
    if exif:
        chunks += _png_chunk(b"eXIf", exif.removeprefix(_EXIF_HEADER))
    return png[:end_of_header] + chunks + png[end_of_header:]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload)))


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
