"""Super-resolution of one picture: colour through the model, alpha by the model or by resizing."""

from __future__ import annotations

import dataclasses
import math

from imgan.batch import Worker
from imgan.engine import Engine, resize_to
from imgan.errors import InputError
from imgan.io import Picture

ALPHA_MODES = ("model", "resize", "drop")


def output_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """The exact output size for a scale factor (at least one pixel)."""
    return max(1, round(height * scale)), max(1, round(width * scale))


def upscale_picture(picture: Picture, engine: Engine, *, scale: float | None = None,
                    alpha: str = "model") -> Picture:
    """Upscale ``picture`` by ``scale`` (default: the model's own) with ``engine``.

    Any other factor than the model's runs the model and then resizes to the exact size with
    antialiased bicubic. The alpha channel is upscaled by the model (as a grey image), resized,
    or dropped, as ``alpha`` says (a constant alpha is always just resized). Grayscale pictures
    run as grey RGB; the writer stores them as grayscale again.
    """
    if alpha not in ALPHA_MODES:
        raise InputError(f"--alpha {alpha!r}: use one of {', '.join(ALPHA_MODES)}")
    native = engine.descriptor.scale
    factor = float(native if scale is None else scale)
    if not (factor > 0 and math.isfinite(factor)):
        raise InputError(f"--scale {scale}: use a positive factor")
    height, width = picture.rgb.shape[-2:]
    target = output_size(height, width, factor)

    rgb = resize_to(engine.run(picture.rgb).clamp_(0.0, 1.0), *target)
    alpha_out = None
    if picture.alpha is not None and alpha != "drop":
        constant = bool(picture.alpha.min() == picture.alpha.max())
        if alpha == "model" and not constant:
            grey = engine.run(picture.alpha.expand(-1, 3, -1, -1)).clamp_(0.0, 1.0)
            alpha_out = resize_to(grey.mean(dim=1, keepdim=True), *target)
        else:
            alpha_out = resize_to(picture.alpha, *target)
    return dataclasses.replace(picture, rgb=rgb, alpha=alpha_out)


def worker(engine: Engine, *, scale: float | None = None, alpha: str = "model") -> Worker:
    """The batch worker of ``imgan upscale`` on one engine."""
    return lambda picture, _: upscale_picture(picture, engine, scale=scale, alpha=alpha)
