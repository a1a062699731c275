"""Super-resolution of one picture: colour through the model, alpha by the model or by resizing."""

from __future__ import annotations

import math
from functools import partial

from imgan.batch import Pipeline, Worker
from imgan.engine import Engine
from imgan.errors import InputError, UsageError
from imgan.io import Picture, blank_picture, put_block
from imgan.tiling import resized_blocks

ALPHA_MODES = ("model", "resize", "drop")


def output_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """The exact output size for a scale factor (at least one pixel)."""
    return max(1, round(height * scale)), max(1, round(width * scale))


def upscale_picture(picture: Picture, engine: Engine, *, scale: float | None = None,
                    alpha: str = "model", quantized: bool = False) -> Picture:
    """Upscale ``picture`` by ``scale`` (default: the model's own) with ``engine``.

    Any other factor than the model's resizes the model's output to the exact size with
    antialiased bicubic (tile by tile, see ``Engine.run_blocks``). The alpha channel is upscaled
    by the model (as a grey image), resized, or dropped, as ``alpha`` says (a constant alpha is
    always just resized). Grayscale pictures run as grey RGB; the writer stores them as
    grayscale again. ``quantized`` builds the result as the levels it will be written with
    (see ``io.blank_picture``), block by block as the model finishes them: peak memory is then
    the output's own size plus the input and about one tile, at any scale.
    """
    if alpha not in ALPHA_MODES:
        raise InputError(f"--alpha {alpha!r}: use one of {', '.join(ALPHA_MODES)}")
    native = engine.descriptor.scale
    factor = float(native if scale is None else scale)
    if not (factor > 0 and math.isfinite(factor)):
        raise InputError(f"--scale {scale}: use a positive factor")
    height, width = picture.rgb.shape[-2:]
    target = output_size(height, width, factor)
    keep_alpha = picture.alpha is not None and alpha != "drop"
    result = blank_picture(picture, *target, alpha=keep_alpha, quantized=quantized)

    for block in engine.run_blocks(picture.rgb, size=target):
        put_block(result, block.top, block.left, rgb=block.pixels)
        del block  # a view of a whole tile's output: let it go before the next tile runs
    if picture.alpha is not None and keep_alpha:
        constant = bool((picture.alpha == picture.alpha.flatten()[0]).all())  # no min/max of uint16 levels
        if alpha == "model" and not constant:
            for block in engine.run_blocks(picture.alpha.expand(-1, 3, -1, -1), size=target):
                grey = block.pixels.clamp(0.0, 1.0).mean(dim=1, keepdim=True)
                put_block(result, block.top, block.left, alpha=grey)
                del block, grey
        else:
            for block in resized_blocks(picture.alpha, *target):
                put_block(result, block.top, block.left, alpha=block.pixels)
    return result


def worker(engine: Engine, *, scale: float | None = None, alpha: str = "model") -> Worker:
    """The batch worker of ``imgan upscale`` on one engine: results quantized for the writer."""
    return lambda picture, _: upscale_picture(picture, engine, scale=scale, alpha=alpha, quantized=True)


def pipeline(model: str, *, scale: float | None = None, denoise: float | None = None,
             alpha: str = "model") -> Pipeline:
    """What ``imgan upscale`` runs (the CLI and ``imgan serve`` alike); UsageError for options that cannot work."""
    if alpha not in ALPHA_MODES:
        raise UsageError(f"--alpha {alpha!r}: use one of {', '.join(ALPHA_MODES)}")
    if scale is not None and not 0 < scale < float("inf"):
        raise UsageError(f"--scale {scale:g}: use a positive factor")
    return Pipeline("upscale", model, partial(worker, scale=scale, alpha=alpha), scale=scale, denoise=denoise,
                    levels=True)  # read as integer levels: float only tile by tile
