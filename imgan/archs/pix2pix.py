"""pix2pix's U-Net generator (``--netG unet_256 --norm batch``).

Paper: Isola et al., "Image-to-Image Translation with Conditional Adversarial Networks",
    CVPR 2017, arXiv:1611.07004; the U-Net follows Ronneberger et al., MICCAI 2015,
    arXiv:1505.04597.
Original code: junyanz/pytorch-CycleGAN-and-pix2pix, ``models/networks.py`` classes
    ``UnetGenerator`` / ``UnetSkipConnectionBlock`` (BSD, "Copyright (c) 2017, Jun-Yan Zhu and
    Taesung Park"). This file is written from the published key layout, not copied.
Weights: the same project's pretrained pix2pix generators (``edges2shoes``, ``sat2map``,
    ``facades_label2photo``, ...; BSD), plain state dicts; files saved before torch 0.4.1 lack
    ``num_batches_tracked`` (``add_batchnorm_counters`` adds it).

Key layout (strict): nested skip blocks, each an ``nn.Sequential`` named ``model``. Outermost
(``model.model``): ``0`` conv4 s2 (no bias), ``1`` the next block, ``2`` ReLU, ``3`` ConvTranspose
(bias), ``4`` Tanh. Middle blocks (``...model.1.model`` then ``.model.3.model`` nesting):
``0`` LeakyReLU(0.2), ``1`` conv (no bias), ``2`` BatchNorm, ``3`` the next block, ``4`` ReLU,
``5`` ConvTranspose (no bias), ``6`` BatchNorm, ``7`` Dropout(0.5) in the ``num_downs - 5``
512-channel blocks. Innermost: ``0`` LeakyReLU, ``1`` conv, ``2`` ReLU, ``3`` ConvTranspose,
``4`` BatchNorm. Every block but the outermost concatenates its input with its output, so H and
W must be multiples of ``2**num_downs``, and the network is not tiled (the bottleneck sees the
whole input). Values in and out are [-1,1] (tanh output).

Upstream tests without ``model.eval()``: BatchNorm normalises each image by its own statistics
and dropout stays active; ``set_batchnorm_mode`` switches between that and running statistics.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from imgan.archs._arch import Arch
from imgan.archs._checks import require_positive
from imgan.archs.cyclegan import matches_layout

# --------------------------------------------------------------------------------------------
# Blocks


class PerImageBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that can normalise each image by its own statistics (``per_image = True``).

    Per-image mode equals upstream's train-mode BatchNorm on a batch of one, for any batch size,
    and never reads or updates the running statistics. Keys are those of ``nn.BatchNorm2d``.
    """

    per_image: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.per_image:
            return super().forward(x)
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


