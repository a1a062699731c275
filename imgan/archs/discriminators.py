"""Discriminators for training: VGG-style (SRGAN/ESRGAN), U-Net with spectral norm (Real-ESRGAN),
and PatchGAN (pix2pix/CycleGAN). They return logits; the losses live in ``imgan.train.losses``.

Not generators, so not part of checkpoint detection in ``imgan.archs``. Attribute names follow
the published key layouts, so upstream discriminator checkpoints load without remapping:

- ``VGGStyleDiscriminator``: BasicSR ``basicsr/archs/discriminator_arch.py`` (Apache-2.0),
  as trained for ESRGAN (Wang et al., ECCVW 2018) after SRGAN (Ledig et al., CVPR 2017).
- ``UNetDiscriminatorSN``: Real-ESRGAN ``realesrgan/archs/discriminator_arch.py`` (BSD-3-Clause),
  the layout of ``RealESRGAN_x4plus_netD.pth`` (Wang et al., ICCVW 2021). Spectral norm is the
  classic ``torch.nn.utils.spectral_norm``, whose keys (``weight_orig``, ``weight_u``,
  ``weight_v``) are the ones in that file.
- ``PatchDiscriminator``: junyanz/pytorch-CycleGAN-and-pix2pix ``NLayerDiscriminator``
  (BSD), the 70x70 PatchGAN of pix2pix (Isola et al., CVPR 2017) with 3 layers.
- ``SNPatchDiscriminator``: the SN-PatchGAN of DeepFill v2 (Yu et al., "Free-Form Image Inpainting
  with Gated Convolution", ICCV 2019, arXiv:1806.03589): six 5x5 stride-2 convs with spectral norm
  on the image and its mask; written from the paper (no published PyTorch layout to follow).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

__all__ = ["PatchDiscriminator", "SNPatchDiscriminator", "UNetDiscriminatorSN", "VGGStyleDiscriminator"]

_SLOPE = 0.2


class VGGStyleDiscriminator(nn.Module):
    """SRGAN/ESRGAN discriminator: strided conv + BN stages, then two linear layers; (B,1) logits.

    Five stages halve the input (six from 256 px on, as BasicSR's 256 variant), so the input
    must be exactly ``input_size`` square, a multiple of 32 (64 from 256 px on).
    """

    def __init__(self, *, in_channels: int = 3, num_features: int = 64, input_size: int = 128) -> None:
        super().__init__()
        stages = 6 if input_size >= 256 else 5
        if input_size <= 0 or input_size % 2**stages:
            raise ValueError(f"input_size {input_size} must be a positive multiple of {2**stages}")
        self.input_size = input_size
        self.stages = stages
        widths = [num_features * min(2**stage, 8) for stage in range(stages)]
        self.conv0_0 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=True)
        self.conv0_1 = nn.Conv2d(widths[0], widths[0], 4, 2, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(widths[0], affine=True)
        for stage in range(1, stages):
            setattr(self, f"conv{stage}_0", nn.Conv2d(widths[stage - 1], widths[stage], 3, 1, 1, bias=False))
            setattr(self, f"bn{stage}_0", nn.BatchNorm2d(widths[stage], affine=True))
            setattr(self, f"conv{stage}_1", nn.Conv2d(widths[stage], widths[stage], 4, 2, 1, bias=False))
            setattr(self, f"bn{stage}_1", nn.BatchNorm2d(widths[stage], affine=True))
        side = input_size // 2**stages
        self.linear1 = nn.Linear(widths[-1] * side * side, 100)
        self.linear2 = nn.Linear(100, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(
                f"VGGStyleDiscriminator takes {self.input_size}x{self.input_size} inputs, "
                f"got {x.shape[-1]}x{x.shape[-2]}"
            )
        feat = F.leaky_relu(self.conv0_0(x), _SLOPE)
        feat = F.leaky_relu(self.bn0_1(self.conv0_1(feat)), _SLOPE)
        for stage in range(1, self.stages):
            for half in (0, 1):
                conv = getattr(self, f"conv{stage}_{half}")
                norm = getattr(self, f"bn{stage}_{half}")
                feat = F.leaky_relu(norm(conv(feat)), _SLOPE)
        feat = F.leaky_relu(self.linear1(feat.flatten(1)), _SLOPE)
        return self.linear2(feat)


class UNetDiscriminatorSN(nn.Module):
    """Real-ESRGAN's U-Net discriminator with spectral norm; per-pixel logits (B,1,H,W).

    Three stride-2 downsamplings and three bilinear x2 upsamplings with skip connections:
    H and W must be multiples of 8 (``size_multiple``).
    """

    size_multiple = 8

    def __init__(self, *, in_channels: int = 3, num_features: int = 64, skip_connection: bool = True) -> None:
        super().__init__()
        self.skip_connection = skip_connection
        features = num_features
        self.conv0 = nn.Conv2d(in_channels, features, 3, 1, 1)
        # Downsampling.
        self.conv1 = spectral_norm(nn.Conv2d(features, features * 2, 4, 2, 1, bias=False))
        self.conv2 = spectral_norm(nn.Conv2d(features * 2, features * 4, 4, 2, 1, bias=False))
        self.conv3 = spectral_norm(nn.Conv2d(features * 4, features * 8, 4, 2, 1, bias=False))
        # Upsampling.
        self.conv4 = spectral_norm(nn.Conv2d(features * 8, features * 4, 3, 1, 1, bias=False))
        self.conv5 = spectral_norm(nn.Conv2d(features * 4, features * 2, 3, 1, 1, bias=False))
        self.conv6 = spectral_norm(nn.Conv2d(features * 2, features, 3, 1, 1, bias=False))
        # Head.
        self.conv7 = spectral_norm(nn.Conv2d(features, features, 3, 1, 1, bias=False))
        self.conv8 = spectral_norm(nn.Conv2d(features, features, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(features, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if height % self.size_multiple or width % self.size_multiple:
            raise ValueError(
                f"UNetDiscriminatorSN needs H and W that are multiples of {self.size_multiple}, "
                f"got {width}x{height}"
            )

        def act(t: torch.Tensor) -> torch.Tensor:
            return F.leaky_relu(t, _SLOPE)

        def up(t: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)

        x0 = act(self.conv0(x))
        x1 = act(self.conv1(x0))
        x2 = act(self.conv2(x1))
        x3 = act(self.conv3(x2))
        x4 = act(self.conv4(up(x3)))
        if self.skip_connection:
            x4 = x4 + x2
        x5 = act(self.conv5(up(x4)))
        if self.skip_connection:
            x5 = x5 + x1
        x6 = act(self.conv6(up(x5)))
        if self.skip_connection:
            x6 = x6 + x0
        out = act(self.conv7(x6))
        out = act(self.conv8(out))
        return self.conv9(out)


class PatchDiscriminator(nn.Module):
    """pix2pix/CycleGAN PatchGAN: a grid of logits (B,1,h,w), one per overlapping patch.

    With ``num_layers=3`` each logit sees a 70x70 patch; a 256x256 input gives 30x30 logits.
    ``norm`` is "batch" (pix2pix) or "instance" (CycleGAN; then the convolutions have biases).
    """

    def __init__(
        self, *, in_channels: int = 3, num_features: int = 64, num_layers: int = 3, norm: str = "batch"
    ) -> None:
        super().__init__()
        if norm not in ("batch", "instance"):
            raise ValueError(f"norm {norm!r}: use batch or instance")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        use_bias = norm == "instance"

        def norm_layer(channels: int) -> nn.Module:
            if norm == "batch":
                return nn.BatchNorm2d(channels)
            return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)

        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, num_features, 4, 2, 1),
            nn.LeakyReLU(_SLOPE, True),
        ]
        width = num_features
        for layer in range(1, num_layers + 1):
            previous, width = width, num_features * min(2**layer, 8)
            stride = 2 if layer < num_layers else 1
            layers += [
                nn.Conv2d(previous, width, 4, stride, 1, bias=use_bias),
                norm_layer(width),
                nn.LeakyReLU(_SLOPE, True),
            ]
        layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class SNPatchDiscriminator(nn.Module):
    """DeepFill v2's SN-PatchGAN: every element of its (B,C,h,w) output is a logit for one patch.

    Input: the image and its mask (1 = hole) concatenated, (B,4,H,W); H and W at least 64. Channels
    ``num_features`` x (1, 2, 4, 4, 4, 4); LeakyReLU(0.2) after all but the last conv. ``spectral``
    False leaves the spectral norm out: a Wasserstein critic trained with a gradient penalty
    (``--gan wgan-gp``) is constrained by the penalty instead.
    """

    def __init__(self, *, in_channels: int = 4, num_features: int = 64, num_layers: int = 6,
                 spectral: bool = True) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        wrap = spectral_norm if spectral else (lambda layer: layer)
        widths = [num_features * min(2**index, 4) for index in range(num_layers)]
        self.convs = nn.ModuleList(
            wrap(nn.Conv2d(previous, width, 5, stride=2, padding=2))
            for previous, width in zip([in_channels, *widths[:-1]], widths, strict=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index, conv in enumerate(self.convs):
            x = conv(x)
            if index < len(self.convs) - 1:
                x = F.leaky_relu(x, _SLOPE)
        return x
