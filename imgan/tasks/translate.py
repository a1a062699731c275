"""Photo-to-painting translation of one picture (``imgan stylize``)."""

from __future__ import annotations

import dataclasses

from imgan.batch import Worker
from imgan.engine import Engine
from imgan.errors import UsageError
from imgan.io import Picture


def stylize_picture(picture: Picture, engine: Engine, *, strength: float = 1.0) -> Picture:
    """``picture`` translated by ``engine`` at its own resolution, blended with it by ``strength``.

    The engine pads to the network's multiple and crops back, and tiles large pictures with
    shared normalisation statistics. Alpha, bit depth and metadata are kept; a grey picture
    comes back in colour (paintings are).
    """
    if not 0.0 <= strength <= 1.0:
        raise UsageError(f"--strength {strength}: use a value between 0 and 1")
    styled = engine.run(picture.rgb).clamp_(0.0, 1.0)
    if strength < 1.0:
        styled = styled.mul_(strength).add_(picture.rgb, alpha=1.0 - strength)
    return dataclasses.replace(picture, rgb=styled, grayscale=False)


def worker(engine: Engine, *, strength: float = 1.0) -> Worker:
    """The batch worker of ``imgan stylize`` on one engine."""
    return lambda picture, _: stylize_picture(picture, engine, strength=strength)
