"""Inpainting of one picture: find the hole, fill it with a model, blend it back; the rest untouched.

The hole comes from a mask picture (white = fill), the picture's own transparency, boxes, or any
union of them (``MaskSource``). It is grown by ``dilate`` px and blended back over a further
``feather`` px band (``imgan.masks.blend_weights``); the model fills everything the blend touches.

Strategies (``STRATEGIES``), for photos of any size:

- ``crop`` (default): every group of nearby hole pixels gets its own crop with context around
  it (``imgan.masks.fill_regions``: margins of half the hole's size, at least 32 px), run at the
  crop's own resolution, or shrunk to the model's working size when larger; only the crops are
  computed, so a small hole in a 24 MP photo costs what it costs in a 1 MP photo.
- ``resize``: the whole picture shrunk to the model's working size (when larger), filled, and the
  fill enlarged back (IOPaint's "resize" strategy: cheap, blurry fills on big photos).
- ``full``: the whole picture at its own size.

Pixels whose blend weight is 0 keep the very float values they were read as, so the writer
gives back the input's exact 8- or 16-bit values there (``tests/test_inpaint.py`` checks it).
The picture's tensors are changed in place, crop by crop: copying a 24 MP picture would cost more
than filling a small hole in it.
Alpha, bit depth, ICC and EXIF are the input's; only when the hole is taken from the transparency
(``opaque``) do the filled pixels become opaque (alpha is blended towards 1 by the same weights).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F

from imgan.batch import Pipeline, Worker
from imgan.engine import Engine, resize_to
from imgan.errors import InputError, UsageError
from imgan.io import Picture
from imgan.masks import Box, Region, blend_weights, fill_regions, hole_from_alpha, hole_from_boxes, hole_from_mask

__all__ = ["CONTEXT", "MIN_MARGIN", "STRATEGIES", "MaskSource", "find_hole", "inpaint_picture", "pipeline", "worker"]

log = logging.getLogger(__name__)

STRATEGIES = ("crop", "resize", "full")
CONTEXT = 0.5
"""Margin of a crop around its hole, as a fraction of the hole's longer side on each side."""
MIN_MARGIN = 32
"""The smallest margin of a crop, in pixels; holes closer than this share a crop."""


@dataclass(frozen=True)
class MaskSource:
    """Where a picture's hole comes from: its mask companion, its transparency, boxes (any union)."""

    from_file: bool = True
    from_alpha: bool = False
    boxes: tuple[Box, ...] = ()
    invert: bool = False  # the mask file is black = fill
    resize: bool = False  # a mask file of another size is resized to the picture


def find_hole(picture: Picture, mask: Picture | None, source: MaskSource) -> torch.Tensor:
    """The (1,1,H,W) bool hole of ``picture`` from what ``source`` names; InputError when it cannot be made."""
    height, width = picture.rgb.shape[-2:]
    hole = torch.zeros(1, 1, height, width, dtype=torch.bool)
    if source.from_file:
        if mask is None:
            raise InputError(f"{picture.name}: no mask given")
        marked = hole_from_mask(mask, invert=source.invert)
        if tuple(marked.shape[-2:]) != (height, width):
            mask_height, mask_width = marked.shape[-2:]
            if not source.resize:
                raise InputError(f"{picture.name}: its mask {mask.name} is {mask_width}x{mask_height} but the image "
                                 f"is {width}x{height}; give a mask of the image's size, or pass --resize-mask")
            from imgan.masks import resize_hole

            marked = resize_hole(marked, height, width)
        hole |= marked
    if source.from_alpha:
        hole |= hole_from_alpha(picture)
    if source.boxes:
        hole |= hole_from_boxes(height, width, source.boxes, name=picture.name)
    return hole


def _fill(engine: Engine, image: torch.Tensor, area: torch.Tensor, region: Region, *,
          working_size: int) -> torch.Tensor:
    """The model's fill of ``region`` of ``image`` (hole: ``area``), at the region's size."""
    crop = image[..., region.top : region.bottom, region.left : region.right]
    hole = area[..., region.top : region.bottom, region.left : region.right].to(crop.dtype)
    height, width = crop.shape[-2:]
    factor = min(1.0, working_size / max(height, width)) if working_size else 1.0
    if factor < 1.0:
        size = (max(8, round(height * factor)), max(8, round(width * factor)))
        small = resize_to(crop, *size)
        small_hole = (F.interpolate(hole, size=size, mode="area") > 0).to(crop.dtype)  # any part of a hole is hole
        log.debug("filling %dx%d at %dx%d", width, height, size[1], size[0])
    else:
        small, small_hole = crop, hole
    filled = engine.run(torch.cat([small * (1 - small_hole), small_hole], dim=1))
    filled = torch.nan_to_num(filled[:, :3].float(), nan=0.5).clamp_(0.0, 1.0)
    if factor < 1.0:
        filled = resize_to(filled, height, width)
    return filled


