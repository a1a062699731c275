"""Sketch to photo with pix2pix (edges2shoes): framing the sketch the way the model was trained.

edges2shoes pairs are 256 x 256: thin black lines on white, the object filling the frame. So a
sketch is prepared like this before the model sees it:

- Transparent parts are paper: the sketch is composited onto white with its alpha.
- It is reduced to grey (BT.601 luma on all three channels); coloured pens become grey lines.
- White lines on black (a mean brightness below 0.5) are inverted to black on white.
- ``size > 0``: resized (antialiased, aspect ratio kept) so its longer side is ``size``;
  ``size == 0``: kept at its own resolution.
- Padded with white, centred, to the next multiple of the model's ``size_multiple`` (256 for
  unet_256), so the model never sees reflected lines; the padding is cropped off the result,
  which is resized back to the input's exact size.

With ``from_photo`` the input is a photo: its edge map (:func:`imgan.edges.sketch_from_photo`,
after compositing onto white) is the sketch, and is returned too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from imgan.archs import ARCHS
from imgan.batch import Pipeline, Result, Worker
from imgan.descriptor import ModelDescriptor
from imgan.edges import sketch_from_photo
from imgan.engine import Engine, resize_to
from imgan.errors import UsageError
from imgan.io import Picture

__all__ = ["MIN_SIZE", "SIZE_STEP", "WORK_SIZE", "check_size", "pipeline", "prepare_sketch", "sketch2photo_picture"]

WORK_SIZE = 256
"""edges2shoes' frame: the default working size of the longer side."""
MIN_SIZE = 64
SIZE_STEP = 32

_LUMA = (0.299, 0.587, 0.114)


def check_size(size: int) -> None:
    """Raise ``UsageError`` unless ``size`` is 0 (native) or a multiple of 32 from 64 up."""
    if size != 0 and (size < MIN_SIZE or size % SIZE_STEP):
        raise UsageError(
            f"--size {size}: use 0 (the input's own resolution) or a multiple of {SIZE_STEP} "
            f"from {MIN_SIZE} up ({WORK_SIZE} is what the model was trained at)"
        )


def _on_white(picture: Picture) -> torch.Tensor:
    """The picture's RGB composited onto white with its alpha (unchanged without alpha)."""
    if picture.alpha is None:
        return picture.rgb
    return picture.rgb * picture.alpha + (1.0 - picture.alpha)


def prepare_sketch(rgb: torch.Tensor) -> torch.Tensor:
    """A sketch as the model expects it: grey, dark lines on a light background."""
    red, green, blue = rgb.unbind(dim=1)
    if torch.equal(red, green) and torch.equal(red, blue):
        grey = rgb[:, :1]
    else:
        grey = (_LUMA[0] * red + _LUMA[1] * green + _LUMA[2] * blue).unsqueeze(1).clamp(0.0, 1.0)
    if float(grey.mean()) < 0.5:
        grey = 1.0 - grey
    return grey.expand(-1, 3, -1, -1).contiguous()


def _run_framed(sketch: torch.Tensor, engine: Engine, size: int) -> torch.Tensor:
    """Resize, pad with white to the model's multiple, run, crop and resize back to the sketch's size."""
    height, width = sketch.shape[-2:]
    if size > 0:
        factor = size / max(height, width)
        work_h, work_w = max(1, round(height * factor)), max(1, round(width * factor))
        sketch = resize_to(sketch, work_h, work_w)
    else:
        work_h, work_w = height, width
    multiple = max(1, engine.descriptor.size_multiple)
    pad_h, pad_w = -work_h % multiple, -work_w % multiple
    top, left = pad_h // 2, pad_w // 2
    padded = F.pad(sketch, (left, pad_w - left, top, pad_h - top), mode="constant", value=1.0)
    photo = engine.run(padded).clamp_(0.0, 1.0)
    photo = photo[..., top:top + work_h, left:left + work_w]
    return resize_to(photo, height, width).contiguous()


def sketch2photo_picture(picture: Picture, engine: Engine, *, size: int = WORK_SIZE,
                         from_photo: bool = False) -> tuple[Picture, Picture | None]:
    """Translate a sketch (or, with ``from_photo``, a photo's edge map) into a photo of the same size.

    Returns ``(photo, sketch)``: the colour result (the input's alpha kept) and, with
    ``from_photo``, the edge map drawn from the photo as a grayscale picture (else None).
    ``size`` is the working size of the longer side (0: the input's own resolution).
    """
    check_size(size)
    rgb = _on_white(picture)
    sketch_picture = None
    if from_photo:
        rgb = sketch_from_photo(rgb)
        sketch_picture = dataclasses.replace(picture, rgb=rgb, alpha=None, grayscale=True)
    photo = _run_framed(prepare_sketch(rgb), engine, size)
    return dataclasses.replace(picture, rgb=photo, grayscale=False), sketch_picture


BATCHNORM_MODES = ("image", "running")


def batchnorm_mode(mode: str) -> Callable[[ModelDescriptor], None]:
    """Prepares a loaded model to normalise by each image's statistics (image) or the saved ones (running)."""
    if mode not in BATCHNORM_MODES:
        raise UsageError(f"--batchnorm {mode!r}: use image or running")

    def prepare(descriptor: ModelDescriptor) -> None:
        switch = ARCHS[descriptor.arch].set_per_image_norm
        if switch is not None:
            switch(descriptor.module, per_image=mode == "image")

    return prepare


def worker(engine: Engine, *, size: int = WORK_SIZE, from_photo: bool = False, save_sketch: bool = False) -> Worker:
    """The batch worker of ``imgan sketch2photo`` on one engine; with ``save_sketch`` it returns the
    edge map drawn from a photo too, as the companion output ``sketch``."""

    def process(picture: Picture, _: object) -> Picture | Result:
        photo, sketch = sketch2photo_picture(picture, engine, size=size, from_photo=from_photo)
        return Result(photo, {"sketch": sketch}) if save_sketch and sketch is not None else photo

    return process


def pipeline(model: str, *, from_photo: bool = False, save_sketch: bool = False, size: int = WORK_SIZE,
             batchnorm: str = "image") -> Pipeline:
    """What ``imgan sketch2photo`` runs (the CLI and ``imgan serve`` alike); UsageError for options that cannot work."""
    check_size(size)
    prepare = batchnorm_mode(batchnorm)
    if save_sketch and not from_photo:
        raise UsageError("--save-sketch saves the edge map --from-photo draws; add --from-photo")
    return Pipeline("sketch2photo", model, partial(worker, size=size, from_photo=from_photo, save_sketch=save_sketch),
                    suffix="photo", prepare=prepare, extras=("sketch",) if save_sketch else ())
