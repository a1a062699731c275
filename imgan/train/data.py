"""Training data for super-resolution: image folders, an in-memory pool, pairs made on the fly.

Determinism: every random choice for training sample ``index`` (which image, where to crop,
flips, the degradation) is drawn from ``sample_generator(seed, index)`` and from nothing else.
Sample i is therefore the same in the main process, in any DataLoader worker and after a
resume; nothing here knows about epochs.
"""

from __future__ import annotations

import hashlib
import logging
import math
import operator
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from imgan.errors import InputError
from imgan.io import is_image_path, read_picture
from imgan.train.degrade import DegradationConfig, degrade

__all__ = [
    "ImagePool",
    "SRPairs",
    "SRValidation",
    "bicubic_downscale",
    "random_crop_augment",
    "sample_generator",
    "scan_images",
]

logger = logging.getLogger(__name__)

_MAX_NAMED = 5  # images named in one warning before "and N more"


def sample_generator(seed: int, index: int) -> torch.Generator:
    """A CPU generator for training sample ``index`` of run ``seed``.

    Seeded with the first 63 bits of BLAKE2b("{seed}:{index}"), so nearby seeds and indices give
    unrelated streams and the value is the same in every process and Python version.
    """
    digest = hashlib.blake2b(f"{int(seed)}:{int(index)}".encode("ascii"), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)


def scan_images(root: str | Path) -> list[Path]:
    """Image files under ``root`` (recursively, sorted), skipping hidden files and folders."""
    folder = Path(root)
    if not folder.exists():
        raise InputError(f"{root}: no such folder; give the folder that holds the training images")
    if not folder.is_dir():
        raise InputError(f"{root}: not a folder; give the folder that holds the training images")

    def unreadable(error: OSError) -> None:
        logger.warning("%s: cannot list this folder (%s); skipped", error.filename, error.strerror)

    found: list[Path] = []
    for current, folders, files in os.walk(folder, onerror=unreadable):
        folders[:] = [name for name in folders if not name.startswith(".")]
        found.extend(Path(current) / name for name in files
                     if not name.startswith(".") and is_image_path(name))
    if not found:
        raise InputError(
            f"{root}: no images found; put png, jpg, webp, tiff or bmp files in it or its "
            "subfolders (hidden ones are skipped)"
        )
    return sorted(found)


