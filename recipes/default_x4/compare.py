"""Before/after picture for the default upscaler: bicubic | model(s) | original, on one crop.

Usage: python recipes/default_x4/compare.py PHOTO OUT.png [MODEL ...]
(default model: imgan-sr-x4). The photo goes through the evaluation protocol (box-downscale
to at most 1536 px, centre 512 crop, Pillow-bicubic x4 down), then a 128 px window of the
x4 results is shown side by side, enlarged 2x with nearest neighbour so pixels stay visible.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

from imgan.engine import Engine
from imgan.io import Picture, read_picture, write_picture
from imgan.models import load_model
from imgan.tasks.evaluate import bicubic_upscale, protocol_pair


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    photo, target, models = sys.argv[1], sys.argv[2], sys.argv[3:] or ["imgan-sr-x4"]
    hr, lr = protocol_pair(read_picture(photo).rgb, scale=4)
    panels = [bicubic_upscale(lr, 4)]
    for model in models:
        engine = Engine(load_model(model, task="upscale"), torch.device("cpu"))
        panels.append(engine.run(lr).clamp(0, 1))
    panels.append(hr)
    top, left = (hr.shape[-2] - 128) // 2, (hr.shape[-1] - 128) // 2
    crops = [F.interpolate(p[..., top : top + 128, left : left + 128], scale_factor=2, mode="nearest")
             for p in panels]
    gap = torch.ones(1, 3, 256, 8)
    strip = torch.cat([part for crop in crops for part in (crop, gap)][:-1], dim=-1)
    write_picture(Picture(rgb=strip, alpha=None, bit_depth=8, grayscale=False, icc_profile=None, exif=None,
                          source_format="png", name=target), target)
    print(f"{target}: bicubic | {' | '.join(models)} | original")


if __name__ == "__main__":
    main()
