"""Pure tensor functions for tiled inference: pad, plan overlapping tiles, blend, assemble.

Tiles overlap by ``overlap`` input pixels. Each tile's output is weighted by a separable window
that is zero in the outer quarter of every interior overlap (where the network saw zero padding
instead of real neighbours) and rises along a raised-cosine ramp through the middle half. The
windows are normalised per axis so that they sum to one at every output pixel, which lets tiles
be added straight into one preallocated output buffer with no second weight image.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

TileFn = Callable[[torch.Tensor], torch.Tensor]


def pad_to_multiple(image: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad (B,C,H,W) on the bottom and right by reflection so H and W are multiples of ``multiple``."""
    height, width = image.shape[-2:]
    pad_h = -height % multiple
    pad_w = -width % multiple
    if pad_h == 0 and pad_w == 0:
        return image
    # Reflection needs the padding to be smaller than the side; replicate covers tiny images.
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(image, (0, pad_w, 0, pad_h), mode=mode)


def tile_starts(length: int, tile: int, overlap: int, *, multiple: int = 1) -> list[int]:
    """Start offsets of tiles of size ``tile`` that cover ``[0, length)``.

    Neighbouring tiles share at least ``overlap`` pixels; starts are multiples of ``multiple``
    (so pixel-unshuffle networks see the same pixel grouping as on the whole image) and are
    spread evenly, so no tile is a thin sliver.
    """
    if tile >= length:
        return [0]
    if length % multiple or tile % multiple:
        raise ValueError(f"length {length} and tile {tile} must be multiples of {multiple}")
    units_length, units_tile = length // multiple, tile // multiple
    units_overlap = min(math.ceil(overlap / multiple), units_tile - 1)
    units_step = units_tile - units_overlap
    count = math.ceil((units_length - units_overlap) / units_step)
    count = max(count, 2)
    span = units_length - units_tile
    return [multiple * round(index * span / (count - 1)) for index in range(count)]


def fit_tile(length: int, tile: int, overlap: int, *, multiple: int = 1) -> int:
    """The smallest tile (multiple of ``multiple``, at most ``tile``) that covers ``length`` with
    as few tiles as ``tile`` itself would need: no work is wasted on needless overlap."""
    if tile >= length:
        return length
    count = max(2, math.ceil((length - overlap) / (tile - overlap)))
    fitted = math.ceil((length + (count - 1) * overlap) / count)
    fitted = -(-fitted // multiple) * multiple
    return min(tile, fitted)


def _ramp(length: int, overlap: int) -> torch.Tensor:
    """Weights for the ``overlap`` pixels at a tile's interior edge: zero, cosine ramp, one."""
    margin = overlap // 4
    rise = max(overlap - 2 * margin, 1)
    positions = torch.arange(length, dtype=torch.float64)
    phase = ((positions - margin + 0.5) / rise).clamp(0.0, 1.0)
    return 0.5 - 0.5 * torch.cos(math.pi * phase)


def axis_weights(length: int, starts: list[int], tile: int, overlap: int) -> list[torch.Tensor]:
    """One normalised 1-D weight vector per tile along an axis of ``length`` output pixels."""
    raw = []
    for start in starts:
        weight = torch.ones(tile, dtype=torch.float64)
        if start > 0:
            weight *= _ramp(tile, overlap)
        if start + tile < length:
            weight *= _ramp(tile, overlap).flip(0)
        raw.append(weight)
    total = torch.zeros(length, dtype=torch.float64)
    for start, weight in zip(starts, raw, strict=True):
        total[start : start + tile] += weight
    if bool((total <= 0).any()):
        raise ValueError("tiles leave pixels uncovered; overlap is too small for the tile size")
    return [(weight / total[start : start + tile]).float() for start, weight in zip(starts, raw, strict=True)]


@dataclass(frozen=True)
class Tile:
    """One tile: its input window and its output window with the blend weights for it."""

    top: int
    left: int
    height: int
    width: int
    weight_y: torch.Tensor
    weight_x: torch.Tensor


def plan_tiles(
    height: int, width: int, *, tile_size: int, overlap: int, scale: int, multiple: int = 1
) -> list[Tile]:
    """Cover an input of ``height`` x ``width`` (multiples of ``multiple``) with equal-sized tiles."""
    tile_size = max(multiple, tile_size - tile_size % multiple)
    overlap = min(overlap, min(tile_size, height, width) // 2)
    tile_h = fit_tile(height, tile_size, overlap, multiple=multiple)
    tile_w = fit_tile(width, tile_size, overlap, multiple=multiple)
    starts_y = tile_starts(height, tile_h, overlap, multiple=multiple)
    starts_x = tile_starts(width, tile_w, overlap, multiple=multiple)
    weights_y = axis_weights(height * scale, [s * scale for s in starts_y], tile_h * scale, overlap * scale)
    weights_x = axis_weights(width * scale, [s * scale for s in starts_x], tile_w * scale, overlap * scale)
    return [
        Tile(top, left, tile_h, tile_w, weight_y, weight_x)
        for top, weight_y in zip(starts_y, weights_y, strict=True)
        for left, weight_x in zip(starts_x, weights_x, strict=True)
    ]


def batched(tiles: list[Tile], batch_size: int) -> Iterator[list[Tile]]:
    """Consecutive groups of at most ``batch_size`` tiles."""
    for index in range(0, len(tiles), max(1, batch_size)):
        yield tiles[index : index + batch_size]


def run_tiled(
    fn: TileFn,
    image: torch.Tensor,
    *,
    scale: int,
    tile_size: int,
    overlap: int,
    multiple: int = 1,
    batch_size: int = 1,
) -> torch.Tensor:
    """Apply ``fn`` to a (1,C,H,W) image tile by tile and blend the results.

    ``fn`` maps a batch of tiles (B,C,h,w) to (B,C',h*scale,w*scale). H and W must be multiples of
    ``multiple``. The output is one float32 buffer on the image's device, allocated once.
    ``tile_size`` 0, or a tile at least as large as the image, means one whole-image call.
    """
    height, width = image.shape[-2:]
    if tile_size <= 0 or (tile_size >= height and tile_size >= width):
        return fn(image).float()
    tiles = plan_tiles(height, width, tile_size=tile_size, overlap=overlap, scale=scale, multiple=multiple)
    output: torch.Tensor | None = None
    for group in batched(tiles, batch_size):
        inputs = torch.cat(
            [image[..., t.top : t.top + t.height, t.left : t.left + t.width] for t in group]
        )
        results = fn(inputs).float()
        if output is None:
            output = image.new_zeros(
                (1, results.shape[1], height * scale, width * scale), dtype=torch.float32
            )
        for tile, result in zip(group, results, strict=True):
            weight = tile.weight_y.to(result.device)[:, None] * tile.weight_x.to(result.device)[None, :]
            top, left = tile.top * scale, tile.left * scale
            output[0, :, top : top + result.shape[-2], left : left + result.shape[-1]] += (
                result * weight
            ).to(output.device)
    assert output is not None
    return output
