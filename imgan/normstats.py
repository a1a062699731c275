"""Whole-image normalisation statistics for tiled inference.

Instance normalisation (CycleGAN) and per-image batch normalisation (pix2pix as upstream
tests it) normalise every feature map by the mean and variance of the image being processed.
Run tile by tile, each tile would be normalised by its own statistics and the result would
show blocks of different colour and contrast. Instead the engine first runs the network once
on a copy of the whole image small enough to process in one piece, records every such
layer's per-channel mean and variance there, and then runs the tiles with those statistics
frozen, so all tiles are normalised alike.

The statistics of a downscaled copy are close to, not equal to, those of the full image: a
tiled result is seamless and uniformly coloured, and differs from an untiled one by a smooth,
image-wide shift that shrinks as the copy grows (``tests/test_normstats.py`` measures it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["per_image_norm_layers", "uses_image_statistics", "whole_image_statistics"]


def per_image_norm_layers(module: nn.Module) -> list[nn.Module]:
    """The layers of ``module`` that normalise each image by its own statistics at inference."""
    found = []
    for layer in module.modules():
        if isinstance(layer, nn.InstanceNorm2d) and not layer.track_running_stats:
            found.append(layer)
        elif isinstance(layer, nn.BatchNorm2d) and getattr(layer, "per_image", False):
            found.append(layer)  # imgan.archs.pix2pix.PerImageBatchNorm2d in per-image mode
    return found


def uses_image_statistics(module: nn.Module) -> bool:
    """Whether tiles of one image must share normalisation statistics."""
    return bool(per_image_norm_layers(module))


class _Frozen:
    """The replacement forward of one layer: record statistics, then normalise with them."""

    def __init__(self, layer: nn.Module) -> None:
        self.layer = layer
        self.mean: torch.Tensor | None = None
        self.var: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        layer = self.layer
        if self.mean is None or self.var is None:  # recording pass: normal per-image statistics
            stats = x.float()
            self.var, self.mean = torch.var_mean(stats, dim=(2, 3), keepdim=True, correction=0)
            return F.instance_norm(x, weight=layer.weight, bias=layer.bias, eps=layer.eps)
        scale = torch.rsqrt(self.var + layer.eps)
        shift = -self.mean * scale
        if layer.weight is not None:
            scale = scale * layer.weight.float().view(1, -1, 1, 1)
            shift = shift * layer.weight.float().view(1, -1, 1, 1) + layer.bias.float().view(1, -1, 1, 1)
        return x * scale.to(x.dtype) + shift.to(x.dtype)


@contextlib.contextmanager
def whole_image_statistics(module: nn.Module, record: Callable[[], object]) -> Iterator[None]:
    """Inside the block, per-image norm layers use the statistics ``record()`` produced.

    ``record`` runs the network once on one image (a downscaled copy of the whole picture,
    batch of one); its statistics then apply to every forward pass in the block, whatever the
    batch or tile size. The layers get their own forward back on exit.
    """
    layers = per_image_norm_layers(module)
    frozen = [_Frozen(layer) for layer in layers]
    for layer, replacement in zip(layers, frozen, strict=True):
        layer.forward = replacement  # type: ignore[method-assign]
    try:
        record()
        missing = [index for index, replacement in enumerate(frozen) if replacement.mean is None]
        if missing:
            raise RuntimeError(f"{len(missing)} normalisation layer(s) did not run in the statistics pass")
        yield
    finally:
        for layer in layers:
            del layer.forward