def inpaint_picture(
    picture: Picture,
    hole: torch.Tensor,
    engine: Engine,
    *,
    strategy: str = "crop",
    dilate: int = 0,
    feather: int = 0,
    opaque: bool = False,
) -> Picture:
    """Fill ``hole`` (1,1,H,W bool) of ``picture`` with ``engine``'s model; see the module docstring.

    ``opaque`` makes the filled pixels opaque (the hole came from the transparency). The picture's
    tensors are changed in place and returned in it. An empty hole gives the picture back
    unchanged, with a warning.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    weights = blend_weights(hole, dilate=dilate, feather=feather)
    area = weights > 0
    regions = fill_regions(area, context=CONTEXT, min_margin=MIN_MARGIN)
    if not regions:
        log.warning("%s: the mask marks nothing to fill; the image is written unchanged", picture.name)
        return picture
    rgb, alpha = picture.rgb, picture.alpha
    image = rgb.detach().to("cpu", torch.float32)  # the same tensor when it already is (no copy)
    working = engine.descriptor.working_size
    if strategy != "crop":
        height, width = image.shape[-2:]
        regions = [Region(0, 0, height, width)]
        working = working if strategy == "resize" else 0
    log.info("%s: filling %d region(s)", picture.name, len(regions))
    fills = [_fill(engine, image, area, region, working_size=working) for region in regions]  # before any change
    for region, fill in zip(regions, fills, strict=True):
        rows, cols = slice(region.top, region.bottom), slice(region.left, region.right)
        weight = weights[..., rows, cols]
        original = rgb[..., rows, cols].float()
        # Where the weight is 0 the original values stay bit for bit (not 0 * fill + 1 * original).
        rgb[..., rows, cols] = torch.where(weight > 0, weight * fill + (1 - weight) * original, original).to(rgb.dtype)
        if opaque and alpha is not None:
            kept = alpha[..., rows, cols].float()
            alpha[..., rows, cols] = torch.where(weight > 0, weight + (1 - weight) * kept, kept).to(alpha.dtype)
    return dataclasses.replace(picture, rgb=rgb, alpha=alpha)


def worker(engine: Engine, *, source: MaskSource, strategy: str, dilate: int, feather: int) -> Worker:
    """The batch worker of ``imgan inpaint`` on one engine."""

    def process(picture: Picture, companions: Mapping[str, Picture]) -> Picture:
        hole = find_hole(picture, companions.get("mask"), source)
        return inpaint_picture(picture, hole, engine, strategy=strategy, dilate=dilate, feather=feather,
                               opaque=source.from_alpha)

    return process


def pipeline(model: str, *, mask: str | None = None, boxes: Sequence[Box] = (), invert_mask: bool = False,
             resize_mask: bool = False, dilate: int = 0, feather: int = 0, strategy: str = "crop") -> Pipeline:
    """What ``imgan inpaint`` runs (the CLI and ``imgan serve`` alike); UsageError for options that cannot work.

    ``mask`` is what the user gave for the ``mask`` companion (a file, folder or template; see
    ``paths.resolve_companion``), or "alpha" for the picture's own transparency.
    """
    if strategy not in STRATEGIES:
        raise UsageError(f"--strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    if mask is None and not boxes:
        raise UsageError("say what to fill: --mask FILE|FOLDER|TEMPLATE|alpha, or --box x,y,w,h")
    if (invert_mask or resize_mask) and mask in (None, "alpha"):
        raise UsageError("--invert-mask and --resize-mask apply to a mask file; give one with --mask")
    source = MaskSource(from_file=mask not in (None, "alpha"), from_alpha=mask == "alpha", boxes=tuple(boxes),
                        invert=invert_mask, resize=resize_mask)
    process = partial(worker, source=source, strategy=strategy, dilate=dilate, feather=feather)
    companions = {"mask": mask} if source.from_file and mask is not None else {}
    return Pipeline("inpaint", model, process, suffix="inpainted", tiling=False, companions=companions)