class UnetSkipBlock(nn.Module):
    """One U-Net level: down conv, the inner levels, up conv; concatenated with its input."""

    def __init__(
        self,
        outer_channels: int,
        inner_channels: int,
        *,
        in_channels: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        dropout: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        in_channels = outer_channels if in_channels is None else in_channels
        down = nn.Conv2d(in_channels, inner_channels, 4, stride=2, padding=1, bias=False)
        if outermost:
            up = nn.ConvTranspose2d(inner_channels * 2, outer_channels, 4, stride=2, padding=1)
            layers = [down, submodule, nn.ReLU(inplace=True), up, nn.Tanh()]
        elif submodule is None:  # innermost
            up = nn.ConvTranspose2d(
                inner_channels, outer_channels, 4, stride=2, padding=1, bias=False
            )
            layers = [
                nn.LeakyReLU(0.2, inplace=True),
                down,
                nn.ReLU(inplace=True),
                up,
                PerImageBatchNorm2d(outer_channels),
            ]
        else:
            up = nn.ConvTranspose2d(
                inner_channels * 2, outer_channels, 4, stride=2, padding=1, bias=False
            )
            layers = [
                nn.LeakyReLU(0.2, inplace=True),
                down,
                PerImageBatchNorm2d(inner_channels),
                submodule,
                nn.ReLU(inplace=True),
                up,
                PerImageBatchNorm2d(outer_channels),
            ]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


# --------------------------------------------------------------------------------------------
# Model


class UnetGenerator(nn.Module):
    """pix2pix generator: [-1,1] image in, translated [-1,1] image of the same size out."""

    def __init__(
        self,
        *,
        in_channels: int = 3,
        out_channels: int = 3,
        num_features: int = 64,
        num_downs: int = 8,
        dropout: bool = True,
    ) -> None:
        super().__init__()
        require_positive("UnetGenerator", {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "num_features": num_features,
        })
        if not isinstance(num_downs, int) or num_downs < 5:
            raise ValueError(f"UnetGenerator num_downs must be an integer >= 5, not {num_downs!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.scale = 1
        self.size_multiple = 2**num_downs

        widest = num_features * 8
        block = UnetSkipBlock(widest, widest)
        for _ in range(num_downs - 5):
            block = UnetSkipBlock(widest, widest, submodule=block, dropout=dropout)
        for factor in (4, 2, 1):
            block = UnetSkipBlock(num_features * factor, num_features * factor * 2, submodule=block)
        self.model = UnetSkipBlock(
            out_channels, num_features, in_channels=in_channels, submodule=block, outermost=True
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def set_batchnorm_mode(module: nn.Module, *, per_image: bool) -> None:
    """Make the BatchNorm layers use each image's own statistics, or the running statistics.

    ``per_image=True`` reproduces upstream's test behaviour (train-mode BatchNorm, batch of one)
    for any batch size; ``per_image=False`` puts BatchNorm layers in eval mode. Dropout and
    other layers keep their current train/eval mode.
    """
    for layer in module.modules():
        if isinstance(layer, PerImageBatchNorm2d):
            layer.per_image = per_image
        if not per_image and isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.eval()


# --------------------------------------------------------------------------------------------
# Checkpoint remap


def add_batchnorm_counters(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A copy with BatchNorm's ``num_batches_tracked`` added as 0 where files from before torch
    0.4.1 lack it (the value that makes no difference at inference), so strict loading still
    checks every other key."""
    upgraded = dict(state_dict)
    for key in state_dict:
        prefix, _, leaf = key.rpartition(".")
        if leaf == "running_var" and f"{prefix}.num_batches_tracked" not in state_dict:
            upgraded[f"{prefix}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    return upgraded


# --------------------------------------------------------------------------------------------
# Checkpoint detection

_KEY = re.compile(r"^model\.model\.(?:(?:1|3)\.model\.)*\d+\.[a-z_]+$")


def params_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict | None:
    """Constructor kwargs for a pix2pix UnetGenerator state dict (already unwrapped), or None.

    ``num_features`` and ``in_channels`` come from the outermost down conv, ``out_channels``
    from the outermost up conv, ``num_downs`` from the deepest nesting; then every key and shape
    must match that generator exactly (``num_batches_tracked`` may be missing). Dropout leaves
    no tensors, so the constructor default (on, as in the published unet_256 models) applies.
    """
    if not state_dict or not all(_KEY.match(key) for key in state_dict):
        return None
    first = state_dict.get("model.model.0.weight")
    last = state_dict.get("model.model.3.weight")
    if not isinstance(first, torch.Tensor) or not isinstance(last, torch.Tensor):
        return None
    if first.dim() != 4 or last.dim() != 4:
        return None
    num_downs = max(key.split(".").count("model") for key in state_dict) - 1
    params = {
        "in_channels": first.shape[1],
        "out_channels": last.shape[1],
        "num_features": first.shape[0],
        "num_downs": num_downs,
    }
    if not matches_layout(state_dict, lambda: UnetGenerator(**params)):
        return None
    return params


# --------------------------------------------------------------------------------------------
# Declaration

ARCH = Arch(
    name="pix2pix",
    build=UnetGenerator,
    detect=params_from_state_dict,
    task="sketch2photo",
    value_range=(-1.0, 1.0),
    tile_overlap=16,  # unused: not tileable
    tiny_params={"num_features": 4, "num_downs": 5},
    # The bottleneck sees the whole 2**num_downs input: tiles would change the result.
    tileable=False,
    remap=add_batchnorm_counters,
    normalisation="selectable",
    set_per_image_norm=set_batchnorm_mode,
)
