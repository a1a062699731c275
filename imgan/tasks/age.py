"""Face aging of one picture: find the faces, age each in a model-sized crop, paste it back feathered.

Fast-AgingGAN's generator was trained on face crops; upstream says "as long as the image of
spatial dims 512x512 contains a face of size 256x256, this will work fine". So each face gets a
square crop twice the size of its box (the cascade's box spans about brows to chin and ear to
ear, the "face"), raised a little so hair and chin both fit, resized to 512x512, run through
the model, resized back and blended in with a raised-cosine elliptical mask that is 1 over the
face and 0 well inside the crop's border. Pixels outside every crop are never written.

Only the part of a crop that lies in the image is ever held at full resolution: both resizes are
separable bicubic weight matrices (the same weights as ``F.interpolate``, antialiased when
shrinking), and the crop's part outside the image (edge pixels repeated) exists only as weights.
A face box is first clipped to the image grown by its own size on every side, so a face cut by
the border keeps its frame while an absurd box cannot make the crop huge.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

import torch

from imgan.batch import Pipeline, Worker
from imgan.engine import Engine
from imgan.errors import InputError
from imgan.faces import FaceBox, detect_faces
from imgan.io import Picture

if TYPE_CHECKING:
    import numpy as np

__all__ = ["MODEL_SIDE", "CROP_PER_FACE", "age_picture", "crop_box", "feather_mask"]

log = logging.getLogger(__name__)

MODEL_SIDE = 512
"""Side of the square the model sees (Fast-AgingGAN README: 512x512 images with 256x256 faces)."""
CROP_PER_FACE = 2.0
"""Crop side / face box side: a 256 px face in a 512 px crop, as the same README says."""
CENTRE_RAISE = 0.1
"""The crop centre sits this many box sides above the box centre: the box starts at the brows,
so hair needs more room above it than chin and neck below (0.6 box side above, 0.4 below)."""
MASK_RADII = (0.85, 0.9)
"""Horizontal and vertical radii of the mask's outer ellipse, in crop half-sides: it reaches 0
there, 7.5% and 5% of the crop side inside its border."""
MASK_INNER = 0.7
"""Fraction of the outer ellipse where the mask is still 1: holds the oval inscribed in the box."""


def crop_box(face: FaceBox) -> tuple[int, int, int]:
    """(left, top, side) of the square crop, in image pixels (may reach outside the image)."""
    size = max(face.width, face.height)
    side = max(4, round(CROP_PER_FACE * size))
    centre_x, centre_y = face.center
    centre_y -= CENTRE_RAISE * size
    return round(centre_x - side / 2), round(centre_y - side / 2), side


def feather_mask(side: int) -> torch.Tensor:
    """(1,1,side,side) blend weights: 1 over the face, a raised-cosine fall to exactly 0 at the ellipse."""
    return _feather(side, range(side), range(side))[None, None]


def _feather(side: int, rows: range, columns: range) -> torch.Tensor:
    """The ``rows`` x ``columns`` window of ``feather_mask(side)``, made without the rest of it."""

    def coords(pixels: range) -> torch.Tensor:  # pixel centres in (-1,1), exactly antisymmetric
        return (2 * torch.arange(pixels.start, pixels.stop, dtype=torch.float32) + 1 - side) / side

    rx, ry = MASK_RADII
    rho = torch.sqrt((coords(columns)[None, :] / rx) ** 2 + (coords(rows)[:, None] / ry) ** 2)
    ramp = ((rho - MASK_INNER) / (1 - MASK_INNER)).clamp(0.0, 1.0)
    mask = 0.5 * (1 + torch.cos(math.pi * ramp))
    mask[rho >= 1] = 0.0  # exactly 0, whatever cos(pi) rounds to
    return mask


def _resize_weights(in_size: int, out_size: int, outputs: range) -> tuple[torch.Tensor, torch.Tensor]:
    """Taps (index into the input, weight) of a bicubic resize, for the output pixels ``outputs``.

    The weights of ``F.interpolate(mode="bicubic", align_corners=False)``, antialiased (as
    ``antialias=True``) when shrinking; indices may reach outside the input (edge repeated).
    """
    scale = in_size / out_size
    centre = scale * (torch.arange(outputs.start, outputs.stop, dtype=torch.float64) + 0.5)
    if scale > 1:  # antialiased: the cubic (a = -0.5) widened by the scale, normalised
        support = 2.0 * scale
        low = (centre - support + 0.5).trunc().clamp(min=0)
        high = (centre + support + 0.5).trunc().clamp(max=in_size)
        index = low[:, None] + torch.arange(int((high - low).max()), dtype=torch.float64)
        x = ((index - centre[:, None] + 0.5) / scale).abs()
        weight = torch.where(x < 1, (1.5 * x - 2.5) * x * x + 1, ((x - 5) * x + 8) * x * -0.5 + 2)
        weight = torch.where((x < 2) & (index < high[:, None]), weight, 0.0)
        return index.long(), weight / weight.sum(1, keepdim=True)
    source = centre - 0.5  # four taps of the cubic convolution with a = -0.75
    base = source.floor()
    t = (source - base)[:, None] + torch.tensor([1.0, 0.0, -1.0, -2.0], dtype=torch.float64)
    x = t.abs()
    weight = torch.where(x < 1, (1.25 * x - 2.25) * x * x + 1, ((-0.75 * x + 3.75) * x - 6) * x + 3)
    return base.long()[:, None] + torch.arange(-1, 3), weight


def _resize_matrix(in_size: int, out_size: int, outputs: range, *, start: int, window: range) -> torch.Tensor:
    """(len(outputs), len(window)) float32 weights of a resize from a virtual line of ``in_size``.

    Virtual pixel ``v`` is pixel ``start + v`` of an image line, clipped to ``window`` (which the
    matrix's columns index): the line's edge pixels repeat beyond it.
    """
    index, weight = _resize_weights(in_size, out_size, outputs)
    columns = (index.clamp(0, in_size - 1) + start).clamp(window.start, window.stop - 1) - window.start
    matrix = torch.zeros(len(outputs), len(window), dtype=torch.float64)
    matrix.scatter_add_(1, columns, weight)
    return matrix.float()


def _clip_box(face: FaceBox, width: int, height: int) -> FaceBox:
    """The box clipped to the image grown by its own size on every side (at most 3x3 images)."""
    left, top = max(face.x, -width), max(face.y, -height)
    right, bottom = min(face.x + face.width, 2 * width), min(face.y + face.height, 2 * height)
    return dataclasses.replace(face, x=left, y=top, width=right - left, height=bottom - top)


def _age_face(image: torch.Tensor, face: FaceBox, engine: Engine) -> None:
    """Age one face of ``image`` (1,3,H,W) in place (its box must overlap the image).

    What is pasted back is the model's change (output - input, at 512 px) resized to the crop,
    not its output: detail that resizing to 512 and back would blur stays as it was.
    """
    height, width = image.shape[-2:]
    left, top, side = crop_box(_clip_box(face, width, height))
    columns = range(max(left, 0), min(left + side, width))
    rows = range(max(top, 0), min(top + side, height))
    inside = image[0, :, rows.start:rows.stop, columns.start:columns.stop]
    whole = range(MODEL_SIDE)
    shrink_rows = _resize_matrix(side, MODEL_SIDE, whole, start=top, window=rows)
    shrink_columns = _resize_matrix(side, MODEL_SIDE, whole, start=left, window=columns)
    model_in = (shrink_rows @ inside @ shrink_columns.T).clamp_(0.0, 1.0)[None]
    aged = torch.nan_to_num(engine.run(model_in).float(), nan=0.5).clamp_(0.0, 1.0)
    crop_rows = range(rows.start - top, rows.stop - top)
    crop_columns = range(columns.start - left, columns.stop - left)
    grow_rows = _resize_matrix(MODEL_SIDE, side, crop_rows, start=0, window=whole)
    grow_columns = _resize_matrix(MODEL_SIDE, side, crop_columns, start=0, window=whole)
    change = grow_rows @ (aged - model_in)[0] @ grow_columns.T
    mask = _feather(side, crop_rows, crop_columns)
    inside.copy_(torch.where(mask > 0, (inside + mask * change).clamp_(0.0, 1.0), inside))


def _picture_uint8(picture: Picture) -> np.ndarray:
    """HxWx3 uint8 copy of the picture's colour."""
    rgb = picture.rgb[0].detach().to("cpu", torch.float32).clamp(0.0, 1.0)
    return (rgb * 255).round_().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def age_picture(picture: Picture, engine: Engine, *, faces: Sequence[FaceBox] | None = None) -> Picture:
    """Age every face of ``picture`` (``faces`` given, or detected when None); alpha and metadata kept.

    Faces are done one after another, each on the result so far, so overlapping crops compose.
    """
    height, width = picture.rgb.shape[-2:]
    if faces is None:
        faces = detect_faces(_picture_uint8(picture))
        if not faces:
            raise InputError(f"{picture.name}: no face found; give one with --face x,y,w,h")
        log.info("%s: %d face(s): %s", picture.name, len(faces), "; ".join(str(face) for face in faces))
    for face in faces:
        if face.x >= width or face.y >= height or face.x + face.width <= 0 or face.y + face.height <= 0:
            raise InputError(f"{picture.name}: face box {face} lies outside the {width}x{height} image")
    image = picture.rgb.detach().to("cpu", torch.float32, copy=True)
    for face in faces:
        _age_face(image, face, engine)
    return dataclasses.replace(picture, rgb=image.to(picture.rgb.dtype))


def worker(engine: Engine, *, faces: Sequence[FaceBox] | None = None) -> Worker:
    """The batch worker of ``imgan age`` on one engine."""
    return lambda picture, _: age_picture(picture, engine, faces=faces)


def pipeline(model: str, *, faces: Sequence[FaceBox] | None = None) -> Pipeline:
    """What ``imgan age`` runs (the CLI and ``imgan serve`` alike): the faces given, or those detected."""
    return Pipeline("age", model, partial(worker, faces=faces), suffix="aged", tiling=False)
