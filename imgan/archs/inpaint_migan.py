"""MI-GAN, published as the TorchScript file IOPaint downloads: a wrapper that feeds it.

Paper: Sargsyan et al., "MI-GAN: A Simple Baseline for Image Inpainting on Mobile Devices",
    ICCV 2023.
Code: Picsart-AI-Research/MI-GAN (MIT); the traced file and the way it is called are IOPaint's
    (Sanster/IOPaint ``iopaint/model/mi_gan.py``, Apache-2.0). Nothing is copied: this wrapper
    reproduces the calling convention described there.
Weights: ``migan_traced.pt`` from Sanster/models releases (MI-GAN 512, Places2; weights MIT per
    MI-GAN's ``LICENSE-WEIGHTS``), pinned by the md5 IOPaint pins. TorchScript holds code, so
    the hub loads it only after the file matched that digest.

Calling convention: the traced network takes one (B,4,512,512) tensor, ``0.5 - mask`` then the
image in [-1,1] with the hole zeroed (mask 1 = hole), and returns RGB in [-1,1]. The wrapper
takes imgan's (B,4,H,W) in [0,1] (RGB, mask), thresholds the mask at 0.5, shrinks an input
larger than ``resolution`` to fit it (area), pads it by reflection to the square, runs the
network, crops and, if it shrank, enlarges the result back; the output is the prediction in
the hole and the input elsewhere. The inpaint task already gives it crops of at most 512 px.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from imgan.archs._arch import ScriptedArch


class MIGANWrapper(nn.Module):
    """imgan's inpainting contract around MI-GAN's traced 512x512 network."""

    def __init__(self, script: nn.Module, *, resolution: int = 512) -> None:
        super().__init__()
        if not isinstance(resolution, int) or resolution < 8:
            raise ValueError(f"MI-GAN resolution must be an integer of at least 8, not {resolution!r}")
        self.network = script
        self.resolution = resolution
        self.scale = 1
        self.in_channels = 4
        self.out_channels = 3
        self.size_multiple = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image, mask = x[:, :3], (x[:, 3:4] > 0.5).to(x.dtype)
        height, width = x.shape[-2:]
        side = self.resolution
        factor = min(1.0, side / max(height, width))
        small_image, small_mask = image, mask
        if factor < 1.0:
            size = (max(1, round(height * factor)), max(1, round(width * factor)))
            small_image = F.interpolate(image, size=size, mode="area")
            small_mask = (F.interpolate(mask, size=size, mode="area") > 0).to(x.dtype)
        inner_height, inner_width = small_image.shape[-2:]
        signed = small_image * 2 - 1
        packed = torch.cat([0.5 - small_mask, signed * (1 - small_mask)], dim=1)
        padding = (0, side - inner_width, 0, side - inner_height)
        mode = "reflect" if side - inner_width < inner_width and side - inner_height < inner_height else "replicate"
        out = self.network(F.pad(packed, padding, mode=mode) if any(padding) else packed)
        out = ((out[..., :inner_height, :inner_width] + 1) / 2).clamp(0.0, 1.0)
        if factor < 1.0:
            out = F.interpolate(out, size=(height, width), mode="bicubic", align_corners=False).clamp(0.0, 1.0)
        return image * (1 - mask) + out * mask


ARCH = ScriptedArch(
    name="inpaint_migan",
    wrap=MIGANWrapper,
    task="inpaint",
    working_size=512,
)
