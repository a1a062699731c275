"""SRResNet: the SRGAN generator, in BasicSR's "MSRResNet" form.

Paper: Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative
    Adversarial Network", CVPR 2017, arXiv:1609.04802 (SRResNet / SRGAN generator).
Original code: xinntao/BasicSR, ``basicsr/archs/srresnet_arch.py`` class ``MSRResNet``
    (Apache-2.0). This file is written from the published layer layout, not copied.
Weights: BasicSR's model zoo publishes MSRResNet x2/x3/x4 weights in this layout (Apache-2.0
    repository; check a weight file's own terms before listing it in pretrained.toml).

This is the *modified* SRResNet that BasicSR (and the ESRGAN paper) use, not the paper's
original: residual blocks are conv-ReLU-conv **without BatchNorm**, the activation is
LeakyReLU(0.1) instead of PReLU, there is an extra ``conv_hr`` before ``conv_last``, and the
bilinearly upsampled input is added to the output (the net learns the residual). The SRGAN
paper's BatchNorm variant is not supported.

Key layout (strict): ``conv_first``, ``body.{i}.conv1`` / ``body.{i}.conv2``, ``upconv1`` (x2:
features*4 then PixelShuffle(2); x3: features*9 then PixelShuffle(3); x4: features*4, plus
``upconv2`` likewise, each followed by PixelShuffle(2)), ``conv_hr``, ``conv_last``.
Values in and out are [0,1]; the output is not clamped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from imgan.archs._arch import Arch
from imgan.archs._checks import require_positive

SUPPORTED_SCALES = (2, 3, 4)


def _init_scaled(module: nn.Module, factor: float = 0.1) -> None:
    """Kaiming-normal init shrunk by ``factor``, zero biases (keeps the residual stack stable)."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight)
            layer.weight.data.mul_(factor)
            if layer.bias is not None:
                layer.bias.data.zero_()


# --------------------------------------------------------------------------------------------
# Blocks


class ResidualBlock(nn.Module):
    """conv3x3 - ReLU - conv3x3 with an identity skip; no BatchNorm."""

    def __init__(self, num_features: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_features, num_features, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_features, num_features, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x)))


# --------------------------------------------------------------------------------------------
# Model


class SRResNet(nn.Module):
    """Residual trunk in LR space, sub-pixel upsampling, plus a bilinear-upsampled skip."""

    def __init__(
        self,
        *,
        in_channels: int = 3,
        out_channels: int = 3,
        num_features: int = 64,
        num_blocks: int = 16,
        scale: int = 4,
    ) -> None:
        super().__init__()
        if scale not in SUPPORTED_SCALES:
            raise ValueError(f"SRResNet supports scale 2, 3 or 4, not {scale!r}")
        require_positive("SRResNet", {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "num_features": num_features,
            "num_blocks": num_blocks,
        })
        if in_channels != out_channels:
            raise ValueError(
                "SRResNet adds the upsampled input to its output, so in_channels must equal "
                f"out_channels (got {in_channels} and {out_channels})"
            )
        self.scale = scale
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.size_multiple = 1

        self.conv_first = nn.Conv2d(in_channels, num_features, 3, 1, 1)
        self.body = nn.Sequential(*(ResidualBlock(num_features) for _ in range(num_blocks)))
        step = 2 if scale == 4 else scale
        self.upconv1 = nn.Conv2d(num_features, num_features * step * step, 3, 1, 1)
        if scale == 4:
            self.upconv2 = nn.Conv2d(num_features, num_features * step * step, 3, 1, 1)
        self.pixel_shuffle = nn.PixelShuffle(step)
        self.conv_hr = nn.Conv2d(num_features, num_features, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_features, out_channels, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)
        _init_scaled(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.body(self.lrelu(self.conv_first(x)))
        features = self.lrelu(self.pixel_shuffle(self.upconv1(features)))
        if self.scale == 4:
            features = self.lrelu(self.pixel_shuffle(self.upconv2(features)))
        out = self.conv_last(self.lrelu(self.conv_hr(features)))
        skip = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return out + skip


# --------------------------------------------------------------------------------------------
# Checkpoint detection

_LAYOUT_KEY = re.compile(
    r"^(?:(?:conv_first|upconv1|upconv2|conv_hr|conv_last)|body\.\d+\.conv[12])\.(?:weight|bias)$"
)
_BLOCK_KEY = re.compile(r"^body\.(\d+)\.conv1\.weight$")


def _shape(state_dict: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...] | None:
    value = state_dict.get(key)
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def params_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict | None:
    """Constructor kwargs for an MSRResNet-layout state dict (already unwrapped), or None.

    Every key must belong to the MSRResNet layout (a BatchNorm SRResNet has other keys).
    ``num_features`` and ``in_channels`` come from ``conv_first``, ``num_blocks`` from counting
    ``body`` indices, the scale from the upconv layers: ``upconv2`` present means x4, otherwise
    ``upconv1`` out-channels = features * scale^2 (x2 or x3).
    """
    if not all(_LAYOUT_KEY.match(key) for key in state_dict):
        return None
    names = ("conv_first", "upconv1", "conv_hr", "conv_last", "body.0.conv1", "body.0.conv2")
    shapes = {name: _shape(state_dict, f"{name}.weight") for name in names}
    if any(shape is None or len(shape) != 4 for shape in shapes.values()):
        return None
    indices = sorted(int(m.group(1)) for key in state_dict if (m := _BLOCK_KEY.match(key)))
    if indices != list(range(len(indices))):
        return None

    num_features, in_channels = shapes["conv_first"][:2]
    ratio, remainder = divmod(shapes["upconv1"][0], num_features)
    if remainder:
        return None
    if "upconv2.weight" in state_dict:
        scale = 4 if ratio == 4 else None
    else:
        step = math.isqrt(ratio)
        scale = step if step * step == ratio and step in (2, 3) else None
    if scale is None:
        return None
    return {
        "in_channels": in_channels,
        "out_channels": shapes["conv_last"][0],
        "num_features": num_features,
        "num_blocks": len(indices),
        "scale": scale,
    }


# --------------------------------------------------------------------------------------------
# Declaration


def train_params(*, features: int, blocks: int, scale: int) -> dict[str, Any]:
    """Constructor keywords of an RGB generator trained from scratch."""
    return {"in_channels": 3, "out_channels": 3, "num_features": features, "scale": scale,
            "num_blocks": blocks}


ARCH = Arch(
    name="srresnet",
    build=SRResNet,
    detect=params_from_state_dict,
    task="upscale",
    value_range=(0.0, 1.0),
    tile_overlap=32,
    tiny_params={"num_features": 8, "num_blocks": 1, "scale": 3},
    train_scales=(2, 3, 4),
    train_params=train_params,
)
