"""What a network family declares about itself, so the loader, engine and trainers never name it.

Each module in ``imgan.archs`` ends with one ``ARCH = Arch(...)``. Facts fixed for the whole family
live here; facts that follow from the constructor params (scale, channels, size multiple) are read
from the built module, whose class sets ``scale``, ``in_channels``, ``out_channels`` and
``size_multiple`` in ``__init__``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["KINDS", "NORMALISATIONS", "Arch", "ScriptedArch"]

StateDict = Mapping[str, torch.Tensor]

# How a family's norm layers behave at inference, which decides whether tiles of one image must
# share normalisation statistics (imgan.normstats):
#   none        no norm layers
#   running     BatchNorm with running statistics: nothing to share
#   per-image   every image normalised by its own statistics (InstanceNorm): tiles share them
#   selectable  either, switched by ``Arch.set_per_image_norm``; a freshly built module runs
#               with running statistics
NORMALISATIONS = ("none", "running", "per-image", "selectable")

# What a family's network takes and gives, which decides who feeds it:
#   image     an image in, an image out (the engine tiles and feeds it; scale, channels, size multiple)
#   text2img  noise and a caption's embedding in, an image out (imgan.tasks.text2img feeds it)
KINDS = ("image", "text2img")


@dataclass(frozen=True, kw_only=True)
class Arch:
    """One network family: how to build, recognise and feed it, and how to train it if imgan can."""

    name: str  # the family's name in pretrained.toml, checkpoint metadata and training configs
    build: Callable[..., nn.Module]  # the model class; its keyword-only arguments are the params
    detect: Callable[[StateDict], dict | None]  # params read from an unwrapped state dict, or None
    task: str  # the subcommand whose pipeline feeds this network ("upscale", "stylize", ...)
    kind: str = "image"  # one of KINDS
    value_range: tuple[float, float]  # what the network takes and returns; the descriptor converts
    tile_overlap: int  # input pixels shared by neighbouring tiles (unused when not tileable)
    tiny_params: Mapping[str, Any]  # a seconds-fast random-weight build, for the registry tests
    tileable: bool = True  # False: every output pixel sees the whole input, so it runs in one piece
    remap: Callable[[StateDict], dict[str, torch.Tensor]] | None = None  # old key layouts -> today's
    normalisation: str = "none"  # one of NORMALISATIONS
    set_per_image_norm: Callable[..., None] | None = None  # (module, *, per_image: bool), if selectable
    train_scales: tuple[int, ...] = ()  # scales a trainer may build; empty for non-SR families
    train_params: Callable[..., dict[str, Any]] | None = None  # (*, features, blocks, scale) -> params
    working_size: int = 0  # longest side the network is meant to see (tasks shrink larger crops); 0: any
    min_side: int = 1  # smallest side the network takes; the engine reflect-pads smaller pictures up to it

    def __post_init__(self) -> None:
        problems = []
        if self.kind not in KINDS:
            problems.append(f"kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.normalisation not in NORMALISATIONS:
            problems.append(f"normalisation {self.normalisation!r} is not one of {', '.join(NORMALISATIONS)}")
        if (self.normalisation == "selectable") != (self.set_per_image_norm is not None):
            problems.append("set_per_image_norm goes with, and only with, normalisation='selectable'")
        if bool(self.train_scales) != (self.train_params is not None):
            problems.append("train_scales and train_params go together")
        if not self.value_range[0] < self.value_range[1]:
            problems.append(f"value_range {self.value_range} is not (low, high)")
        if self.tile_overlap < 0:
            problems.append(f"tile_overlap {self.tile_overlap} is negative")
        if self.working_size < 0:
            problems.append(f"working_size {self.working_size} is negative")
        if self.min_side < 1:
            problems.append(f"min_side {self.min_side} is not positive")
        if problems:
            raise ValueError(f"arch {self.name!r}: {'; '.join(problems)}")


@dataclass(frozen=True, kw_only=True)
class ScriptedArch:
    """A family whose weights are published only as TorchScript (code and weights in one file).

    imgan cannot build such a network, so it has no ``build``, ``detect`` or training; the hub
    loads the script with ``torch.jit.load`` only after the file matched its pinned digest, and
    ``wrap(script, **params)`` puts it in a module that speaks imgan's tensor contract for the
    task (values in [0,1], the model's own value range, padding and channel layout inside it).
    The wrapper sets ``scale``, ``in_channels``, ``out_channels`` and ``size_multiple``.
    """

    name: str  # the family's name in pretrained.toml
    wrap: Callable[..., nn.Module]  # (script, **params) -> the module the engine runs
    task: str
    value_range: tuple[float, float] = (0.0, 1.0)  # at the wrapper's boundary, always [0,1] today
    tileable: bool = False
    tile_overlap: int = 0
    supports_half: bool = True
    working_size: int = 0  # as for Arch
    min_side: int = 1  # as for Arch

    def __post_init__(self) -> None:
        if self.value_range != (0.0, 1.0):
            raise ValueError(f"scripted arch {self.name!r}: its wrapper takes and returns [0,1]")
        if self.working_size < 0 or self.tile_overlap < 0:
            raise ValueError(f"scripted arch {self.name!r}: working_size and tile_overlap must be >= 0")
        if self.min_side < 1:
            raise ValueError(f"scripted arch {self.name!r}: min_side must be >= 1")
