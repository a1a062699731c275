"""The README's text2img figure: one row per caption, the caption on the left, pictures of seeds 0..N-1.

Usage: python recipes/text2img_digits/figure.py [--model imgan-text2img] [--out docs/text2img.png]
Each picture is exactly what `imgan text2img CAPTION --seed 0 --n N` writes (32 px), enlarged 3x
(nearest neighbour) for the page.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from imgan.io import Picture, text_strip, write_picture
from imgan.tasks import text2img

CAPTIONS = (
    "a handwritten 3 in yellow on black",
    "the digit seven",
    "a red 7 on white",
    "number 0 in cyan on grey",
    "a green handwritten two",
    "a blue sneaker",
    "a pink dress on black",
    "an orange bag on white",
    "purple trousers on grey",
    "a yellow ankle boot on black",
)
ENLARGE = 3
CAPTION_WIDTH = 300


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=text2img.DEFAULT_MODEL)
    parser.add_argument("--out", default="docs/text2img.png")
    parser.add_argument("--n", type=int, default=6)
    args = parser.parse_args()
    model = text2img.load_text_model(args.model)
    rows = []
    for caption in CAPTIONS:
        encoded = model.vocabulary.encode(caption) if model.vocabulary is not None else None
        images = text2img.generate(model, encoded, list(range(args.n)), truncation=model.truncation,
                                   device=torch.device("cpu"), dtype=torch.float32)
        images = F.interpolate(images, scale_factor=ENLARGE, mode="nearest")
        side = images.shape[-1]
        label = text_strip(caption, width=CAPTION_WIDTH, font_size=15)[..., :side, :]
        label = F.pad(label, (0, 0, 0, side - label.shape[-2]), value=1.0)
        gap = torch.ones(1, 3, side, 4)
        rows.append(torch.cat([label, *[torch.cat([gap, image[None]], dim=-1) for image in images]], dim=-1))
    sheet = torch.cat([torch.cat([row, torch.ones(1, 3, 4, row.shape[-1])], dim=-2) for row in rows], dim=-2)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_picture(Picture(rgb=sheet, alpha=None, bit_depth=8, grayscale=False, icc_profile=None, exif=None,
                          source_format="png", name=args.out), args.out)
    print(args.out)


if __name__ == "__main__":
    main()
