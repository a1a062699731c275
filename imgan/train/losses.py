"""Training losses: pure functions of tensors, plus the VGG19 perceptual loss module.

GAN losses take raw discriminator logits (no sigmoid). References:

- Charbonnier: sqrt(d^2 + eps^2), eps = 1e-3 (Lai et al., LapSRN, CVPR 2017).
- LSGAN: Mao et al., ICCV 2017. Hinge: Lim and Ye 2017 / Miyato et al. 2018.
- Wasserstein: Arjovsky et al. 2017; its gradient penalty: Gulrajani et al., NeurIPS 2017.
- Relativistic average GAN as used by ESRGAN (Wang et al., ECCVW 2018; Jolicoeur-Martineau 2018).
- Perceptual loss on VGG19 features before the activation, Real-ESRGAN's layer weights
  (Wang et al., ICCVW 2021); weights: torchvision's ImageNet VGG19 (BSD-3-Clause code,
  ImageNet terms for the weights), fetched through the registry entry ``vgg19-imagenet``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from imgan.errors import DownloadError, ModelError, UsageError

__all__ = [
    "GAN_LOSSES",
    "PIXEL_LOSSES",
    "VGG19_LAYERS",
    "PerceptualLoss",
    "gan_loss",
    "gradient_penalty",
    "masked_pixel_loss",
    "pixel_loss",
    "relativistic_loss",
]

log = logging.getLogger(__name__)

PIXEL_LOSSES = ("l1", "l2", "mse", "charbonnier")
"""Kinds ``pixel_loss`` knows; "mse" is another name for "l2"."""
GAN_LOSSES = ("vanilla", "lsgan", "hinge", "wgan")
CHARBONNIER_EPS = 1e-3

# Layer names of torchvision's vgg19().features, in order (index = position in the Sequential).
VGG19_LAYERS: tuple[str, ...] = tuple(
    name
    for block, convs in enumerate((2, 2, 4, 4, 4), start=1)
    for name in (
        *(f"{kind}{block}_{index}" for index in range(1, convs + 1) for kind in ("conv", "relu")),
        f"pool{block}",
    )
)
REAL_ESRGAN_LAYER_WEIGHTS: Mapping[str, float] = {
    "conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0,
}
"""Real-ESRGAN's perceptual layers and weights (features before the ReLU)."""

_VGG_SPEC = "vgg19-imagenet"
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_WITHOUT_VGG = "; to train without it pass --perceptual 0"


def pixel_loss(prediction: torch.Tensor, target: torch.Tensor, *, kind: str = "l1") -> torch.Tensor:
    """Mean pixel distance: l1, l2 (alias mse) or charbonnier (eps 1e-3)."""
    if kind == "l1":
        return F.l1_loss(prediction, target)
    if kind in ("l2", "mse"):
        return F.mse_loss(prediction, target)
    if kind == "charbonnier":
        return torch.sqrt((prediction - target).square() + CHARBONNIER_EPS**2).mean()
    raise UsageError(f"pixel loss {kind!r}: use one of {', '.join(PIXEL_LOSSES)}")


def gan_loss(
    logits: torch.Tensor, *, real: bool, kind: str = "vanilla", for_discriminator: bool = True
) -> torch.Tensor:
    """Adversarial loss pushing ``logits`` towards "real" (``real=True``) or "fake".

    vanilla: binary cross-entropy on logits; lsgan: squared distance to 1 or 0; hinge:
    mean(relu(1 -+ logits)) for the discriminator; wgan: the critic's -+mean(logits) (add
    ``gradient_penalty``). With ``for_discriminator=False`` (the generator, which wants its fakes
    judged real) hinge and wgan are -mean(logits); vanilla and lsgan are the same formula as for
    the discriminator with ``real=True``.
    """
    if kind not in GAN_LOSSES:
        raise UsageError(f"GAN loss {kind!r}: use one of {', '.join(GAN_LOSSES)}")
    if not for_discriminator and not real:
        raise ValueError("the generator's GAN loss targets real; pass real=True")
    if kind == "vanilla":
        target = torch.ones_like(logits) if real else torch.zeros_like(logits)
        return F.binary_cross_entropy_with_logits(logits, target)
    if kind == "lsgan":
        return (logits - (1.0 if real else 0.0)).square().mean()
    if not for_discriminator or kind == "wgan":
        return -logits.mean() if real else logits.mean()
    return F.relu(1.0 - logits).mean() if real else F.relu(1.0 + logits).mean()


