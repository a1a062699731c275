"""SRVGGNetCompact: Real-ESRGAN's small plain-conv upscaler.

Paper: Wang et al., "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic
    Data", ICCV Workshops 2021, arXiv:2107.10833 (training recipe; the compact network itself
    was published later with the code, v0.2.5.0).
Original code: xinntao/Real-ESRGAN, ``realesrgan/archs/srvgg_arch.py`` (BSD-3-Clause). This file
    is written from the published layer layout, not copied.
Weights: xinntao/Real-ESRGAN releases (realesr-animevideov3: 16 convs; realesr-general-x4v3 and
    its -wdn companion: 32 convs; BSD-3-Clause), stored under ``params``.

Key layout (strict): ``body`` is a flat ModuleList — conv(in -> features), activation, then
``num_conv`` x (conv features -> features, activation), then conv(features -> out * scale^2).
Convs sit at even indices (``body.{2k}.weight/bias``); a PReLU activation has one weight per
feature at the odd indices (``body.{2k+1}.weight``), ReLU / LeakyReLU have none. The convs'
output is pixel-shuffled and added to the nearest-upsampled input, so any H, W work.
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

ACTIVATIONS = ("prelu", "relu", "lrelu")


# --------------------------------------------------------------------------------------------
# Blocks


def make_activation(act: str, num_features: int) -> nn.Module:
    """The activation after every conv but the last: PReLU (per channel), ReLU or LeakyReLU(0.1)."""
    if act == "prelu":
        return nn.PReLU(num_parameters=num_features)
    if act == "relu":
        return nn.ReLU(inplace=True)
    if act == "lrelu":
        return nn.LeakyReLU(negative_slope=0.1, inplace=True)
    raise ValueError(f"SRVGGNetCompact act must be one of {', '.join(ACTIVATIONS)}, not {act!r}")


# --------------------------------------------------------------------------------------------
# Model


class SRVGGNetCompact(nn.Module):
    """A plain stack of 3x3 convs in LR space, pixel shuffle, plus a nearest-upsampled skip."""

    def __init__(
        self,
        *,
        in_channels: int = 3,
        out_channels: int = 3,
        num_features: int = 64,
        num_conv: int = 16,
        scale: int = 4,
        act: str = "prelu",
    ) -> None:
        super().__init__()
        require_positive("SRVGGNetCompact", {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "num_features": num_features,
            "scale": scale,
        })
        if not isinstance(num_conv, int) or num_conv < 0:
            raise ValueError(
                f"SRVGGNetCompact num_conv must be a non-negative integer, not {num_conv!r}"
            )
        if in_channels != out_channels:
            raise ValueError(
                "SRVGGNetCompact adds the upsampled input to its output, so in_channels must equal "
                f"out_channels (got {in_channels} and {out_channels})"
            )
        self.scale = scale
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.size_multiple = 1

        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, num_features, 3, 1, 1),
            make_activation(act, num_features),
        ]
        for _ in range(num_conv):
            layers.append(nn.Conv2d(num_features, num_features, 3, 1, 1))
            layers.append(make_activation(act, num_features))
        layers.append(nn.Conv2d(num_features, out_channels * scale * scale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        return out + F.interpolate(x, scale_factor=self.scale, mode="nearest")


# --------------------------------------------------------------------------------------------
# Checkpoint detection

_BODY_KEY = re.compile(r"^body\.(\d+)\.(weight|bias)$")


def params_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict | None:
    """Constructor kwargs for an SRVGGNetCompact state dict (already unwrapped), or None.

    Every key must be ``body.{i}.weight`` or ``.bias``. ``num_features`` and ``in_channels`` come
    from ``body.0``, ``num_conv`` from the index of the last conv, and ``scale`` from that conv's
    out-channels (``out_channels * scale^2``, with ``out_channels == in_channels``). Only PReLU
    checkpoints can be recognised: ReLU / LeakyReLU leave no tensors to tell them apart, so
    such a checkpoint needs its params given explicitly.
    """
    indices: set[int] = set()
    for key, value in state_dict.items():
        match = _BODY_KEY.match(key)
        if match is None or not isinstance(value, torch.Tensor):
            return None
        indices.add(int(match.group(1)))
    if not indices:
        return None
    last = max(indices)
    first = state_dict.get("body.0.weight")
    final = state_dict.get(f"body.{last}.weight")
    first_shape = tuple(first.shape) if first is not None else ()
    last_shape = tuple(final.shape) if final is not None else ()
    if len(first_shape) != 4 or len(last_shape) != 4 or last % 2 or last < 2:
        return None
    if "body.1.weight" not in state_dict:
        return None  # not PReLU: activation cannot be read from the weights

    num_features, in_channels = first_shape[:2]
    scale = math.isqrt(last_shape[0] // in_channels)
    if scale < 1 or in_channels * scale * scale != last_shape[0]:
        return None
    return {
        "in_channels": in_channels,
        "out_channels": in_channels,
        "num_features": num_features,
        "num_conv": last // 2 - 1,
        "scale": scale,
        "act": "prelu",
    }


# --------------------------------------------------------------------------------------------
# Declaration


def train_params(*, features: int, blocks: int, scale: int) -> dict[str, Any]:
    """Constructor keywords of an RGB generator trained from scratch (``blocks`` hidden convs)."""
    return {"in_channels": 3, "out_channels": 3, "num_features": features, "scale": scale,
            "num_conv": blocks, "act": "prelu"}


ARCH = Arch(
    name="srvgg",
    build=SRVGGNetCompact,
    detect=params_from_state_dict,
    task="upscale",
    value_range=(0.0, 1.0),
    # realesr-animevideov3 tiled at 64 px stays within 0.25/255 of the whole-image pass with
    # overlap 32 (16: 2.5/255).
    tile_overlap=32,
    tiny_params={"num_features": 8, "num_conv": 1, "scale": 2},
    train_scales=(2, 3, 4),
    train_params=train_params,
)
