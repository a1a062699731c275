"""Face aging of one picture: find the faces, age each in a model-sized crop, paste it back feathered.

Fast-AgingGAN's generator was trained on face crops; upstream says "as long as the image of
spatial dims 512x512 contains a face of size 256x256, this will work fine". So each face gets a
square crop twice the size of its box (the cascade's box spans about brows to chin and ear to
ear, the "face"), raised a little so hair and chin both fit, resized to 512x512, run through
the model, resized back and blended in with a raised-cosine elliptical mask that is 1 over the
face and 0 well inside the crop's border. Pixels outside every crop are never written.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from imgan.batch import Worker
from imgan.engine import Engine, resize_to
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
    # Pixel centres in (-1,1), exactly antisymmetric so the mask is exactly symmetric.
    coords = (2 * torch.arange(side, dtype=torch.float32) + 1 - side) / side
    rx, ry = MASK_RADII
    rho = torch.sqrt((coords[None, :] / rx) ** 2 + (coords[:, None] / ry) ** 2)
    ramp = ((rho - MASK_INNER) / (1 - MASK_INNER)).clamp(0.0, 1.0)
    mask = 0.5 * (1 + torch.cos(math.pi * ramp))
    mask[rho >= 1] = 0.0  # exactly 0, whatever cos(pi) rounds to
    return mask[None, None]


def _extract(image: torch.Tensor, left: int, top: int, side: int) -> torch.Tensor:
    """The (1,C,side,side) square at (left, top), edge pixels repeated where it leaves the image."""
    height, width = image.shape[-2:]
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + side, width), min(top + side, height)
    inside = image[..., y0:y1, x0:x1]
    pads = (x0 - left, left + side - x1, y0 - top, top + side - y1)
    return F.pad(inside, pads, mode="replicate") if any(pads) else inside.clone()


def _age_face(image: torch.Tensor, face: FaceBox, engine: Engine) -> None:
    """Age one face of ``image`` (1,3,H,W) in place.

    What is pasted back is the model's change (output - input, at 512 px) resized to the crop,
    not its output: detail that resizing to 512 and back would blur stays as it was.
    """
    height, width = image.shape[-2:]
    left, top, side = crop_box(face)
    crop = _extract(image, left, top, side)
    model_in = resize_to(crop, MODEL_SIDE, MODEL_SIDE)
    aged = torch.nan_to_num(engine.run(model_in).float(), nan=0.5).clamp_(0.0, 1.0)
    change = F.interpolate(aged - model_in, size=(side, side), mode="bicubic", align_corners=False,
                           antialias=side < MODEL_SIDE)
    mask = feather_mask(side)
    blended = torch.where(mask > 0, (crop + mask * change).clamp_(0.0, 1.0), crop)
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + side, width), min(top + side, height)
    image[..., y0:y1, x0:x1] = blended[..., y0 - top:y1 - top, x0 - left:x1 - left]


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
