"""Fast-AgingGAN's generator: CycleGAN's ResNet generator with BatchNorm.

Paper: none of its own; the method follows Zhu et al., "Unpaired Image-to-Image Translation using
    Cycle-Consistent Adversarial Networks", ICCV 2017, arXiv:1703.10593 (CycleGAN), trained on
    young -> old faces.
Original code: HasnainRaz/Fast-AgingGAN, ``models.py`` class ``Generator`` (MIT, "Copyright (c)
    2024 Hasnain Raza"). This file is written from the published key layout, not copied.
Weights: the same repository's ``pretrained_model/state_dict.pth`` (MIT; a legacy, non-zip torch
    pickle holding a plain state dict with ``num_features=32, num_blocks=9``).

Key layout (strict): the ``model.N`` Sequential of ``imgan.archs.cyclegan`` with every norm an
affine BatchNorm2d (``weight``, ``bias``, ``running_mean``, ``running_var``,
``num_batches_tracked``, which ``add_batchnorm_counters`` adds where a file lacks it). Upstream
runs it with ``model.eval()`` (running statistics) on 512x512 inputs; H and W must be multiples
of 4. Values in and out are [-1,1] (tanh output).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from imgan.archs._arch import Arch
from imgan.archs.cyclegan import ResnetGenerator, matches_layout, resnet_generator_params
from imgan.archs.pix2pix import add_batchnorm_counters

# --------------------------------------------------------------------------------------------
# Model


class Generator(ResnetGenerator):
    """Fast-AgingGAN young -> old generator: [-1,1] face in, [-1,1] aged face of the same size."""

    make_norm = nn.BatchNorm2d

    def __init__(
        self,
        *,
        in_channels: int = 3,
        out_channels: int = 3,
        num_features: int = 32,
        num_blocks: int = 9,
    ) -> None:
        super().__init__(in_channels=in_channels, out_channels=out_channels, num_features=num_features,
                         num_blocks=num_blocks)


# --------------------------------------------------------------------------------------------
# Checkpoint detection


def params_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict | None:
    """Constructor kwargs for a Fast-AgingGAN Generator state dict (already unwrapped), or None.

    Hyperparameters are read as for CycleGAN's generator (``model.1``, residual indices, last
    conv); then every key and shape must match the BatchNorm generator exactly, so a CycleGAN
    (InstanceNorm, no norm weights) dict is refused. ``num_batches_tracked`` may be missing.
    """
    params = resnet_generator_params(state_dict)
    if params is None or "model.2.weight" not in state_dict:
        return None
    if not matches_layout(state_dict, lambda: Generator(**params)):
        return None
    return params


# --------------------------------------------------------------------------------------------
# Declaration

ARCH = Arch(
    name="aginggan",
    build=Generator,
    detect=params_from_state_dict,
    task="age",
    value_range=(-1.0, 1.0),
    tile_overlap=64,  # as CycleGAN's generator
    tiny_params={"num_features": 8, "num_blocks": 1},
    remap=add_batchnorm_counters,
    normalisation="running",
    min_side=8,  # as CycleGAN's generator
)
