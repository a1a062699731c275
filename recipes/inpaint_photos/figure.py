"""Draw docs/inpaint.png: before, mask, Telea, imgan-inpaint and the original, for public-domain photos.

The photos ship with scikit-image (astronaut: NASA, public domain; coffee: CC0; rocket: NASA,
public domain); the holes are drawn by ``imgan.masks.random_hole`` with fixed seeds, so the figure
is the same on every machine and holds no third-party image of unclear licence. "Before" shows the
hole in white, as a user would see the mask painted over the photo.

Usage: python recipes/inpaint_photos/figure.py [OUT.png] [--model imgan-inpaint]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

PHOTOS = (("astronaut", (30, 130, 350, 350), 3), ("coffee", (100, 20, 350, 350), 11),
          ("rocket", (140, 40, 300, 300), 5))
"""(scikit-image photo, crop (left, top, width, height), seed of its hole)."""
SIDE = 256
LABELS = ("before", "mask", "Telea (OpenCV)", "{model}", "original")


def picture(rgb: torch.Tensor):  # noqa: ANN201 - Picture
    from imgan.io import Picture

    return Picture(rgb=rgb, alpha=None, bit_depth=8, grayscale=False, icc_profile=None, exif=None,
                   source_format="png", name="figure")


def tiles(name: str, box: tuple[int, int, int, int], seed: int, model: str) -> list[np.ndarray]:
    """The five pictures of one row, as HxWx3 uint8."""
    from skimage import data

    from imgan.engine import Engine
    from imgan.masks import random_hole
    from imgan.models import load_model
    from imgan.tasks.inpaint import inpaint_picture

    left, top, width, height = box
    photo = Image.fromarray(getattr(data, name)()[top : top + height, left : left + width]).resize((SIDE, SIDE),
                                                                                               Image.LANCZOS)
    rgb = torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1)[None].float() / 255
    hole = random_hole(SIDE, SIDE, generator=torch.Generator().manual_seed(seed), coverage=(0.12, 0.2))
    fills = []
    for name_ in ("telea", model):
        engine = Engine(load_model(name_, task="inpaint"), torch.device("cpu"), tile_size=0)
        fills.append(inpaint_picture(picture(rgb.clone()), hole, engine).rgb)
    mask = hole.float().expand(-1, 3, -1, -1)
    before = rgb * (1 - mask) + mask
    return [(image[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
            for image in (before, mask, *fills, rgb)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", default="docs/inpaint.png")
    parser.add_argument("--model", default="imgan-inpaint")
    args = parser.parse_args()
    gap, label_height = 4, 18
    rows = [tiles(name, box, seed, args.model) for name, box, seed in PHOTOS]
    width = len(LABELS) * SIDE + (len(LABELS) - 1) * gap
    height = label_height + len(rows) * SIDE + (len(rows) - 1) * gap
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    for column, label in enumerate(LABELS):
        draw.text((column * (SIDE + gap) + 4, 3), label.format(model=args.model), fill="black")
    for row, images in enumerate(rows):
        for column, image in enumerate(images):
            sheet.paste(Image.fromarray(image), (column * (SIDE + gap), label_height + row * (SIDE + gap)))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(args.out)


if __name__ == "__main__":
    main()
