"""What the tiler and the CLI need to know about a loaded network, so no code special-cases a model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class ModelDescriptor:
    """A ready network plus the facts that decide how images are fed to it.

    ``imgan.models`` fills it from the family's ``Arch`` declaration (task, value range, tiling)
    and the built module (scale, channels, size multiple); the engine reads only this.

    Calling the descriptor takes and returns float tensors (B,C,H,W) in [0,1], whatever range
    the network itself works in; H and W must already be multiples of ``size_multiple`` and at
    least ``min_side``.
    """

    module: nn.Module
    name: str
    arch: str
    task: str
    scale: int
    in_channels: int = 3
    out_channels: int = 3
    size_multiple: int = 1
    value_range: tuple[float, float] = (0.0, 1.0)
    tileable: bool = True
    tile_overlap: int = 16
    supports_half: bool = True
    working_size: int = 0  # longest side the network is meant to see; 0: any (see Arch.working_size)
    min_side: int = 1  # smallest side it takes; the engine pads smaller pictures (see Arch.min_side)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def image_statistics(self) -> bool:
        """The network normalises by per-image statistics, so tiles must share them (see imgan.normstats).

        Read from the layers each time: switching pix2pix's BatchNorm mode changes it.
        """
        from imgan.normstats import uses_image_statistics

        return uses_image_statistics(self.module)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        low, high = self.value_range
        if (low, high) != (0.0, 1.0):
            images = images * (high - low) + low
        out = self.module(images)
        if (low, high) != (0.0, 1.0):
            out = (out - low) / (high - low)
        return out

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> ModelDescriptor:
        self.module.to(device=device, dtype=dtype)
        return self
