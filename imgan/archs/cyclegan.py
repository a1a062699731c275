"""CycleGAN's ResNet generator (``--netG resnet_9blocks --norm instance``).

Paper: Zhu et al., "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial
    Networks", ICCV 2017, arXiv:1703.10593; the generator follows Johnson et al., "Perceptual
    Losses for Real-Time Style Transfer and Super-Resolution", ECCV 2016, arXiv:1603.08155.
Original code: junyanz/pytorch-CycleGAN-and-pix2pix, ``models/networks.py`` class
    ``ResnetGenerator`` (BSD, "Copyright (c) 2017, Jun-Yan Zhu and Taesung Park"). This file is
    written from the published key layout, not copied.
Weights: the same project's pretrained generators (``style_monet``, ``style_vangogh``, ...;
    BSD), plain state dicts. Files saved before torch 0.4 also carry InstanceNorm running-stat
    buffers, which ``drop_legacy_norm_buffers`` removes before a strict load.

Key layout (strict): one ``nn.Sequential`` named ``model``: reflect pad 3 + conv7 (``model.1``),
two stride-2 convs (``model.4``, ``model.7``), ``num_blocks`` residual blocks
(``model.{10+i}.conv_block.{1,5}``), two stride-2 transposed convs and the final conv7
(``model.{b}``, ``model.{b+3}``, ``model.{b+7}`` with ``b = 10 + num_blocks``). Every conv has a
bias; InstanceNorm (affine=False) has no parameters. H and W must be multiples of 4.
Values in and out are [-1,1] (tanh output); the caller's descriptor converts from [0,1].
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch
from torch import nn

from imgan.archs._arch import Arch
from imgan.archs._checks import require_positive

NormFactory = Callable[[int], nn.Module]

_LEGACY_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def instance_norm(num_features: int) -> nn.Module:
    """CycleGAN's norm: per-image InstanceNorm without affine parameters or running stats."""
    return nn.InstanceNorm2d(num_features, affine=False, track_running_stats=False)


# --------------------------------------------------------------------------------------------
# Blocks


class ResnetBlock(nn.Module):
    """x + (reflect pad, conv3, norm, ReLU, reflect pad, conv3, norm)(x)."""

    def __init__(self, num_features: int, *, make_norm: NormFactory) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(num_features, num_features, 3),
            make_norm(num_features),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(num_features, num_features, 3),
            make_norm(num_features),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


def resnet_generator_layers(
    *,
    in_channels: int,
    out_channels: int,
    num_features: int,
    num_blocks: int,
    make_norm: NormFactory,
) -> list[nn.Module]:
    """The Johnson-style encoder / residual stack / decoder, in published Sequential order."""
    require_positive("ResNet generator", {
        "in_channels": in_channels,
        "out_channels": out_channels,
        "num_features": num_features,
        "num_blocks": num_blocks,
    })
    layers: list[nn.Module] = [
        nn.ReflectionPad2d(3),
        nn.Conv2d(in_channels, num_features, 7),
        make_norm(num_features),
        nn.ReLU(inplace=True),
    ]
    width = num_features
    for _ in range(2):
        layers += [
            nn.Conv2d(width, width * 2, 3, stride=2, padding=1),
            make_norm(width * 2),
            nn.ReLU(inplace=True),
        ]
        width *= 2
    layers += [ResnetBlock(width, make_norm=make_norm) for _ in range(num_blocks)]
    for _ in range(2):
        layers += [
            nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1),
            make_norm(width // 2),
            nn.ReLU(inplace=True),
        ]
        width //= 2
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, 7), nn.Tanh()]
    return layers


# --------------------------------------------------------------------------------------------
# Model


