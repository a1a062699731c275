"""Big LaMa, published as the TorchScript file IOPaint downloads: a wrapper that feeds it.

Paper: Suvorov et al., "Resolution-robust Large Mask Inpainting with Fourier Convolutions",
    WACV 2022, arXiv:2109.07161.
Code: advimman/lama (BSD-3-Clause per its LICENSE; the Hugging Face mirror of the weights is
    tagged Apache-2.0); the traced file and its calling convention are IOPaint's
    (Sanster/IOPaint ``iopaint/model/lama.py``, Apache-2.0). Nothing is copied.
Weights: ``big-lama.pt`` from Sanster/models releases (big LaMa trained on Places2), pinned by
    the md5 IOPaint pins; the hub loads the TorchScript only after the file matched it.

Calling convention: the traced network is called as ``network(image, mask)`` with RGB in
[0,1] (1,3,H,W) and a binary (1,1,H,W) mask, 1 = hole, H and W multiples of 8; it returns RGB in
[0,1]. The wrapper takes imgan's (B,4,H,W) (the engine pads to the multiple of 8 by reflection;
IOPaint pads symmetrically), thresholds the mask at 0.5 and returns the prediction in the hole,
the input elsewhere. Its Fourier convolutions run in float32 (half precision would need
power-of-two sizes), and it sees the whole input, so it is never tiled.
"""

from __future__ import annotations

import torch
from torch import nn

from imgan.archs._arch import ScriptedArch


class LaMaWrapper(nn.Module):
    """imgan's inpainting contract around big LaMa's traced network."""

    def __init__(self, script: nn.Module) -> None:
        super().__init__()
        self.network = script
        self.scale = 1
        self.in_channels = 4
        self.out_channels = 3
        self.size_multiple = 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image, mask = x[:, :3], (x[:, 3:4] > 0.5).to(x.dtype)
        out = self.network(image, mask).to(x.dtype).clamp(0.0, 1.0)
        return image * (1 - mask) + out * mask


ARCH = ScriptedArch(
    name="inpaint_lama",
    wrap=LaMaWrapper,
    task="inpaint",
    supports_half=False,
    # Trained on 256 px crops, big LaMa keeps its quality up to about 2k (its paper's point);
    # crops larger than this are shrunk to it.
    working_size=1024,
)
