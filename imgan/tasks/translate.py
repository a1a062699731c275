"""Photo-to-painting translation of one picture (``imgan stylize``)."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from functools import partial
from pathlib import Path

from imgan.batch import Pipeline, Worker
from imgan.engine import Engine
from imgan.errors import ModelChoiceError, UsageError
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


def check_style(name: str, styles: Mapping[str, str]) -> None:
    """Refuse a --style that is neither a style, a stylize model of the registry, nor a file (exit 2)."""
    from imgan import hub

    models = sorted(spec.name for spec in hub.registry().values() if spec.task == "stylize" and not spec.hidden)
    if name in models:
        return
    close = difflib.get_close_matches(name, [*styles, *models], n=2, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ModelChoiceError(f"--style {name!r}: use {', '.join(styles)}, a stylize model "
                           f"({', '.join(models)}) or a .pth/.safetensors file{hint}")


def pipeline(style: str, *, strength: float = 1.0) -> Pipeline:
    """What ``imgan stylize --style STYLE`` runs: a short style name (``STYLES``), a stylize model or a file."""
    from imgan.models import is_local_model
    from imgan.tasks import STYLES

    if style in STYLES:
        return Pipeline("stylize", STYLES[style], partial(worker, strength=strength), suffix=style)
    if is_local_model(style):
        return Pipeline("stylize", style, partial(worker, strength=strength), suffix=Path(style).stem)
    check_style(style, STYLES)
    return Pipeline("stylize", style, partial(worker, strength=strength), suffix=style)
