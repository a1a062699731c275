"""The network families imgan can build, and recognising a checkpoint's family from its keys.

One explicit table, no registry decorators and no directory scanning: adding a family means one
new module here, ending with its ``ARCH = Arch(...)`` declaration, and one entry in ``ARCHS``.
State dicts given to ``detect_arch`` must already be unwrapped (``params_ema`` / ``params`` /
``module.`` are handled by the loader). The training-only discriminators are not families.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from imgan.archs import (
    aginggan,
    cyclegan,
    dfgan,
    inpaint_ffc,
    inpaint_lama,
    inpaint_migan,
    inpaint_opencv,
    pix2pix,
    rrdbnet,
    srresnet,
    srvgg,
)
from imgan.archs._arch import NORMALISATIONS, Arch, ScriptedArch
from imgan.errors import ModelError

__all__ = ["ARCHS", "NORMALISATIONS", "SCRIPTED_ARCHS", "Arch", "ScriptedArch", "build_model", "detect_arch",
           "get_arch", "get_scripted_arch"]

ARCHS: dict[str, Arch] = {
    arch.name: arch
    for arch in (rrdbnet.ARCH, srvgg.ARCH, srresnet.ARCH, cyclegan.ARCH, pix2pix.ARCH, aginggan.ARCH, dfgan.ARCH,
                 inpaint_ffc.ARCH, inpaint_opencv.ARCH)
}
# Families published only as TorchScript: loaded from pinned files, wrapped, never built or detected.
SCRIPTED_ARCHS: dict[str, ScriptedArch] = {arch.name: arch for arch in (inpaint_migan.ARCH, inpaint_lama.ARCH)}


def _known() -> str:
    return ", ".join(ARCHS)


def get_arch(name: str) -> Arch:
    """The family called ``name``; a ModelError listing the known ones if there is none."""
    arch = ARCHS.get(name)
    if arch is None:
        raise ModelError(f"unknown architecture {name!r}; imgan knows: {_known()}")
    return arch


def get_scripted_arch(name: str) -> ScriptedArch:
    """The TorchScript family called ``name``; a ModelError listing them if there is none."""
    arch = SCRIPTED_ARCHS.get(name)
    if arch is None:
        raise ModelError(f"{name!r} is not a TorchScript family; imgan loads TorchScript for: "
                         f"{', '.join(SCRIPTED_ARCHS)}")
    return arch


def build_model(arch: str, params: Mapping[str, Any]) -> nn.Module:
    """A freshly initialised ``arch`` network built with ``params`` (its constructor's keywords)."""
    spec = get_arch(arch)
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