class ResnetGenerator(nn.Module):
    """CycleGAN generator: [-1,1] image in, translated [-1,1] image of the same size out."""

    # The norm layer of every stage; a family with the same stack and another norm overrides it.
    make_norm: NormFactory = staticmethod(instance_norm)

    def __init__(
        self,
        *,
        in_channels: int = 3,
        out_channels: int = 3,
        num_features: int = 64,
        num_blocks: int = 9,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.scale = 1
        self.size_multiple = 4
        self.model = nn.Sequential(
            *resnet_generator_layers(
                in_channels=in_channels,
                out_channels=out_channels,
                num_features=num_features,
                num_blocks=num_blocks,
                make_norm=self.make_norm,
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


# --------------------------------------------------------------------------------------------
# Checkpoint remap


def drop_legacy_norm_buffers(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A copy without the running-stat buffers of parameter-less (InstanceNorm) layers.

    Pre-0.4 CycleGAN files store ``running_mean`` / ``running_var`` / ``num_batches_tracked``
    for InstanceNorm layers that no longer have them. A buffer is dropped only when its layer
    has no ``weight`` in the dict, so affine BatchNorm layers keep their statistics.
    """
    kept: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        prefix, _, leaf = key.rpartition(".")
        if leaf in _LEGACY_BUFFERS and f"{prefix}.weight" not in state_dict:
            continue
        kept[key] = value
    return kept


# --------------------------------------------------------------------------------------------
# Checkpoint detection

_KEY = re.compile(r"^model\.\d+\.(?:conv_block\.\d+\.)?[a-z_]+$")
_BLOCK_KEY = re.compile(r"^model\.(\d+)\.conv_block\.")


def _shape(state_dict: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...] | None:
    value = state_dict.get(key)
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def resnet_generator_params(state_dict: Mapping[str, torch.Tensor]) -> dict | None:
    """Hyperparameters read from a ``model.N`` ResNet-generator dict, layout not yet verified."""
    if not state_dict or not all(_KEY.match(key) for key in state_dict):
        return None
    first = _shape(state_dict, "model.1.weight")
    if first is None or len(first) != 4:
        return None
    blocks = sorted({int(m.group(1)) for key in state_dict if (m := _BLOCK_KEY.match(key))})
    if not blocks or blocks != list(range(10, 10 + len(blocks))):
        return None
    last = _shape(state_dict, f"model.{17 + len(blocks)}.weight")
    if last is None or len(last) != 4:
        return None
    return {
        "in_channels": first[1],
        "out_channels": last[0],
        "num_features": first[0],
        "num_blocks": len(blocks),
    }


def matches_layout(
    state_dict: Mapping[str, torch.Tensor],
    build: Callable[[], nn.Module],
    *,
    optional: tuple[str, ...] = ("num_batches_tracked",),
) -> bool:
    """Whether the keys and shapes are exactly those of ``build()`` (built on the meta device).

    Keys whose last part is in ``optional`` may be missing (old torch saves lack them).
    """
    try:
        with torch.device("meta"):
            expected = {key: tuple(value.shape) for key, value in build().state_dict().items()}
    except (TypeError, ValueError):
        return False
    for key in expected:
        if key not in state_dict and key.rpartition(".")[2] not in optional:
            return False
    return all(_shape(state_dict, key) == expected.get(key) for key in state_dict)


def params_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict | None:
    """Constructor kwargs for a CycleGAN ResnetGenerator state dict (already unwrapped), or None.

    ``num_features`` and ``in_channels`` come from ``model.1``, ``num_blocks`` from counting the
    residual indices, ``out_channels`` from the last conv; then every key and shape must match
    that generator exactly. Legacy InstanceNorm buffers are tolerated here (strip them with
    ``drop_legacy_norm_buffers`` before loading); any norm weight means another family.
    """
    params = resnet_generator_params(state_dict)
    if params is None:
        return None
    cleaned = drop_legacy_norm_buffers(state_dict)
    if not matches_layout(cleaned, lambda: ResnetGenerator(**params), optional=()):
        return None
    return params


# --------------------------------------------------------------------------------------------
# Declaration

ARCH = Arch(
    name="cyclegan",
    build=ResnetGenerator,
    detect=params_from_state_dict,
    task="stylize",
    value_range=(-1.0, 1.0),
    tile_overlap=64,  # nine residual blocks at a quarter of the resolution see far
    tiny_params={"num_features": 8, "num_blocks": 1},
    remap=drop_legacy_norm_buffers,
    normalisation="per-image",
    min_side=8,  # the residual blocks reflect-pad by 1 at a quarter of the resolution: 2 px there
)
