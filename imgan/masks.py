"""Inpainting masks: read them, make them from boxes or transparency, grow and feather them, find the
regions to fill, and draw random ones for training and evaluation.

A hole is a (1,1,H,W) bool tensor, True where the image is to be filled (1 = fill, as everywhere in
imgan). Blend weights are (1,1,H,W) float32: 1 in the grown hole, falling along a raised cosine over
the feather band, and exactly 0 everywhere else, so a pixel of weight 0 is never touched. OpenCV
and numpy do the pixel work inside; nothing here reads or writes files (``imgan.io`` does).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imgan.errors import InputError, UsageError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from imgan.io import Picture

__all__ = [
    "COVERAGE",
    "MASK_KINDS",
    "THRESHOLD",
    "Box",
    "Region",
    "blend_weights",
    "fill_regions",
    "hole_from_alpha",
    "hole_from_boxes",
    "hole_from_mask",
    "parse_box",
    "random_hole",
    "resize_hole",
]

THRESHOLD = 0.5
"""A mask pixel means "fill" above this (50% grey); an alpha below it means "transparent"."""
COVERAGE = (0.05, 0.25)
"""Share of the image a random hole covers, at least and at most (training and evaluation)."""
MASK_KINDS = ("mixed", "strokes", "boxes")
MAX_BOX_COORDINATE = 1_000_000
_BOX_TEXT = re.compile(r"^\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*$")
_BT601 = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class Box:
    """A rectangle in pixels: left, top, width, height."""

    x: int
    y: int
    width: int
    height: int

    def __str__(self) -> str:
        return f"{self.x},{self.y},{self.width},{self.height}"


@dataclass(frozen=True)
class Region:
    """A crop of the image, rows ``top:bottom`` and columns ``left:right``."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left

    def overlaps(self, other: Region) -> bool:
        return (self.top < other.bottom and other.top < self.bottom and self.left < other.right
                and other.left < self.right)


def parse_box(text: str) -> Box:
    """``"x,y,w,h"`` (pixels: left, top, width, height) -> Box; UsageError for anything else."""
    match = _BOX_TEXT.match(text)
    shown = text if len(text) <= 60 else text[:57] + "..."
    if match is None:
        raise UsageError(f"--box {shown!r}: give four integers x,y,w,h (left, top, width, height in pixels)")
    if any(len(group.lstrip("-")) > 7 or abs(int(group)) > MAX_BOX_COORDINATE for group in match.groups()):
        raise UsageError(f"--box {shown!r}: numbers must lie within +-{MAX_BOX_COORDINATE} pixels")
    x, y, width, height = (int(group) for group in match.groups())
    if width <= 0 or height <= 0:
        raise UsageError(f"--box {shown!r}: width and height must be positive")
    return Box(x, y, width, height)


# --------------------------------------------------------------------------------------------
# Holes from what the user gives


def hole_from_mask(mask: Picture, *, invert: bool = False) -> torch.Tensor:
    """The hole a mask image marks: white (luma above 50% grey) = fill, black = keep.

    Transparent mask pixels count as black (the mask is put over black), so a hole painted on a
    transparent layer works too. ``invert`` swaps the two (black = fill).
    """
    import torch

    luma = sum(weight * mask.rgb[:, channel : channel + 1].float() for channel, weight in enumerate(_BT601))
    if mask.alpha is not None:
        luma = luma * mask.alpha.float()
    hole = luma > THRESHOLD
    return ~hole if invert else hole.to(torch.bool)


def hole_from_alpha(picture: Picture) -> torch.Tensor:
    """The hole a picture's own transparency marks: alpha below 50% = fill."""
    if picture.alpha is None:
        raise InputError(f"{picture.name}: has no alpha channel, so --mask alpha finds no hole in it; give a "
                         "mask file or --box")
    return picture.alpha < THRESHOLD