def relativistic_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, *, for_generator: bool
) -> torch.Tensor:
    """Relativistic average GAN loss (ESRGAN), BCE on logits, mean of its two halves.

    The discriminator learns real > mean(fake) and fake < mean(real); the generator the
    opposite. For the generator the real logits are constants (detached), as in ESRGAN.
    """
    if for_generator:
        real_logits = real_logits.detach()
    real_vs_fake = real_logits - fake_logits.mean()
    fake_vs_real = fake_logits - real_logits.mean()
    real_target = not for_generator
    return 0.5 * (
        gan_loss(real_vs_fake, real=real_target) + gan_loss(fake_vs_real, real=not real_target)
    )


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP's penalty: mean (||grad critic(x)|| - 1)^2 at random points x between real and fake.

    ``critic`` takes the images (it may add a condition, such as the mask, itself).
    """
    weight = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype, generator=generator)
    between = (weight * real.detach() + (1 - weight) * fake.detach()).requires_grad_(True)
    scores = critic(between)
    (gradient,) = torch.autograd.grad(scores.sum(), between, create_graph=True)
    return (gradient.flatten(1).norm(dim=1) - 1).square().mean()


def masked_pixel_loss(prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, *,
                      kind: str = "l1") -> torch.Tensor:
    """``pixel_loss`` averaged over the pixels ``weight`` (B,1,H,W) selects (weighted; 0 if none)."""
    difference = prediction - target
    if kind == "l1":
        error = difference.abs()
    elif kind in ("l2", "mse"):
        error = difference.square()
    elif kind == "charbonnier":
        error = torch.sqrt(difference.square() + CHARBONNIER_EPS**2)
    else:
        raise UsageError(f"pixel loss {kind!r}: use one of {', '.join(PIXEL_LOSSES)}")
    return error.mul(weight).sum() / (weight.sum() * prediction.shape[1]).clamp(min=1.0)


class PerceptualLoss(nn.Module):
    """L1 between VGG19 features (ImageNet weights) of prediction and target."""

    def __init__(
        self,
        *,
        layer_weights: Mapping[str, float] | None = None,
        criterion: str = "l1",
        progress: Callable[[int, int | None], None] | None = None,
        state_dict: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        """Build the truncated VGG19 and load its weights.

        ``layer_weights`` maps layer names (``conv5_4``, ``relu3_1``, ... see ``VGG19_LAYERS``)
        to weights; default Real-ESRGAN's. ``criterion`` is a ``pixel_loss`` kind. Weights come
        from the registry (downloaded once, ``progress(done, total)`` while it runs) unless
        ``state_dict`` (torchvision's ``features.N.*`` keys) is given, as tests do.
        """
        super().__init__()
        weights = dict(REAL_ESRGAN_LAYER_WEIGHTS if layer_weights is None else layer_weights)
        unknown = sorted(set(weights) - set(VGG19_LAYERS))
        if unknown or not weights:
            raise UsageError(
                f"perceptual layers {', '.join(unknown) or '(none)'}: use VGG19 layer names "
                "such as conv1_2, relu3_4, conv5_4"
            )
        if criterion not in PIXEL_LOSSES:
            raise UsageError(f"perceptual criterion {criterion!r}: use one of {', '.join(PIXEL_LOSSES)}")
        self.layer_weights = weights
        self.criterion = criterion
        self._indices = {VGG19_LAYERS.index(name): name for name in weights}
        last = max(self._indices)

        from torchvision.models.vgg import cfgs, make_layers

        with torch.device("meta"):  # no random init: every tensor comes from the checkpoint
            features = make_layers(cfgs["E"], batch_norm=False)[: last + 1]  # = vgg19().features
        for module in features:
            if isinstance(module, nn.ReLU):
                module.inplace = False  # the pre-activation features are kept
        if state_dict is None:
            state_dict = _fetch_vgg19(progress=progress)
        try:
            features.load_state_dict(_features_state_dict(state_dict, last=last), strict=True, assign=True)
        except RuntimeError as exc:
            raise ModelError(
                f"the VGG19 weights do not fit torchvision's vgg19 ({str(exc).splitlines()[-1].strip()}); "
                "delete the file from the cache (imgan models path) and download it again"
            ) from exc
        features.requires_grad_(False)
        self.features = features.eval()
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        """Keep VGG in eval mode whatever the trainer switches."""
        super().train(mode)
        self.features.eval()
        return self

    def extract(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features of the chosen layers for a [0,1] RGB batch."""
        x = (image - self.mean) / self.std
        found: dict[str, torch.Tensor] = {}
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self._indices:
                found[self._indices[index]] = x
        return found

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Weighted sum over layers of the criterion between features; gradients reach prediction only."""
        predicted = self.extract(prediction)
        with torch.no_grad():
            expected = self.extract(target.detach())
        total = prediction.new_zeros(())
        for name, weight in self.layer_weights.items():
            total = total + weight * pixel_loss(predicted[name], expected[name], kind=self.criterion)
        return total


def _fetch_vgg19(
    *, progress: Callable[[int, int | None], None] | None
) -> dict[str, torch.Tensor]:
    from imgan import hub

    spec = hub.get_spec(_VGG_SPEC)
    try:
        path = hub.fetch(spec, progress=progress)
    except DownloadError as exc:  # OfflineError too: same class re-raised with the hint
        raise type(exc)(f"{exc}{_WITHOUT_VGG}") from exc
    state_dict, _ = hub.load_state_dict(path, key=spec.key or None)
    log.debug("loaded %s from %s", spec.name, path)
    return state_dict


def _features_state_dict(
    state_dict: Mapping[str, torch.Tensor], *, last: int
) -> dict[str, torch.Tensor]:
    """``features.N.*`` tensors of torchvision's VGG19 up to layer ``last``, without the prefix."""
    kept = {}
    for key, tensor in state_dict.items():
        prefix, _, rest = key.partition(".")
        index = rest.split(".", 1)[0]
        if prefix == "features" and index.isdigit() and int(index) <= last:
            kept[rest] = tensor
    if not kept:
        raise ModelError(
            "the VGG19 checkpoint has no features.* tensors; delete it from the cache "
            "(imgan models path) and download it again"
        )
    return kept
