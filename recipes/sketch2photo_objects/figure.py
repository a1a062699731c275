"""Draw a few sketches by code and show what a sketch2photo model makes of them (the README figure).

The sketches are drawn here (no third-party image is involved), so the figure can be committed.

Usage: python recipes/sketch2photo_objects/figure.py OUT.png [--model NAME_OR_FILE]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from PIL import Image, ImageDraw

SIZE = 256
WIDTH = 2


def pear(draw: ImageDraw.ImageDraw) -> None:
    draw.ellipse((70, 100, 190, 230), outline=0, width=WIDTH)
    draw.ellipse((95, 45, 165, 125), outline=0, width=WIDTH)
    draw.line((130, 45, 140, 20), fill=0, width=WIDTH)


def cup(draw: ImageDraw.ImageDraw) -> None:
    draw.ellipse((60, 60, 180, 90), outline=0, width=WIDTH)
    draw.line((60, 75, 75, 200), fill=0, width=WIDTH)
    draw.line((180, 75, 165, 200), fill=0, width=WIDTH)
    draw.arc((75, 185, 165, 215), 0, 180, fill=0, width=WIDTH)
    draw.arc((160, 95, 215, 170), 270, 90, fill=0, width=WIDTH)


def fish(draw: ImageDraw.ImageDraw) -> None:
    draw.ellipse((40, 80, 190, 180), outline=0, width=WIDTH)
    draw.polygon([(185, 130), (235, 85), (235, 175)], outline=0, width=WIDTH)
    draw.ellipse((70, 112, 86, 128), outline=0, width=WIDTH)
    draw.arc((90, 85, 150, 175), 300, 60, fill=0, width=WIDTH)


def flower(draw: ImageDraw.ImageDraw) -> None:
    for petal in range(8):
        angle = petal * math.pi / 4
        x, y = 128 + 62 * math.cos(angle), 110 + 62 * math.sin(angle)
        draw.ellipse((x - 32, y - 32, x + 32, y + 32), outline=0, width=WIDTH)
    draw.ellipse((98, 80, 158, 140), fill=255, outline=0, width=WIDTH)
    draw.line((128, 175, 128, 250), fill=0, width=WIDTH)


def boot(draw: ImageDraw.ImageDraw) -> None:
    draw.line([(90, 30), (150, 30), (155, 150), (225, 185), (230, 215), (60, 215), (65, 150), (90, 30)],
              fill=0, width=WIDTH, joint="curve")
    draw.line((60, 200, 230, 200), fill=0, width=WIDTH)
    for y in range(60, 150, 22):
        draw.line((120, y, 150, y + 6), fill=0, width=WIDTH)


DRAWINGS = (pear, cup, fish, flower, boot)


def sketch(drawing) -> Image.Image:  # noqa: ANN001 - one of DRAWINGS
    image = Image.new("L", (SIZE, SIZE), 255)
    drawing(ImageDraw.Draw(image))
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--model", default="imgan-sketch2photo")
    args = parser.parse_args()

    from imgan.archs.pix2pix import set_batchnorm_mode
    from imgan.engine import Engine
    from imgan.io import Picture
    from imgan.models import load_model
    from imgan.tasks.sketch2photo import sketch2photo_picture

    descriptor = load_model(args.model, task="sketch2photo")
    set_batchnorm_mode(descriptor.module, per_image=True)
    engine = Engine(descriptor, torch.device("cpu"))
    columns = []
    for drawing in DRAWINGS:
        drawn = np.asarray(sketch(drawing).convert("RGB"))
        rgb = torch.from_numpy(drawn.copy()).permute(2, 0, 1)[None].float() / 255
        picture = Picture(rgb=rgb, alpha=None, bit_depth=8, grayscale=False, icc_profile=None, exif=None,
                          source_format="png", name=drawing.__name__)
        photo, _ = sketch2photo_picture(picture, engine)
        made = (photo.rgb[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        columns.append(np.concatenate([drawn, made], axis=0))
    Image.fromarray(np.concatenate(columns, axis=1)).save(args.out, optimize=True)
    print(args.out)


if __name__ == "__main__":
    main()