def hole_from_boxes(height: int, width: int, boxes: tuple[Box, ...] | list[Box], *, name: str) -> torch.Tensor:
    """The union of ``boxes`` (clipped to the image); InputError for a box that misses the image."""
    import torch

    hole = torch.zeros(1, 1, height, width, dtype=torch.bool)
    for box in boxes:
        top, left = max(box.y, 0), max(box.x, 0)
        bottom, right = min(box.y + box.height, height), min(box.x + box.width, width)
        if top >= bottom or left >= right:
            raise InputError(f"{name}: --box {box} lies outside the {width}x{height} image")
        hole[..., top:bottom, left:right] = True
    return hole


def resize_hole(hole: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A hole resized to ``height`` x ``width``: by area when shrinking (a pixel half covered fills), else nearest."""
    import torch
    import torch.nn.functional as F

    if tuple(hole.shape[-2:]) == (height, width):
        return hole
    shrinking = height < hole.shape[-2] and width < hole.shape[-1]
    resized = F.interpolate(hole.float(), size=(height, width), mode="area" if shrinking else "nearest")
    return (resized >= THRESHOLD).to(torch.bool)


# --------------------------------------------------------------------------------------------
# Growing, feathering, regions


def _bounds(mask: np.ndarray, reach: int) -> tuple[int, int, int, int] | None:
    """(top, left, bottom, right) of the True pixels grown by ``reach``, clipped; None if there are none."""
    import numpy as np

    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].any(axis=0))  # only the rows that hold any: fast
    height, width = mask.shape
    return (max(0, int(rows[0]) - reach), max(0, int(cols[0]) - reach),
            min(height, int(rows[-1]) + reach + 1), min(width, int(cols[-1]) + reach + 1))


def blend_weights(hole: torch.Tensor, *, dilate: int = 0, feather: int = 0) -> torch.Tensor:
    """How much of the fill each pixel takes: 1 within ``dilate`` px of the hole, then a raised-cosine
    fall over the next ``feather`` px (Euclidean distances), exactly 0 beyond.

    Only a window around the hole is computed, so a small hole in a huge image costs little.
    """
    import cv2
    import numpy as np
    import torch

    if dilate < 0 or feather < 0:
        raise ValueError(f"dilate and feather must be >= 0, not {dilate} and {feather}")
    mask = hole[0, 0].cpu().numpy()
    weights = np.zeros(mask.shape, dtype=np.float32)
    bounds = _bounds(mask, dilate + feather + 1)
    if bounds is not None:
        top, left, bottom, right = bounds
        window = mask[top:bottom, left:right]
        if dilate == 0 and feather == 0:
            weights[top:bottom, left:right] = window
        else:
            # Distance of every pixel to the nearest hole pixel (0 inside): every hole pixel lies in
            # the window, which reaches further than the fill does.
            distance = cv2.distanceTransform((~window).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
            band = (distance - dilate) / (feather + 1)
            fall = 0.5 * (1.0 + np.cos(np.pi * np.clip(band, 0.0, 1.0)))
            weights[top:bottom, left:right] = np.where(distance <= dilate + feather, fall, 0.0)
    return torch.from_numpy(weights)[None, None]


def _grown(bounds: tuple[int, int, int, int], shape: tuple[int, int], *, context: float,
           min_margin: int) -> Region:
    """The crop around the hole bounds: margins of ``context`` x the hole's longer side (at least
    ``min_margin``), moved inward at the image's edges so the crop keeps its context."""
    top, left, bottom, right = bounds
    height, width = shape
    margin = max(min_margin, math.ceil(context * max(bottom - top, right - left)))

    def span(start: int, stop: int, size: int) -> tuple[int, int]:
        length = min(size, stop - start + 2 * margin)
        first = min(max(0, start - margin), size - length)
        return first, first + length

    top, bottom = span(top, bottom, height)
    left, right = span(left, right, width)
    return Region(top, left, bottom, right)


