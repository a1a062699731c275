"""Pure tensor functions for tiled inference: pad, plan overlapping tiles, blend, resample, assemble.

Tiles overlap by ``overlap`` input pixels. Each tile's output is weighted by a separable window
that is zero in the outer quarter of every interior overlap (where the network saw zero padding
instead of real neighbours) and rises along a raised-cosine ramp through the middle half. The
windows are normalised per axis so that they sum to one at every output pixel, so weighted tiles
simply add up.

``tiled_blocks`` hands the blended output over in blocks, each as soon as no later tile touches
it, so the full-size float result never has to exist: float memory is one tile's output plus the
rows it shares with the next row of tiles, whatever the image size. Another output size is made
tile by tile too: resizing is linear, so each weighted tile output is resampled onto the output
grid (``Resampler`` writes out the taps of ``F.interpolate``'s bicubic) and the pieces add up to
the resized whole.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

TileFn = Callable[[torch.Tensor], torch.Tensor]
TileProgress = Callable[[int, int], None]
"""Told (tiles done, tiles in all) before the first tile and after each one."""


def unit(values: torch.Tensor) -> torch.Tensor:
    """Float32 values in [0,1]: ``values`` as they are if float, else integer levels (uint8, or uint16
    of 65535) divided as the reader divides them, so a picture kept as levels gives the same tiles."""
    if values.dtype.is_floating_point:
        return values
    peak = 65535.0 if values.dtype == torch.uint16 else 255.0
    return values.float().div_(peak)


def padded_side(side: int, multiple: int, *, min_side: int = 1) -> int:
    """``side`` grown to at least ``min_side`` and then to a multiple of ``multiple``."""
    side = max(side, min_side)
    return side + -side % max(multiple, 1)


def pad_to_multiple(image: torch.Tensor, multiple: int, *, min_side: int = 1) -> torch.Tensor:
    """Pad (B,C,H,W) on the bottom and right by reflection so H and W are at least ``min_side`` and
    multiples of ``multiple``.

    A pad wider than the side reflects the reflection again (the picture repeats, mirrored); a side
    of one pixel is repeated.
    """
    height, width = image.shape[-2:]
    image = _pad_axis(image, padded_side(height, multiple, min_side=min_side), vertical=True)
    return _pad_axis(image, padded_side(width, multiple, min_side=min_side), vertical=False)


def _pad_axis(image: torch.Tensor, target: int, *, vertical: bool) -> torch.Tensor:
    """Reflect (B,C,H,W) at the bottom (``vertical``) or right until that side is ``target``."""
    if image.dtype == torch.uint16 and image.shape[-2 if vertical else -1] < target:  # torch pads no uint16:
        return _pad_axis(image.view(torch.int16), target, vertical=vertical).view(torch.uint16)  # copied alike
    while (side := image.shape[-2 if vertical else -1]) < target:
        pad = target - side if side == 1 else min(target - side, side - 1)
        mode = "replicate" if side == 1 else "reflect"
        image = F.pad(image, (0, 0, 0, pad) if vertical else (0, pad, 0, 0), mode=mode)
    return image


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


class Block(NamedTuple):
    """A finished piece of an output: ``pixels`` (1,C,h,w) with its top-left corner at (``top``, ``left``)."""

    top: int
    left: int
    pixels: torch.Tensor


def _cubic_near(x: torch.Tensor, a: float) -> torch.Tensor:
    """Keys' cubic convolution kernel for 0 <= x <= 1."""
    return ((a + 2) * x - (a + 3)) * x * x + 1


def _cubic_far(x: torch.Tensor, a: float) -> torch.Tensor:
    """Keys' cubic convolution kernel for 1 <= x <= 2."""
    return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a


