"""Inpainting evaluation: the project's held-out protocol, scored inside the hole, for any models.

The protocol (``PROTOCOL``), for each photo of a folder (``imgan.tasks.evaluate.list_images``):

1. Box-downscale by the smallest integer factor that brings the long side to ``MAX_SIDE`` (1024)
   or less, as Pillow's ``Image.reduce`` does (``imgan.tasks.evaluate.box_downscale``; 8-bit).
2. Centre-crop ``CROP`` x ``CROP`` (256; a shorter photo gives its shorter side, down to a
   multiple of 8), starting at ``(side - crop) // 2``.
3. The hole: ``imgan.masks.random_hole`` on the crop, free-form strokes and boxes covering 5-25%
   of it, from a generator seeded with the CRC-32 of ``"<PROTOCOL>:<name>"``, where name is the
   photo's path below the folder without its extension. The same photo always gets the same hole,
   on every machine, whatever else is in the folder.
4. Every model fills the crop (hole blanked, the model's own pre- and post-processing); its
   output is rounded to 8 bits, as if saved, and scored against the crop inside the hole: PSNR
   over the hole's RGB values, and SSIM (Wang et al., 11x11 Gaussian window, on RGB) averaged over
   the window positions centred in the hole (``imgan.metrics.masked_psnr`` / ``masked_ssim``).

Telea and Navier-Stokes (OpenCV, ``telea`` and ``ns``) are always scored beside the model, the
baseline every learned inpainter is measured against. ``imgan train inpaint`` validates with the
same protocol, so its ``val/psnr`` is this table's number for its --val folder.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgan.errors import ImganError, InputError
from imgan.tasks.evaluate import EvalRow, Scored, box_downscale, quantize

if TYPE_CHECKING:
    import torch

__all__ = ["BASELINES", "CROP", "MAX_SIDE", "PROTOCOL", "engine_filler", "protocol_item", "score_fill",
           "score_models"]

log = logging.getLogger(__name__)

PROTOCOL = "imgan-inpaint-v1"
MAX_SIDE = 1024
CROP = 256
BASELINES = ("telea", "ns")
_MULTIPLE = 8

Filler = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]
"""(image (1,3,H,W) [0,1], hole (1,1,H,W) bool) -> the filled image (1,3,H,W) [0,1]."""


def protocol_item(image: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The (crop, hole) the protocol makes of one photo (1,3,H,W) [0,1] named ``name``."""
    import torch

    from imgan.masks import COVERAGE, random_hole

    height, width = image.shape[-2:]
    factor = max(1, math.ceil(max(height, width) / MAX_SIDE))
    small = box_downscale(image[:, :3], factor)
    height, width = small.shape[-2:]
    side = min(CROP, height, width) // _MULTIPLE * _MULTIPLE
    if side < 32:
        raise InputError(f"{name}: {width}x{height} after downscaling is too small for the protocol (32 px at least)")
    top, left = (height - side) // 2, (width - side) // 2
    crop = small[..., top : top + side, left : left + side]
    seed = zlib.crc32(f"{PROTOCOL}:{name}".encode())
    hole = random_hole(side, side, generator=torch.Generator().manual_seed(seed), coverage=COVERAGE)
    return crop, hole


def engine_filler(engine: Any) -> Filler:
    """The ``Filler`` of an inpainting engine (``imgan.engine.Engine``): the model fills the whole crop."""
    import torch

    def fill(crop: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        mask = hole.to(crop.dtype)
        return engine.run(torch.cat([crop * (1 - mask), mask], dim=1))[:, :3].clamp(0.0, 1.0)

    return fill


def score_fill(filled: torch.Tensor, crop: torch.Tensor, hole: torch.Tensor, *, name: str) -> EvalRow:
    """PSNR and SSIM of a fill (rounded to 8 bits) against the crop, inside the hole."""
    from imgan.metrics import masked_psnr, masked_ssim

    prediction = quantize(filled.detach().float().cpu())
    return EvalRow(name=name, psnr=masked_psnr(prediction, crop, hole), ssim=masked_ssim(prediction, crop, hole))


def score_models(fillers: Mapping[str, Filler], images: Iterable[tuple[str, Path]]) -> Iterator[Scored | ImganError]:
    """The protocol on (name, path) photos: one row per filler (by its column name), or the photo's error."""
    from imgan.io import read_picture

    for name, path in images:
        log.info("evaluating %s", name)
        try:
            crop, hole = protocol_item(read_picture(path).rgb, name)
            yield name, {column: score_fill(fill(crop, hole), crop, hole, name=name)
                         for column, fill in fillers.items()}
        except ImganError as error:
            yield error