def fill_regions(area: torch.Tensor, *, context: float = 0.5, min_margin: int = 32) -> list[Region]:
    """Crops that together hold every True pixel of ``area`` with context around it, none overlapping.

    Parts of the area closer than ``min_margin`` are grouped; each group gets a crop with margins
    of ``context`` times its longer side (at least ``min_margin``); crops that overlap are merged
    and grown again until none does.
    """
    import cv2
    import numpy as np
    from scipy import ndimage

    mask = area[0, 0].cpu().numpy()
    bounds = _bounds(mask, min_margin)
    if bounds is None:
        return []
    top, left, bottom, right = bounds
    window = mask[top:bottom, left:right].astype(np.uint8)
    kernel = np.ones((2 * min_margin + 1, 2 * min_margin + 1), np.uint8)
    _, labels = cv2.connectedComponents(cv2.dilate(window, kernel), connectivity=8)
    groups = [(s[0].start + top, s[1].start + left, s[0].stop + top, s[1].stop + left)
              for s in ndimage.find_objects(labels * window) if s is not None]

    def crop(group: tuple[int, int, int, int]) -> Region:
        return _grown(group, mask.shape, context=context, min_margin=min_margin)

    regions = [(group, crop(group)) for group in groups]
    merged = True
    while merged:
        merged = False
        for i in range(len(regions)):
            for j in range(i + 1, len(regions)):
                if regions[i][1].overlaps(regions[j][1]):
                    (a, _), (b, _) = regions[i], regions[j]
                    union = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    regions[i] = (union, crop(union))
                    del regions[j]
                    merged = True
                    break
            if merged:
                break
    return sorted((region for _, region in regions), key=lambda r: (r.top, r.left))


# --------------------------------------------------------------------------------------------
# Random holes


def random_hole(
    height: int,
    width: int,
    *,
    generator: torch.Generator,
    coverage: tuple[float, float] = COVERAGE,
    kind: str = "mixed",
) -> torch.Tensor:
    """A random hole of free-form strokes and boxes, covering between ``coverage`` of the image.

    Everything random comes from ``generator``, so a seeded generator gives the same hole on every
    machine. Strokes are thick polylines of 4-10 segments with round joints (as in DeepFill v2 and
    LaMa's "irregular" masks); boxes are 10-40% of the shorter side each way. ``kind`` is "mixed"
    (about one shape in three a box), "strokes" or "boxes". Shapes are added until the target
    coverage, drawn uniformly within ``coverage``, is reached; a shape that would pass the upper
    bound is drawn again instead.
    """
    import cv2
    import numpy as np
    import torch

    if kind not in MASK_KINDS:
        raise ValueError(f"mask kind {kind!r}: use one of {', '.join(MASK_KINDS)}")
    low, high = coverage
    if not 0.0 < low <= high < 1.0:
        raise ValueError(f"coverage {coverage}: give 0 < low <= high < 1")

    def uniform(a: float, b: float) -> float:
        return a + (b - a) * float(torch.rand((), generator=generator))

    side = min(height, width)
    target = uniform(low, high)
    canvas = np.zeros((height, width), np.uint8)
    covered = 0.0
    for _ in range(200):
        shape = canvas.copy()
        if kind == "boxes" or (kind == "mixed" and uniform(0, 1) < 0.35):
            box_width, box_height = round(uniform(0.1, 0.4) * side), round(uniform(0.1, 0.4) * side)
            x, y = round(uniform(0, width - box_width)), round(uniform(0, height - box_height))
            shape[y : y + box_height, x : x + box_width] = 1
        else:
            thickness = max(1, round(uniform(0.03, 0.09) * side))
            x, y = uniform(0, width), uniform(0, height)
            angle = uniform(0, 2 * math.pi)
            for _ in range(int(uniform(4, 11))):
                angle += uniform(-math.pi / 2, math.pi / 2)
                length = uniform(0.05, 0.2) * side
                end_x = min(max(x + length * math.cos(angle), 0), width - 1)
                end_y = min(max(y + length * math.sin(angle), 0), height - 1)
                cv2.line(shape, (round(x), round(y)), (round(end_x), round(end_y)), 1, thickness)
                cv2.circle(shape, (round(end_x), round(end_y)), thickness // 2, 1, -1)
                x, y = end_x, end_y
        share = float(shape.mean())
        if share > high:
            continue
        canvas, covered = shape, share
        if covered >= target:
            break
    return torch.from_numpy(canvas.astype(bool))[None, None]
