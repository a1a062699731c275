"""RRDBNet: the ESRGAN / Real-ESRGAN generator.

Papers:
    Wang et al., "ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks",
    ECCV Workshops 2018, arXiv:1809.00219.
    Wang et al., "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic
    Data", ICCV Workshops 2021, arXiv:2107.10833.
Original code: xinntao/BasicSR, ``basicsr/archs/rrdbnet_arch.py`` (Apache-2.0). This file is
    written from the published layer layout, not copied.
Weights: xinntao/Real-ESRGAN releases (RealESRGAN_x4plus, _x2plus, _x4plus_anime_6B;
    BSD-3-Clause), stored under ``params_ema`` (falling back to ``params``).

Key layout (strict): ``conv_first``, ``body.{i}.rdb{1,2,3}.conv{1..5}``, ``conv_body``,
``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last`` (each ``.weight`` and ``.bias``).

Scales 2 and 1 fold pixels into channels with ``pixel_unshuffle`` (by 2 and 4) before
``conv_first`` and then upsample x4 as usual, so their input sides must be multiples of 2 and 4.
Values in and out are [0,1]; the output is not clamped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from imgan.archs._arch import Arch
from imgan.archs._checks import require_positive

# Residual scaling used inside each dense block and around each RRDB (ESRGAN section 3.1).
RESIDUAL_SCALE = 0.2
SUPPORTED_SCALES = (1, 2, 4)
# pixel_unshuffle factor applied before conv_first, per output scale.
_UNSHUFFLE = {1: 4, 2: 2, 4: 1}


def _init_scaled(module: nn.Module, factor: float = 0.1) -> None:
    """Kaiming-normal init shrunk by ``factor``, zero biases (keeps deep residual stacks stable)."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight)
            layer.weight.data.mul_(factor)
            if layer.bias is not None:
                layer.bias.data.zero_()


# --------------------------------------------------------------------------------------------
# Blocks


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs; each sees the input plus every earlier output."""

    def __init__(self, num_features: int = 64, num_grow: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_features, num_grow, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_features + num_grow, num_grow, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_features + 2 * num_grow, num_grow, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_features + 3 * num_grow, num_grow, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_features + 4 * num_grow, num_features, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        _init_scaled(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x + x5 * RESIDUAL_SCALE


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks inside one scaled residual."""

    def __init__(self, num_features: int = 64, num_grow: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_features, num_grow)
        self.rdb2 = ResidualDenseBlock(num_features, num_grow)
        self.rdb3 = ResidualDenseBlock(num_features, num_grow)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.rdb3(self.rdb2(self.rdb1(x))) * RESIDUAL_SCALE


# --------------------------------------------------------------------------------------------
# Model


class RRDBNet(nn.Module):
    """ESRGAN / Real-ESRGAN generator: RRDB trunk, two nearest-x2 + conv upsampling stages."""

    def __init__(
        self,
        *,
        in_channels: int = 3,
        out_channels: int = 3,
        num_features: int = 64,
        num_blocks: int = 23,
        num_grow: int = 32,
        scale: int = 4,
    ) -> None:
        super().__init__()
        if scale not in SUPPORTED_SCALES:
            raise ValueError(f"RRDBNet supports scale 1, 2 or 4, not {scale!r}")
        require_positive("RRDBNet", {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "num_features": num_features,
            "num_blocks": num_blocks,
            "num_grow": num_grow,
        })
        self.scale = scale
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.size_multiple = _UNSHUFFLE[scale]

        unshuffled_channels = in_channels * self.size_multiple**2
        self.conv_first = nn.Conv2d(unshuffled_channels, num_features, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_features, num_grow) for _ in range(num_blocks)))
        self.conv_body = nn.Conv2d(num_features, num_features, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_features, num_features, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_features, num_features, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_features, num_features, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_features, out_channels, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size_multiple > 1:
            x = F.pixel_unshuffle(x, self.size_multiple)
        features = self.conv_first(x)
        features = features + self.conv_body(self.body(features))
        for conv_up in (self.conv_up1, self.conv_up2):
            features = self.lrelu(conv_up(F.interpolate(features, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(features)))


# --------------------------------------------------------------------------------------------
# Checkpoint detection

_REQUIRED = ("conv_first", "conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last")
_LAYOUT_KEY = re.compile(
    r"^(?:(?:conv_first|conv_body|conv_up1|conv_up2|conv_hr|conv_last)"
    r"|body\.\d+\.rdb[123]\.conv[1-5])\.(?:weight|bias)$"
)
_BLOCK_KEY = re.compile(r"^body\.(\d+)\.rdb1\.conv1\.weight$")


def _shape(state_dict: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...] | None:
    value = state_dict.get(key)
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def params_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict | None:
    """Constructor kwargs for an RRDBNet state dict (already unwrapped), or None if it is not one.

    Every key must belong to the RRDBNet layout (so x8 variants with ``conv_up3`` are refused).
    Reads ``num_features`` and the unshuffled input channels from ``conv_first``, ``num_grow``
    from the first dense conv, ``num_blocks`` by counting ``body`` indices, and the scale from
    ``conv_first`` in-channels against ``conv_last`` out-channels (16x: scale 1, 4x: scale 2,
    else scale 4), assuming ``in_channels == out_channels`` for scales 1 and 2.
    """
    if not all(_LAYOUT_KEY.match(key) for key in state_dict):
        return None
    shapes = {name: _shape(state_dict, f"{name}.weight") for name in _REQUIRED}
    if any(shape is None or len(shape) != 4 for shape in shapes.values()):
        return None
    first_conv = _shape(state_dict, "body.0.rdb1.conv1.weight")
    if first_conv is None or len(first_conv) != 4:
        return None
    indices = sorted(int(m.group(1)) for key in state_dict if (m := _BLOCK_KEY.match(key)))
    if indices != list(range(len(indices))):
        return None

    num_features, unshuffled_channels = shapes["conv_first"][:2]
    out_channels = shapes["conv_last"][0]
    if unshuffled_channels == out_channels * 16:
        scale, in_channels = 1, out_channels
    elif unshuffled_channels == out_channels * 4:
        scale, in_channels = 2, out_channels
    else:
        scale, in_channels = 4, unshuffled_channels
    return {
        "in_channels": in_channels,
        "out_channels": out_channels,
        "num_features": num_features,
        "num_blocks": len(indices),
        "num_grow": first_conv[0],
        "scale": scale,
    }


# --------------------------------------------------------------------------------------------
# Declaration


def train_params(*, features: int, blocks: int, scale: int) -> dict[str, Any]:
    """Constructor keywords of an RGB generator trained from scratch (growth: half the features, as
    ESRGAN's 64/32)."""
    return {"in_channels": 3, "out_channels": 3, "num_features": features, "scale": scale,
            "num_blocks": blocks, "num_grow": max(1, features // 2)}


ARCH = Arch(
    name="rrdbnet",
    build=RRDBNet,
    detect=params_from_state_dict,
    task="upscale",
    value_range=(0.0, 1.0),
    tile_overlap=32,
    tiny_params={"num_features": 8, "num_blocks": 1, "num_grow": 4, "scale": 1},
    train_scales=(2, 4),
    train_params=train_params,
)
