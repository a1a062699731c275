"""A small CNN that tells the glyphs of imgan's text2img default apart: 20 classes, 8 colours, 3 backgrounds.

imgan's own network (BSD-3-Clause), trained by ``recipes/text2img_digits/evaluate.py`` on held-out
real data (MNIST digits and Fashion-MNIST items, coloured as in training, never seen by the GAN).
It measures the text2img default (class and colour accuracy), and its 128 penultimate features
serve ``imgan eval --features imgan-text2img-classifier`` as an FID/KID feature space for such
images, in place of Inception-v3 (which was trained on 299 px photos, not 32 px glyphs).

Key layout: ``body.{0,2,5,7,10}`` 3x3 convs (ReLU after each, 2x2 max pools after the 2nd, 4th
and 5th), ``embed`` (the flattened 4x4 map -> ``feature_size``, ReLU), and three heads ``classes``,
``foreground``, ``background``. Input: (B,3,32,32) in [0,1]; other sizes are resized to 32 (bilinear, antialiased).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GlyphClassifier"]


class GlyphClassifier(nn.Module):
    """``features`` (B, feature_size) and ``forward`` -> (class, foreground, background) logits."""

    def __init__(self, *, num_classes: int = 20, num_colours: int = 8, num_backgrounds: int = 3,
                 num_features: int = 16, feature_size: int = 128, image_size: int = 32) -> None:
        super().__init__()
        width = num_features
        self.image_size = image_size
        self.feature_size = feature_size
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        self.embed = nn.Linear(4 * width * (image_size // 8) ** 2, feature_size)
        self.classes = nn.Linear(feature_size, num_classes)
        self.foreground = nn.Linear(feature_size, num_colours)
        self.background = nn.Linear(feature_size, num_backgrounds)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (self.image_size, self.image_size):
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear",
                                   align_corners=False, antialias=True)
        return F.relu(self.embed(self.body(images).flatten(1)))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = self.features(images)
        return self.classes(features), self.foreground(features), self.background(features)