@dataclass(frozen=True)
class Resampler:
    """One axis of a resize as explicit taps: ``out[i] = sum_k weight[i, k] * in[index[i, k]]``."""

    index: torch.Tensor
    """(outputs, taps) int64 input positions."""
    weight: torch.Tensor
    """(outputs, taps) float32; taps that do not apply weigh 0."""

    @classmethod
    def bicubic(cls, in_size: int, out_size: int, *, antialias: bool) -> Resampler:
        """The taps of ``F.interpolate(mode="bicubic", align_corners=False, antialias=...)``.

        Without antialias: Keys' kernel (a = -0.75) on four inputs, clamped at the edges. With it:
        PIL's kernel (a = -0.5), widened by the shrink factor and renormalised where it meets an
        edge. Positions are computed in float32, as torch does, so results agree to float precision.
        """
        scale = torch.tensor(in_size / out_size, dtype=torch.float32)
        position = torch.arange(out_size, dtype=torch.float32)
        if not antialias:
            real = scale * (position + 0.5) - 0.5
            base = torch.floor(real).clamp(max=in_size - 1)
            t = (real - base).clamp(0, 1)
            weight = torch.stack([_cubic_far(t + 1, -0.75), _cubic_near(t, -0.75),
                                  _cubic_near(1 - t, -0.75), _cubic_far(2 - t, -0.75)], dim=1)
            index = (base.long()[:, None] + torch.arange(-1, 3)).clamp(0, in_size - 1)
            return cls(index, weight)
        shrink = bool(scale >= 1)
        support = 2 * scale if shrink else torch.tensor(2.0)
        inverse = 1 / scale if shrink else torch.tensor(1.0)
        center = scale * (position + 0.5)
        first = (center - support + 0.5).long().clamp(min=0)  # truncated, as torch does
        stop = (center + support + 0.5).long().clamp(max=in_size)
        index = first[:, None] + torch.arange(int((stop - first).max()))
        distance = ((index.float() - center[:, None] + 0.5) * inverse).abs()
        weight = torch.where(distance < 1, _cubic_near(distance, -0.5),
                             torch.where(distance < 2, _cubic_far(distance, -0.5), 0.0))
        weight = torch.where(index < stop[:, None], weight, 0.0)
        return cls(index.clamp(max=in_size - 1), weight / weight.sum(dim=1, keepdim=True))

    def for_outputs(self, lo: int, hi: int) -> tuple[int, int, Resampler]:
        """The inputs [start, stop) that outputs [lo, hi) read, and their taps counted from ``start``."""
        index, weight = self.index[lo:hi], self.weight[lo:hi]
        start, stop = int(index.min()), int(index.max()) + 1
        return start, stop, Resampler(index - start, weight)

    def for_inputs(self, start: int, stop: int) -> tuple[int, int, Resampler]:
        """The outputs [lo, hi) that inputs [start, stop) feed, with only those inputs' taps
        (counted from ``start``): by linearity, what a piece of the input adds to the output."""
        inside = (self.index >= start) & (self.index < stop) & (self.weight != 0)
        fed = inside.any(dim=1).nonzero().flatten()
        if fed.numel() == 0:
            raise ValueError(f"inputs [{start}, {stop}) feed no output")
        lo, hi = int(fed[0]), int(fed[-1]) + 1
        index = (self.index[lo:hi] - start).clamp(0, stop - start - 1)
        return lo, hi, Resampler(index, torch.where(inside[lo:hi], self.weight[lo:hi], 0.0))

    def __call__(self, values: torch.Tensor, dim: int) -> torch.Tensor:
        """Resample ``values`` along ``dim`` (one gathered copy at a time)."""
        if dim % values.ndim == values.ndim - 1:  # gathering rows is several times faster than columns
            return self(values.transpose(-1, -2).contiguous(), -2).transpose(-1, -2)
        shape = [1] * values.ndim
        shape[dim] = -1
        index, weight = self.index.to(values.device), self.weight.to(values.device, values.dtype)
        gathered = values.index_select(dim, index[:, 0])
        result = gathered * weight[:, 0].view(shape)
        for tap in range(1, index.shape[1]):
            torch.index_select(values, dim, index[:, tap], out=gathered)
            result.addcmul_(gathered, weight[:, tap].view(shape))
        return result