class ImagePool:
    """Images decoded once and kept as uint8 (3,H,W) tensors (memory: 3 bytes/pixel).

    Images with a shorter side below ``min_side`` and unreadable files are skipped with a
    warning. An image with a longer side above ``max_side`` is shrunk by the smallest whole
    factor that fits it (box average, which also averages away sensor noise), but never below
    ``min_side`` on its shorter side. Gray images become RGB; alpha is dropped. ``threads``
    files are decoded at once. Tensors handed out are shared: do not modify them.
    """

    names: list[str]
    """The path of each kept image, as given."""

    def __init__(
        self, paths: Sequence[Path], *, min_side: int, max_side: int | None = None, threads: int | None = None
    ) -> None:
        if min_side < 1:
            raise ValueError(f"min_side must be at least 1, not {min_side}")
        if max_side is not None and max_side < min_side:
            raise ValueError(f"max_side ({max_side}) must not be smaller than min_side ({min_side})")
        self._min_side = min_side
        self._max_side = max_side
        self.names = []
        self._images: list[torch.Tensor] = []
        workers = threads or min(4, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=workers) as executor:
            for path, (image, problem) in zip(paths, executor.map(self._load, paths), strict=True):
                if image is None:
                    logger.warning("%s", problem)
                    continue
                self.names.append(os.fspath(path))
                self._images.append(image)
        if not self._images:
            where = _common_folder(paths)
            raise InputError(
                f"{where}: none of the {len(paths)} images can be used; each must be readable and "
                f"at least {min_side} pixels on its shorter side"
            )
        megabytes = sum(image.numel() for image in self._images) / 2**20
        logger.info("%d training images in memory (%.0f MiB)", len(self._images), megabytes)

    def _load(self, path: Path) -> tuple[torch.Tensor | None, str]:
        """The pool's uint8 tensor for one file, or None and why it is skipped."""
        name = os.fspath(path)
        try:
            picture = read_picture(path)
        except InputError as exc:
            return None, f"{exc}; skipped"
        rgb = picture.rgb[0]
        height, width = rgb.shape[-2:]
        shorter, longer = min(height, width), max(height, width)
        if shorter < self._min_side:
            return None, (f"{name}: {width}x{height} is smaller than {self._min_side} pixels on its "
                          "shorter side; skipped")
        factor = 1
        if self._max_side is not None and longer > self._max_side:
            factor = max(1, min(math.ceil(longer / self._max_side), shorter // self._min_side))
        if factor > 1:
            rgb = rgb[:, : height // factor * factor, : width // factor * factor]
            rgb = F.avg_pool2d(rgb.unsqueeze(0), factor).squeeze(0)
            logger.debug("%s: shrunk %dx%d by %d", name, width, height, factor)
        image = rgb.mul(255).round_().clamp_(0, 255).to(torch.uint8).contiguous()
        return image, ""

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self._images[index]


def _common_folder(paths: Sequence[Path]) -> str:
    """The deepest folder holding all ``paths``, for messages."""
    if not paths:
        return "training images"
    try:
        return os.path.commonpath([os.path.dirname(os.path.abspath(path)) for path in paths])
    except ValueError:  # different drives
        return os.fspath(Path(paths[0]).parent)


def _quantise(image: torch.Tensor) -> torch.Tensor:
    return image.clamp(0, 1).mul_(255).round_().div_(255)


def bicubic_taps(scale: int) -> tuple[torch.Tensor, int, int]:
    """1-D antialiased bicubic (a = -0.5, Pillow's BICUBIC) taps for an integer downscale.

    Output pixel j reads input pixels j*scale + t for t in [-before, scale - 1 + after].
    Returns (weights, before, after).
    """
    offsets = torch.arange(-2 * scale, 3 * scale, dtype=torch.float64)
    distance = ((offsets + 0.5 - 0.5 * scale) / scale).abs()
    a = -0.5
    near = ((a + 2) * distance - (a + 3)) * distance * distance + 1
    far = ((a * distance - 5 * a) * distance + 8 * a) * distance - 4 * a
    weights = torch.where(distance < 1, near, torch.where(distance < 2, far, torch.zeros_like(distance)))
    used = torch.nonzero(weights).flatten()
    first, last = int(used[0]), int(used[-1])
    weights = weights[first : last + 1]
    return (weights / weights.sum()).float(), -int(offsets[first]), int(offsets[last]) - (scale - 1)


def bicubic_downscale(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """(C,H,W) or (B,C,H,W) float [0,1] -> sides divided by ``scale``, like a saved 8-bit image.

    The same filter as Pillow's ``resize(..., BICUBIC)`` (a = -0.5, antialiased), which the
    evaluation protocol uses for its LR inputs, as a strided separable convolution; borders are
    reflected where Pillow renormalises. Values are clamped and rounded to multiples of 1/255.
    H and W must be multiples of ``scale``.
    """
    if hr.ndim not in (3, 4):
        raise ValueError(f"bicubic_downscale expects (C,H,W) or (B,C,H,W), not {tuple(hr.shape)}")
    height, width = hr.shape[-2:]
    if scale < 1 or height % scale or width % scale:
        raise ValueError(f"image sides {height}x{width} must be multiples of the scale {scale}")
    batch = hr.unsqueeze(0) if hr.ndim == 3 else hr
    small = batch.float()
    if scale > 1:
        channels = small.shape[1]
        taps, before, after = bicubic_taps(scale)
        mode = "reflect" if max(before, after) < min(height, width) else "replicate"
        padded = F.pad(small, (before, after, before, after), mode=mode)
        rows = taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
        columns = taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
        small = F.conv2d(padded, rows, stride=(scale, 1), groups=channels)
        small = F.conv2d(small, columns, stride=(1, scale), groups=channels)
    small = _quantise(small)
    return small.squeeze(0) if hr.ndim == 3 else small


def random_crop_augment(
    image: torch.Tensor, *, size: int, generator: torch.Generator, augment: bool = True
) -> torch.Tensor:
    """uint8 (3,H,W) -> float (3,size,size) in [0,1]: a random crop, then (if ``augment``) random
    horizontal flip, vertical flip and transpose, each with odds 1/2 (the 8 square symmetries)."""
    if image.ndim != 3:
        raise ValueError(f"random_crop_augment expects a (C,H,W) image, not {tuple(image.shape)}")
    height, width = image.shape[-2:]
    if height < size or width < size:
        raise ValueError(f"a {width}x{height} image is smaller than the crop of {size} pixels")
    top = int(torch.randint(0, height - size + 1, (), generator=generator))
    left = int(torch.randint(0, width - size + 1, (), generator=generator))
    crop = image[:, top : top + size, left : left + size]
    if augment:
        hflip, vflip, transpose = (torch.rand(3, generator=generator) < 0.5).tolist()
        if hflip:
            crop = crop.flip(-1)
        if vflip:
            crop = crop.flip(-2)
        if transpose:
            crop = crop.transpose(-1, -2)
    return crop.float().div_(255).contiguous()


class SeededSamples(Dataset):
    """A dataset of ``length`` samples whose random choices come only from ``sample_generator(seed, i)``."""

    length: int
    seed: int

    def __len__(self) -> int:
        return self.length

    def generator(self, index: int) -> torch.Generator:
        """The generator of sample ``index`` (IndexError outside the dataset)."""
        index = operator.index(index)
        if not 0 <= index < self.length:
            raise IndexError(f"sample {index} is outside 0..{self.length - 1}")
        return sample_generator(self.seed, index)


class SRPairs(SeededSamples):
    """Training pairs made on the fly: item i = {'hr': (3,crop,crop), 'lr': (3,crop/scale,crop/scale)}, float [0,1].

    The image for item i is drawn with probability proportional to its area (every pixel of the
    pool is equally likely to be in a crop, whatever the image sizes). Images smaller than the
    crop are left out with a warning. Without ``degradation`` the LR is the bicubic downscale of
    the HR crop; with it, the Real-ESRGAN degradation of it.
    """

    def __init__(
        self,
        pool: ImagePool,
        *,
        scale: int,
        crop: int,
        length: int,
        seed: int,
        degradation: DegradationConfig | None = None,
        augment: bool = True,
    ) -> None:
        if scale < 1 or crop < scale or crop % scale:
            raise ValueError(f"crop ({crop}) must be a positive multiple of the scale ({scale})")
        if length < 0:
            raise ValueError(f"length must be at least 0, not {length}")
        self.pool = pool
        self.scale = scale
        self.crop = crop
        self.length = length
        self.seed = seed
        self.degradation = degradation
        self.augment = augment
        self._indices: list[int] = []
        areas: list[float] = []
        too_small: list[str] = []
        for index in range(len(pool)):
            height, width = pool[index].shape[-2:]
            if min(height, width) >= crop:
                self._indices.append(index)
                areas.append(float(height * width))
            else:
                too_small.append(pool.names[index])
        if not self._indices:
            raise InputError(
                f"{_common_folder([Path(name) for name in pool.names])}: no training image is at least "
                f"{crop} pixels on its shorter side; use a smaller crop or larger images"
            )
        if too_small:
            logger.warning("images smaller than the %d-pixel crop are not used (%d): %s",
                           crop, len(too_small), some_names(too_small))
        self._cumulative = torch.tensor(areas, dtype=torch.float64).cumsum(0)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = self.generator(index)
        image = self.pool[self._pick(generator)]
        hr = random_crop_augment(image, size=self.crop, generator=generator, augment=self.augment)
        if self.degradation is None:
            lr = bicubic_downscale(hr, self.scale)
        else:
            lr = degrade(hr, scale=self.scale, config=self.degradation, generator=generator)
        return {"hr": hr, "lr": lr}

    def _pick(self, generator: torch.Generator) -> int:
        """A pool index drawn with probability proportional to image area."""
        total = self._cumulative[-1]
        point = torch.rand((), generator=generator, dtype=torch.float64) * total
        position = int(torch.searchsorted(self._cumulative, point, right=True))
        return self._indices[min(position, len(self._indices) - 1)]


def some_names(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_NAMED])
    return shown if len(names) <= _MAX_NAMED else f"{shown} and {len(names) - _MAX_NAMED} more"


class SRValidation(Dataset):
    """Fixed validation pairs: a centre crop (side = min(crop, image sides) rounded down to a
    multiple of scale) and its bicubic LR. Items: {'hr', 'lr', 'name'}; sides differ between
    images when some are smaller than ``crop``."""

    def __init__(self, pool: ImagePool, *, scale: int, crop: int = 256) -> None:
        if scale < 1 or crop < scale:
            raise ValueError(f"crop ({crop}) must be at least the scale ({scale})")
        self.pool = pool
        self.scale = scale
        self.crop = crop
        self._boxes: list[tuple[int, int, int, int]] = []  # pool index, top, left, side
        for index in range(len(pool)):
            height, width = pool[index].shape[-2:]
            side = min(crop, height, width) // scale * scale
            if side == 0:
                logger.warning("%s: %dx%d is smaller than the scale %d; not used for validation",
                               pool.names[index], width, height, scale)
                continue
            self._boxes.append((index, (height - side) // 2, (width - side) // 2, side))
        if not self._boxes:
            raise InputError(
                f"{_common_folder([Path(name) for name in pool.names])}: no validation image is at "
                f"least {scale} pixels on its shorter side; use larger images"
            )

    def __len__(self) -> int:
        return len(self._boxes)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        pool_index, top, left, side = self._boxes[index]
        image = self.pool[pool_index]
        hr = image[:, top : top + side, left : left + side].float().div_(255)
        return {"hr": hr, "lr": bicubic_downscale(hr, self.scale), "name": self.pool.names[pool_index]}
