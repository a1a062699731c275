"""Turn a registry name or a local checkpoint into a ready ModelDescriptor."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from imgan import hub
from imgan.archs import ARCHS, build_model, detect_arch
from imgan.archs.cyclegan import drop_legacy_norm_buffers
from imgan.descriptor import ModelDescriptor
from imgan.errors import ModelError

log = logging.getLogger(__name__)

Progress = Callable[[int, int | None], None]
LOCAL_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")
# Input pixels shared by neighbouring tiles, per family. For realesr-animevideov3, overlap 32
# keeps tiled output within 0.25/255 of the whole-image pass at tile 64 (16: 2.5/255). The
# ResNet translators see far wider (9 residual blocks at a quarter of the resolution).
TILE_OVERLAP = {"srvgg": 32, "rrdbnet": 32, "srresnet": 32, "cyclegan": 64, "aginggan": 64}


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
    arch: str,
    params: Mapping[str, Any],
    value_range: tuple[float, float] = (0.0, 1.0),
) -> ModelDescriptor:
    module = build_model(arch, params)
    state_dict = _upgrade_legacy(state_dict, module)
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        first_line = str(exc).splitlines()[1 if len(str(exc).splitlines()) > 1 else 0].strip()
        raise ModelError(f"{name}: weights do not fit {arch} {dict(params)}: {first_line}") from exc
    return ModelDescriptor(
        module=module,
        name=name,
        arch=arch,
        task=task,
        scale=int(getattr(module, "scale", 1)),
        in_channels=int(getattr(module, "in_channels", 3)),
        out_channels=int(getattr(module, "out_channels", 3)),
        size_multiple=int(getattr(module, "size_multiple", 1)),
        value_range=value_range,
        tileable=bool(getattr(module, "tileable", True)),
        tile_overlap=TILE_OVERLAP.get(arch, 16),
        params=dict(params),
    )


def _upgrade_legacy(state_dict: Mapping[str, torch.Tensor], module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What old PyTorch versions saved, in today's layout, so strict loading still checks the rest.

    Files from before torch 0.4 store running statistics for InstanceNorm layers that no longer
    have them (CycleGAN's published generators): dropped. Files from before 0.4.1 lack
    BatchNorm's ``num_batches_tracked`` counters (pix2pix's): added as 0, the value that makes
    no difference at inference.
    """
    upgraded = drop_legacy_norm_buffers(state_dict)
    for key, value in module.state_dict().items():
        if key.endswith(".num_batches_tracked") and key not in upgraded:
            upgraded[key] = torch.zeros_like(value)
    return upgraded


def _load_registry_model(
    name: str, *, task: str, denoise: float | None, progress: Progress | None
) -> ModelDescriptor:
    spec = hub.get_spec(name)
    if spec.task != task:
        raise ModelError(f"model {name!r} is a {spec.task} model, not {task}; see imgan models list --task {task}")
    state_dict, _ = hub.load_state_dict(hub.fetch(spec, progress=progress), key=spec.key or None)
    if denoise is not None:
        if spec.denoise_companion is None:
            companions = [s.name for s in hub.registry().values() if s.denoise_companion]
            raise ModelError(
                f"--denoise needs a model with a denoise companion ({', '.join(companions)}); "
                f"{name!r} has none"
            )
        companion = hub.get_spec(spec.denoise_companion)
        other, _ = hub.load_state_dict(hub.fetch(companion, progress=progress), key=companion.key or None)
        state_dict = blend_state_dicts(state_dict, other, denoise)
    return _describe(
        state_dict, name=name, task=task, arch=spec.arch, params=spec.params,
        value_range=tuple(spec.value_range),  # type: ignore[arg-type]
    )


def _load_local_model(path: Path, *, task: str, denoise: float | None) -> ModelDescriptor:
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    if denoise is not None:
        raise ModelError("--denoise works with registry models that have a denoise companion, not files")
    state_dict, metadata = hub.load_state_dict(path)
    if "arch" in metadata:
        arch = metadata["arch"]
        params = json.loads(metadata.get("params", "{}"))
        value_range = tuple(json.loads(metadata["value_range"])) if "value_range" in metadata else (
            ARCHS[arch].value_range if arch in ARCHS else (0.0, 1.0))
        model_task = metadata.get("task", task)
        if model_task != task:
            raise ModelError(f"{path}: this is a {model_task} model, not {task}")
    else:
        arch, params = detect_arch(state_dict)
        if ARCHS[arch].task != task:
            raise ModelError(f"{path}: this is a {arch} checkpoint for imgan {ARCHS[arch].task}, not {task}")
        value_range = ARCHS[arch].value_range
    log.debug("%s: %s %s", path, arch, params)
    return _describe(state_dict, name=path.stem, task=task, arch=arch, params=params,
                     value_range=value_range)  # type: ignore[arg-type]


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