def resized_blocks(image: torch.Tensor, height: int, width: int, *,
                   block_pixels: int = 1 << 20) -> Iterator[Block]:
    """``engine.resize_to(image, height, width)`` in bands of rows, top to bottom (integer levels are
    taken through ``unit``).

    Each band reads only the input rows under it, so a large result is never whole in memory.
    """
    in_height, in_width = image.shape[-2:]
    if (in_height, in_width) == (height, width):
        yield Block(0, 0, unit(image))
        return
    antialias = height < in_height or width < in_width
    rows = Resampler.bicubic(in_height, height, antialias=antialias)
    columns = Resampler.bicubic(in_width, width, antialias=antialias)
    band = max(1, block_pixels // max(width, 1))
    for top in range(0, height, band):
        start, stop, taps = rows.for_outputs(top, min(top + band, height))
        pixels = columns(taps(unit(image[..., start:stop, :]).float(), dim=-2), dim=-1)
        yield Block(top, 0, pixels.clamp_(0.0, 1.0))


@dataclass(frozen=True)
class _Span:
    """Where one row (or column) of tiles lands: its weighted pixels [start, stop) of the model's
    output feed output pixels [lo, hi), through ``taps`` when the output is resized."""

    start: int
    stop: int
    lo: int
    hi: int
    taps: Resampler | None


def _span(offset: int, weight: torch.Tensor, limit: int, resampler: Resampler | None) -> _Span:
    nonzero = weight.nonzero().flatten()
    start, stop = offset + int(nonzero[0]), min(offset + int(nonzero[-1]) + 1, limit)
    if start >= stop:
        raise ValueError(f"a tile at {offset} lies in the padding beyond {limit}")
    if resampler is None:
        return _Span(start, stop, start, stop, None)
    lo, hi, taps = resampler.for_inputs(start, stop)
    return _Span(start, stop, lo, hi, taps)


def _tile_outputs(fn: TileFn, image: torch.Tensor, tiles: list[Tile],
                  batch_size: int) -> Iterator[tuple[int, Tile, torch.Tensor]]:
    """Each tile's index, plan and (C,h,w) float32 output, ``batch_size`` tiles per call of ``fn``.

    No reference to an output is kept once it is handed over (zip and enumerate would keep the
    last one while fetching the next), so a tile's memory is free before the next batch runs.
    """
    index = 0
    for group in batched(tiles, batch_size):
        inputs = torch.cat([image[..., t.top : t.top + t.height, t.left : t.left + t.width] for t in group])
        outputs = list(fn(inputs).float())
        del inputs
        for position, tile in enumerate(group):
            output, outputs[position] = outputs[position], None
            yield index, tile, output
            del output
            index += 1


def tiled_blocks(
    fn: TileFn,
    image: torch.Tensor,
    *,
    scale: int,
    tile_size: int,
    overlap: int,
    multiple: int = 1,
    batch_size: int = 1,
    crop: tuple[int, int] | None = None,
    size: tuple[int, int] | None = None,
    progress: TileProgress | None = None,
) -> Iterator[Block]:
    """Apply ``fn`` to a (1,C,H,W) image tile by tile and yield the blended output in finished blocks.

    ``fn`` maps a batch of tiles (B,C,h,w) to a new (B,C',h*scale,w*scale) tensor, which is then
    blended in place; H and W must be multiples of ``multiple``. The output is cropped to ``crop``
    (default: the full H*scale x W*scale; less drops padding) and, if ``size`` differs from that,
    resized to ``size`` as ``resize_to(output.clamp(0, 1), *size)`` would (tiles are clamped before
    they are resampled). Blocks come row of tiles by row of tiles, left to right; each is a view
    into a whole tile's output, valid until the next block is asked for: drop it before (``del``),
    or that memory stays in use while the next tile runs. ``tile_size`` 0, or a tile at least as
    large as the image, means one whole-image call and the whole output as one block (or bands,
    when resized): one tile for ``progress``.
    """
    height, width = image.shape[-2:]
    crop_height, crop_width = crop if crop is not None else (height * scale, width * scale)
    out_height, out_width = size if size is not None else (crop_height, crop_width)
    resize = (out_height, out_width) != (crop_height, crop_width)
    if tile_size <= 0 or (tile_size >= height and tile_size >= width):
        if progress is not None:
            progress(0, 1)
        whole = fn(image).float()[..., :crop_height, :crop_width]
        if progress is not None:
            progress(1, 1)
        if resize:
            yield from resized_blocks(whole.clamp_(0.0, 1.0), out_height, out_width)
        else:
            yield Block(0, 0, whole)
        return

    tiles = plan_tiles(height, width, tile_size=tile_size, overlap=overlap, scale=scale, multiple=multiple)
    columns = sum(1 for tile in tiles if tile.top == tiles[0].top)
    antialias = out_height < crop_height or out_width < crop_width
    row_resampler = Resampler.bicubic(crop_height, out_height, antialias=antialias) if resize else None
    column_resampler = Resampler.bicubic(crop_width, out_width, antialias=antialias) if resize else None
    row_spans = [_span(t.top * scale, t.weight_y, crop_height, row_resampler) for t in tiles[::columns]]
    column_spans = [_span(t.left * scale, t.weight_x, crop_width, column_resampler) for t in tiles[:columns]]

    _check_cover(row_spans, out_height)
    _check_cover(column_spans, out_width)

    strip: torch.Tensor | None = None  # rows that the row of tiles above shares with this one, full width
    carry: torch.Tensor | None = None  # columns that the tile to the left shares with this one
    if progress is not None:
        progress(0, len(tiles))
    for index, tile, output in _tile_outputs(fn, image, tiles, batch_size):
        if progress is not None:
            progress(index + 1, len(tiles))
        row, column = divmod(index, columns)
        rows, cols = row_spans[row], column_spans[column]
        if column == 0:
            # Rows [rows.lo, final_bottom) are finished after this row of tiles; the rest go on to the next.
            final_bottom = row_spans[row + 1].lo if row + 1 < len(row_spans) else out_height
            bottom = max(rows.hi, rows.lo + (0 if strip is None else strip.shape[-2]))
            below = output.new_zeros((1, output.shape[0], bottom - final_bottom, out_width))
            carry = None
        final_right = column_spans[column + 1].lo if column + 1 < columns else out_width

        piece = _weighted(output, tile, rows, cols, scale=scale, clamp=resize)
        if piece.shape[-2] < bottom - rows.lo:  # the rows from above reach lower than this row's own
            piece = F.pad(piece, (0, 0, 0, bottom - rows.lo - piece.shape[-2]))
        if carry is not None:
            piece[..., : carry.shape[-1]] += carry
        done = piece[..., : final_right - cols.lo]
        if strip is not None:
            done[..., : strip.shape[-2], :] += strip[..., cols.lo : final_right]
        below[..., cols.lo : final_right] = done[..., final_bottom - rows.lo :, :]
        carry = piece[..., final_right - cols.lo :].clone()
        if column == columns - 1:
            strip = below
        if final_bottom > rows.lo and final_right > cols.lo:
            block = done[..., : final_bottom - rows.lo, :]
            yield Block(rows.lo, cols.lo, block.clamp_(0.0, 1.0) if resize else block)
            del block
        del output, piece, done  # views of this tile's output: let it go before the next tile runs


def _check_cover(spans: list[_Span], length: int) -> None:
    """Each row (column) of tiles must start where the one before finishes its pixels, and together
    they must reach from 0 to ``length``: then every block is final when it is handed over."""
    in_order = all(a.lo <= b.lo <= a.hi <= b.hi for a, b in itertools.pairwise(spans))
    if not in_order or spans[0].lo != 0 or spans[-1].hi != length:
        raise ValueError(f"tiles do not cover the {length} output pixels in order; overlap is too small")


def _weighted(output: torch.Tensor, tile: Tile, rows: _Span, cols: _Span, *, scale: int, clamp: bool) -> torch.Tensor:
    """One tile's blend-weighted contribution to output pixels [rows.lo, rows.hi) x [cols.lo, cols.hi).

    Weighs (and clamps) the tile's ``output`` in place: it is used once.
    """
    top, left = tile.top * scale, tile.left * scale
    piece = output[:, rows.start - top : rows.stop - top, cols.start - left : cols.stop - left]
    if clamp:
        piece.clamp_(0.0, 1.0)
    weight_y = tile.weight_y[rows.start - top : rows.stop - top].to(piece.device)
    weight_x = tile.weight_x[cols.start - left : cols.stop - left].to(piece.device)
    piece.mul_(weight_y[:, None]).mul_(weight_x[None, :])
    if rows.taps is not None:
        piece = rows.taps(piece, dim=-2)
    if cols.taps is not None:
        piece = cols.taps(piece, dim=-1)
    return piece[None]


def assemble(blocks: Iterable[Block], height: int, width: int) -> torch.Tensor:
    """Put ``blocks`` together into one (1,C,height,width) float32 tensor (a single whole block is used as is)."""
    output: torch.Tensor | None = None
    for top, left, pixels in blocks:
        if output is None and top == left == 0 and tuple(pixels.shape[-2:]) == (height, width):
            output = pixels
            continue
        if output is None:
            output = pixels.new_zeros((1, pixels.shape[1], height, width))
        output[..., top : top + pixels.shape[-2], left : left + pixels.shape[-1]] = pixels
        del pixels
    if output is None:
        raise ValueError("no blocks to assemble")
    return output


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
    """Apply ``fn`` to a (1,C,H,W) image tile by tile and blend the results into one float32 tensor.

    ``fn`` maps a batch of tiles (B,C,h,w) to (B,C',h*scale,w*scale). H and W must be multiples of
    ``multiple``. ``tile_size`` 0, or a tile at least as large as the image, means one whole-image call.
    """
    height, width = image.shape[-2:]
    blocks = tiled_blocks(fn, image, scale=scale, tile_size=tile_size, overlap=overlap, multiple=multiple,
                          batch_size=batch_size)
    return assemble(blocks, height * scale, width * scale)
