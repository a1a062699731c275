"""Inception-v3 as FID computes it: TensorFlow's 2015-12-05 graph, ported to PyTorch by pytorch-fid.

Paper: Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
    Equilibrium", NeurIPS 2017, arXiv:1706.08500 (FID); Szegedy et al., "Rethinking the
    Inception Architecture for Computer Vision", CVPR 2016 (the network).
Original code: mseitzer/pytorch-fid, ``src/pytorch_fid/inception.py`` (Apache-2.0). The four
    blocks whose pooling differs from torchvision's Inception-v3 are pytorch-fid's own classes
    (``FIDInceptionA``, ``C``, ``E_1``, ``E_2``), imported from the package, so the network is the
    reference implementation's; only the weight loading is imgan's (the registry, its digest and
    the offline message, where pytorch-fid downloads through torch.hub when it is built).
Weights: ``pt_inception-2015-12-05-6726825d.pth`` from pytorch-fid's release ``fid_weights``
    (registry entry ``inception-v3-fid``; the name carries the first 8 hex digits of its sha256).

Key layout (strict): torchvision's ``Inception3(num_classes=1008, aux_logits=False)``:
``Conv2d_1a_3x3`` ... ``Mixed_7c`` and ``fc`` (1008 classes, unused here).
Features: images in [0,1] are resized to 299x299 (bilinear, ``align_corners=False``, no
antialiasing, as pytorch-fid does), scaled to [-1,1], and the 2048 channels of the last block are
averaged over space ("pool3").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FEATURE_SIZE", "INPUT_SIZE", "FIDInception"]

INPUT_SIZE = 299
FEATURE_SIZE = 2048


def _fid_inception_v3() -> nn.Module:
    """torchvision's Inception-v3 with pytorch-fid's FID blocks; weights not loaded."""
    import torchvision
    from pytorch_fid.inception import FIDInceptionA, FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2

    network = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    network.Mixed_5b = FIDInceptionA(192, pool_features=32)
    network.Mixed_5c = FIDInceptionA(256, pool_features=64)
    network.Mixed_5d = FIDInceptionA(288, pool_features=64)
    network.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    network.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    network.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    network.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    network.Mixed_7b = FIDInceptionE_1(1280)
    network.Mixed_7c = FIDInceptionE_2(2048)
    return network


class FIDInception(nn.Module):
    """(B,3,H,W) images in [0,1] -> (B, 2048) pool3 features of the FID Inception network."""

    def __init__(self, *, input_size: int = INPUT_SIZE) -> None:
        super().__init__()
        self.network = _fid_inception_v3()
        self.feature_size = FEATURE_SIZE
        self.input_size = input_size  # FID: 299; tests compare smaller inputs with pytorch-fid's resize_input=False

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """The state dict of ``pt_inception-2015-12-05-6726825d.pth``, loaded strictly."""
        self.network.load_state_dict(state_dict, strict=True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        net = self.network
        if images.shape[-2:] != (self.input_size, self.input_size):
            images = F.interpolate(images, size=(self.input_size, self.input_size), mode="bilinear",
                                   align_corners=False)
        x = images
        x = 2 * x - 1
        x = net.Conv2d_2b_3x3(net.Conv2d_2a_3x3(net.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = net.Conv2d_4a_3x3(net.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a, net.Mixed_6b, net.Mixed_6c,
                      net.Mixed_6d, net.Mixed_6e, net.Mixed_7a, net.Mixed_7b, net.Mixed_7c):
            x = block(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)
