"""The network families imgan can build, and recognising a checkpoint's family from its keys.

One explicit table, no registry decorators and no directory scanning: adding a family means
one new module here and one row in ``ARCHS``. State dicts given to ``detect_arch`` must already
be unwrapped (``params_ema`` / ``params`` / ``module.`` are handled by the loader).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from imgan.archs import aginggan, cyclegan, pix2pix, rrdbnet, srresnet, srvgg
from imgan.errors import ModelError

__all__ = ["ARCHS", "Arch", "build_model", "detect_arch"]


@dataclass(frozen=True)
class Arch:
    """A network family: its model class and the function reading its params from a checkpoint."""

    name: str
    build: Callable[..., nn.Module]
    detect: Callable[[Mapping[str, torch.Tensor]], dict | None]
    task: str = "upscale"  # the subcommand whose pipeline feeds this network
    value_range: tuple[float, float] = (0.0, 1.0)  # what the network takes and returns


ARCHS: dict[str, Arch] = {
    arch.name: arch
    for arch in (
        Arch("rrdbnet", rrdbnet.RRDBNet, rrdbnet.params_from_state_dict),
        Arch("srvgg", srvgg.SRVGGNetCompact, srvgg.params_from_state_dict),
        Arch("srresnet", srresnet.SRResNet, srresnet.params_from_state_dict),
        Arch("cyclegan", cyclegan.ResnetGenerator, cyclegan.params_from_state_dict, "stylize", (-1.0, 1.0)),
        Arch("pix2pix", pix2pix.UnetGenerator, pix2pix.params_from_state_dict, "sketch2photo", (-1.0, 1.0)),
        Arch("aginggan", aginggan.Generator, aginggan.params_from_state_dict, "age", (-1.0, 1.0)),
    )
}


def _known() -> str:
    return ", ".join(ARCHS)


def build_model(arch: str, params: Mapping[str, Any]) -> nn.Module:
    """A freshly initialised ``arch`` network built with ``params`` (its constructor's keywords)."""
    spec = ARCHS.get(arch)
    if spec is None:
        raise ModelError(f"unknown architecture {arch!r}; imgan knows: {_known()}")
    accepted = [
        name
        for name, parameter in inspect.signature(spec.build).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ModelError(
            f"unknown parameter(s) {', '.join(unknown)} for architecture {arch!r}; "
            f"it takes: {', '.join(accepted)}"
        )
    try:
        return spec.build(**params)
    except (TypeError, ValueError) as error:
        raise ModelError(f"cannot build {arch!r} with {dict(params)}: {error}") from error


def detect_arch(state_dict: Mapping[str, torch.Tensor]) -> tuple[str, dict]:
    """The family name and constructor params of an (unwrapped) state dict.

    A family claims a checkpoint only when every key belongs to its layout; tensor shapes are
    read, not fully validated, so load the result with ``load_state_dict(..., strict=True)``.
    """
    for arch in ARCHS.values():
        params = arch.detect(state_dict)
        if params is not None:
            return arch.name, params
    sample = ", ".join(list(state_dict)[:3]) or "no keys"
    raise ModelError(
        f"not a checkpoint imgan recognises (known families: {_known()}; its first keys: {sample})"
    )
