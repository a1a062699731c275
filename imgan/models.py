"""Turn a registry name or a local checkpoint into a ready ModelDescriptor."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from imgan import hub
from imgan.archs import ARCHS, Arch, ScriptedArch, build_model, detect_arch, get_arch, get_scripted_arch
from imgan.descriptor import ModelDescriptor
from imgan.errors import ModelChoiceError, ModelError

log = logging.getLogger(__name__)

Progress = Callable[[int, int | None], None]
LOCAL_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")


def is_local_model(model: str) -> bool:
    """A path to a checkpoint file rather than a registry name."""
    return Path(model).suffix.lower() in LOCAL_SUFFIXES or Path(model).is_file()


def blend_state_dicts(
    first: Mapping[str, torch.Tensor], second: Mapping[str, torch.Tensor], weight: float
) -> dict[str, torch.Tensor]:
    """``weight`` * first + (1 - weight) * second, key by key (network interpolation)."""
    if first.keys() != second.keys():
        raise ModelError("cannot blend two checkpoints with different layers")
    return {key: weight * first[key] + (1.0 - weight) * second[key] for key in first}


def _describe(
    state_dict: Mapping[str, torch.Tensor],
    *,
    name: str,
    task: str,
    arch: Arch,
    params: Mapping[str, Any],
    value_range: tuple[float, float] | None = None,
) -> ModelDescriptor:
    """Build ``arch`` with ``params``, strictly load the (remapped) weights, and describe the result.

    The arch declares the value range of its family; ``value_range`` is what the weights
    themselves declare (their pretrained.toml entry or safetensors metadata) and wins, since the
    same layers can be trained on another range.
    """
    module = build_model(arch.name, params)
    if arch.remap is not None:
        state_dict = arch.remap(state_dict)
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        first_line = str(exc).splitlines()[1 if len(str(exc).splitlines()) > 1 else 0].strip()
        raise ModelError(f"{name}: weights do not fit {arch.name} {dict(params)}: {first_line}") from exc
    if value_range is None:
        value_range = arch.value_range
    elif tuple(value_range) != arch.value_range:
        log.info("%s: values in %s as its weights declare, not %s as %s usually takes",
                 name, list(value_range), list(arch.value_range), arch.name)
    return _descriptor(module, name=name, task=task, arch=arch, params=params, value_range=value_range)


def _descriptor(
    module: torch.nn.Module, *, name: str, task: str, arch: Arch | ScriptedArch, params: Mapping[str, Any],
    value_range: tuple[float, float], supports_half: bool = True,
) -> ModelDescriptor:
    """The descriptor of a ready module: its size facts read off it, the rest from its family."""
    return ModelDescriptor(
        module=module,
        name=name,
        arch=arch.name,
        task=task,
        scale=int(module.scale),
        in_channels=int(module.in_channels),
        out_channels=int(module.out_channels),
        size_multiple=int(module.size_multiple),
        value_range=(float(value_range[0]), float(value_range[1])),
        tileable=arch.tileable,
        tile_overlap=arch.tile_overlap,
        supports_half=supports_half,
        working_size=arch.working_size,
        min_side=arch.min_side,
        params=dict(params),
    )


def _describe_scripted(
    script: torch.nn.Module, *, name: str, task: str, arch: ScriptedArch, params: Mapping[str, Any]
) -> ModelDescriptor:
    """Wrap a loaded TorchScript network as its family declares, and describe the result."""
    try:
        module = arch.wrap(script, **params)
    except (TypeError, ValueError) as error:
        raise ModelError(f"{name}: cannot wrap it as {arch.name} with {dict(params)}: {error}") from error
    return _descriptor(module, name=name, task=task, arch=arch, params=params, value_range=arch.value_range,
                       supports_half=arch.supports_half)


def _registry_spec(name: str, *, task: str) -> hub.WeightSpec:
    spec = hub.get_spec(name)
    if spec.task != task:
        raise ModelChoiceError(
            f"model {name!r} is a {spec.task} model, not {task}; see imgan models list --task {task}")
    return spec


def model_identity(model: str, *, task: str) -> tuple[str, int]:
    """The name and scale outputs of ``model`` are named with, without fetching weights (a file is read)."""
    if is_local_model(model):
        descriptor = load_model(model, task=task)
        return descriptor.name, descriptor.scale
    spec = _registry_spec(model, task=task)
    return spec.name, spec.scale


def _load_registry_model(
    name: str, *, task: str, denoise: float | None, progress: Progress | None
) -> ModelDescriptor:
    spec = _registry_spec(name, task=task)
    if denoise is not None and spec.denoise_companion is None:
        companions = [s.name for s in hub.registry().values() if s.denoise_companion]
        raise ModelChoiceError(
            f"--denoise needs a model with a denoise companion ({', '.join(companions)}); {name!r} has none")
    if spec.builtin:  # no file: the network is its params (OpenCV's classical inpainting)
        state_dict = build_model(spec.arch, spec.params).state_dict()
        return _describe(state_dict, name=name, task=task, arch=get_arch(spec.arch), params=spec.params,
                         value_range=spec.value_range)
    if spec.format == "torchscript":  # code: loaded only once fetch has checked the pinned digest
        script = hub.load_torchscript(hub.fetch(spec, progress=progress))
        return _describe_scripted(script, name=name, task=task, arch=get_scripted_arch(spec.arch),
                                  params=spec.params)
    state_dict, _ = hub.load_state_dict(hub.fetch(spec, progress=progress), key=spec.key or None)
    if denoise is not None:
        companion = hub.get_spec(spec.denoise_companion)
        other, _ = hub.load_state_dict(hub.fetch(companion, progress=progress), key=companion.key or None)
        state_dict = blend_state_dicts(state_dict, other, denoise)
    return _describe(state_dict, name=name, task=task, arch=get_arch(spec.arch), params=spec.params,
                     value_range=spec.value_range)


def _load_local_model(path: Path, *, task: str, denoise: float | None) -> ModelDescriptor:
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    if denoise is not None:
        raise ModelChoiceError("--denoise works with registry models that have a denoise companion, not files")
    if hub.is_torchscript(path):
        return _load_local_torchscript(path, task=task)
    state_dict, metadata = hub.load_state_dict(path)
    value_range = None
    if "arch" in metadata:  # written by imgan train
        arch = get_arch(metadata["arch"])
        params = json.loads(metadata.get("params", "{}"))
        if "value_range" in metadata:
            value_range = tuple(json.loads(metadata["value_range"]))
        model_task = metadata.get("task", arch.task)
        if model_task != task:
            raise ModelError(f"{path}: this is a {model_task} model, not {task}")
    else:
        name, params = detect_arch(state_dict)
        arch = ARCHS[name]
        if arch.task != task:
            raise ModelError(f"{path}: this is a {arch.name} checkpoint for imgan {arch.task}, not {task}")
    log.debug("%s: %s %s", path, arch.name, params)
    return _describe(state_dict, name=path.stem, task=task, arch=arch, params=params,
                     value_range=value_range)


def _load_local_torchscript(path: Path, *, task: str) -> ModelDescriptor:
    """A TorchScript file the user has (IOPaint's cache, say): loaded only if it is one the registry pins."""
    spec = hub.registry_spec_for_file(path, format="torchscript")
    if spec is None:
        known = ", ".join(s.name for s in hub.registry().values() if s.format == "torchscript")
        raise ModelError(f"{path}: a TorchScript file runs code, and this one is none of the files the registry "
                         f"pins ({known}); imgan loads only those")
    if spec.task != task:
        raise ModelError(f"{path}: this is {spec.name}, a {spec.task} model, not {task}")
    log.info("%s: the registry's %s (digest matched)", path, spec.name)
    return _describe_scripted(hub.load_torchscript(path), name=path.stem, task=task,
                              arch=get_scripted_arch(spec.arch), params=spec.params)


def load_model(
    model: str,
    *,
    task: str,
    denoise: float | None = None,
    progress: Progress | None = None,
) -> ModelDescriptor:
    """A descriptor for a registry name (downloaded on first use) or a local checkpoint."""
    if denoise is not None and not 0.0 <= denoise <= 1.0:
        raise ModelError(f"--denoise {denoise}: use a strength between 0 and 1")
    if is_local_model(model):
        return _load_local_model(Path(model), task=task, denoise=denoise)
    return _load_registry_model(model, task=task, denoise=denoise, progress=progress)
