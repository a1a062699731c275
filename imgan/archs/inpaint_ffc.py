"""A small coarse-to-fine inpainter with fast Fourier convolutions: imgan's own trainable generator.

Paper: the FFC residual body follows LaMa, Suvorov et al., "Resolution-robust Large Mask
    Inpainting with Fourier Convolutions", WACV 2022, arXiv:2109.07161, whose fast Fourier
    convolution is Chi et al., NeurIPS 2020. LaMa's code: advimman/lama (BSD-3-Clause). This is
    a much smaller network written for imgan (no BatchNorm, a few hundred thousand weights, so
    it trains on a CPU), not LaMa's layout; LaMa's published weights load through
    ``inpaint_lama`` instead.
Weights: ``imgan-inpaint`` (trained by imgan on the offline photo pool, BSD-3-Clause), and
    whatever ``imgan train inpaint`` exports.

Input (B,4,H,W) in [0,1]: RGB, then the mask (1 = fill). The hole is blanked inside the network,
so what the input holds there never matters.

Coarse stage, no weights: three fills of the hole computed in closed form (``coarse_fills``): a
push-pull fill (``pyramid_fill``; Gortler et al., "The Lumigraph", SIGGRAPH 1996: the known pixels
averaged down a pyramid, the hole filled from the finest level that has data, a smooth membrane),
and linear interpolation across the hole along each row and along each column (``line_fill``),
which continues edges that cross a thin hole. Fine stage: the FFC network sees the masked image,
the mask and the three fills; per pixel it weighs the fills (a softmax over three logits) and adds
a correction. Its encoder (5x5 conv, two stride-2 3x3 convs) brings the image to a quarter of its
size; ``num_blocks`` FFC residual blocks run there, each FFC splitting its channels into a local
half (3x3 convs) and a global half whose spectral transform is a 1x1 conv on the real FFT of the
whole feature map, so one layer sees the whole image; nearest-neighbour upsampling and 3x3 convs
decode to the logits and the correction. The head starts at zero: an untrained network gives the
mean of the three fills, and training starts from there (on a 2-core CPU a network learns little
in the hours there are; the coarse stage makes the few hundred steps count). The output is the
prediction (clamped to [0,1]) inside the hole and the input outside it. H and W must be multiples
of 4.

Key layout (strict): ``stem``, ``down.{0,1}``, ``blocks.{i}.{first,second}.{l2l,l2g,g2l}``
(3x3 convs) and ``...global_.{reduce,fourier,expand}`` (1x1 convs of the spectral transform),
``up.{0,1}``, ``head``; every conv has a bias. The stem takes ``4 * out_channels + 1`` channels
(masked image, mask, three coarse fills); the head gives ``3 + out_channels`` (three logits, the
correction).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from imgan.archs._arch import Arch
from imgan.archs._checks import require_positive

SLOPE = 0.2  # LeakyReLU slope after every conv but the head
PUSH_PULL_GAIN = 32.0
"""How fast a pyramid level trusts its own average over the coarser one: weight min(1, gain * known
share). Chosen on training photos: in the hole, 17.53 dB at 32 against 17.48 at 4, on 20 of them
(with 2x2 box averages and no blur, before the binomial blur was added)."""
_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)


def _blur(x: torch.Tensor) -> torch.Tensor:
    """Separable 5-tap binomial blur, edges replicated."""
    channels = x.shape[1]
    taps = torch.tensor(_BINOMIAL, dtype=x.dtype, device=x.device) / 16
    x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), taps.view(1, 1, 1, 5).expand(channels, 1, 1, 5),
                 groups=channels)
    return F.conv2d(F.pad(x, (0, 0, 2, 2), mode="replicate"), taps.view(1, 1, 5, 1).expand(channels, 1, 5, 1),
                    groups=channels)


def pyramid_fill(image: torch.Tensor, known: torch.Tensor, *, gain: float = PUSH_PULL_GAIN) -> torch.Tensor:
    """Push-pull: ``image`` where ``known`` (B,1,H,W, 1 = known), a smooth pyramid fill elsewhere.

    Each level blurs (binomial) and halves the known values and their weights (normalised
    convolution); going back up, each level is filled from the blurred, enlarged coarser one. The
    blur removes the blocks that plain 2x2 averages leave: +0.30 dB in the hole on 20 training photos.
    """
    levels = []
    values, weights = image * known, known
    while True:
        levels.append((values, weights))
        if min(values.shape[-2:]) <= 2:
            break
        values = F.avg_pool2d(_blur(values), 2, ceil_mode=True)
        weights = F.avg_pool2d(_blur(weights), 2, ceil_mode=True)
    values, weights = levels[-1]
    mean = values.sum((-2, -1), keepdim=True) / weights.sum((-2, -1), keepdim=True).clamp(min=1e-6)
    fill = torch.where(weights > 1e-6, values / weights.clamp(min=1e-6), mean)  # a cell no known pixel reached
    for values, weights in reversed(levels[:-1]):
        coarser = _blur(F.interpolate(fill, size=values.shape[-2:], mode="bilinear", align_corners=False))
        trust = (weights * gain).clamp(max=1.0)
        fill = trust * (values / weights.clamp(min=1e-6)) + (1 - trust) * coarser
    return image * known + fill * (1 - known)


def line_fill(image: torch.Tensor, known: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear interpolation along each row between the nearest known pixels on the left and the right.

    Returns the fill (the one known side where the other is missing) and where it is defined
    (B,1,H,W bool: a row with no known pixel has none).
    """
    batch, channels, height, width = image.shape
    present = known[:, 0] > 0.5
    index = torch.arange(width, device=image.device).expand(batch, height, width)
    left = torch.where(present, index, torch.full_like(index, -1)).cummax(dim=-1).values
    right = torch.where(present, index, torch.full_like(index, width)).flip(-1).cummin(dim=-1).values.flip(-1)
    has_left, has_right = left >= 0, right < width
    to_left, to_right = (index - left).to(image.dtype), (right - index).to(image.dtype)
    span = (to_left + to_right).clamp(min=1)
    weight_left = torch.where(has_left & has_right, to_right / span, has_left.to(image.dtype)).unsqueeze(1)
    weight_right = torch.where(has_left & has_right, to_left / span, has_right.to(image.dtype)).unsqueeze(1)
    gather = (batch, channels, height, width)
    values = (weight_left * image.gather(-1, left.clamp(min=0).unsqueeze(1).expand(gather))
              + weight_right * image.gather(-1, right.clamp(max=width - 1).unsqueeze(1).expand(gather)))
    return values, (has_left | has_right).unsqueeze(1)


def coarse_fills(image: torch.Tensor, known: torch.Tensor) -> list[torch.Tensor]:
    """The coarse stage: push-pull, row and column interpolation (each the input where known)."""
    smooth = pyramid_fill(image, known)
    rows, row_defined = line_fill(image, known)
    columns, column_defined = line_fill(image.transpose(-1, -2), known.transpose(-1, -2))
    columns, column_defined = columns.transpose(-1, -2), column_defined.transpose(-1, -2)
    return [smooth, image * known + torch.where(row_defined, rows, smooth) * (1 - known),
            image * known + torch.where(column_defined, columns, smooth) * (1 - known)]

# --------------------------------------------------------------------------------------------
# Blocks


def conv(in_channels: int, out_channels: int, kernel: int, *, stride: int = 1) -> nn.Conv2d:
    """A conv with zero padding that keeps the size (or halves it at stride 2).

    Zero padding, not reflection: on a 2-core CPU reflection padding cost a third of the forward pass.
    """
    return nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2)


class SpectralTransform(nn.Module):
    """The global branch: reduce channels, a 1x1 conv on the image's 2-D real FFT, expand back."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        hidden = max(1, out_channels // 2)
        self.reduce = nn.Conv2d(in_channels, hidden, 1)
        self.fourier = nn.Conv2d(2 * hidden, 2 * hidden, 1)  # real and imaginary parts as channels
        self.expand = nn.Conv2d(hidden, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.reduce(x), SLOPE)
        height, width = x.shape[-2:]
        # FFTs run in float32: half-precision FFTs need power-of-two sizes on CUDA.
        spectrum = torch.fft.rfft2(x.float(), norm="ortho")
        mixed = self.fourier(torch.cat([spectrum.real, spectrum.imag], dim=1).to(x.dtype))
        real, imag = F.leaky_relu(mixed, SLOPE).float().chunk(2, dim=1)
        spatial = torch.fft.irfft2(torch.complex(real, imag), s=(height, width), norm="ortho").to(x.dtype)
        return self.expand(x + spatial)


class FFC(nn.Module):
    """Fast Fourier convolution with half the channels local and half global."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.local_channels = channels - channels // 2
        global_channels = channels // 2
        self.l2l = conv(self.local_channels, self.local_channels, 3)
        self.l2g = conv(self.local_channels, global_channels, 3)
        self.g2l = conv(global_channels, self.local_channels, 3)
        self.global_ = SpectralTransform(global_channels, global_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        local, global_ = x[:, : self.local_channels], x[:, self.local_channels :]
        return torch.cat([self.l2l(local) + self.g2l(global_), self.l2g(local) + self.global_(global_)], dim=1)


class FFCBlock(nn.Module):
    """Two FFCs with a residual connection."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.first = FFC(channels)
        self.second = FFC(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.first(x), SLOPE)
        return x + self.second(out)


# --------------------------------------------------------------------------------------------
# Model


class FFCInpainter(nn.Module):
    """Masked RGB plus mask in, the filled image out (the input kept outside the hole)."""

    def __init__(
        self,
        *,
        in_channels: int = 4,
        out_channels: int = 3,
        num_features: int = 16,
        num_blocks: int = 4,
    ) -> None:
        super().__init__()
        require_positive("FFCInpainter", {"in_channels": in_channels, "out_channels": out_channels,
                                          "num_features": num_features, "num_blocks": num_blocks})
        if in_channels != out_channels + 1:
            raise ValueError(f"FFCInpainter takes the image and its mask: in_channels must be out_channels + 1 "
                             f"(got {in_channels} and {out_channels})")
        self.scale = 1
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.size_multiple = 4
        width = num_features
        self.stem = conv(in_channels + 3 * out_channels, width, 5)  # masked image, mask, coarse fills
        self.down = nn.ModuleList([conv(width, 2 * width, 3, stride=2), conv(2 * width, 4 * width, 3, stride=2)])
        self.blocks = nn.Sequential(*(FFCBlock(4 * width) for _ in range(num_blocks)))
        self.up = nn.ModuleList([conv(4 * width, 2 * width, 3), conv(2 * width, width, 3)])
        self.head = conv(width, 3 + out_channels, 3)  # weights of the coarse fills, correction
        nn.init.zeros_(self.head.weight)  # untrained: the mean of the coarse fills
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor, *, composite: bool = True) -> torch.Tensor:
        """The filled image; with ``composite`` False the prediction everywhere (the trainer's losses
        also look outside the hole)."""
        image, mask = x[:, : self.out_channels], x[:, self.out_channels :]
        masked = image * (1 - mask)
        fills = coarse_fills(masked, 1 - mask)
        out = F.leaky_relu(self.stem(torch.cat([masked, mask, *fills], dim=1)), SLOPE)
        for layer in self.down:
            out = F.leaky_relu(layer(out), SLOPE)
        out = self.blocks(out)
        for layer in self.up:
            out = F.leaky_relu(layer(F.interpolate(out, scale_factor=2.0, mode="nearest")), SLOPE)
        head = self.head(out)
        weights = torch.softmax(head[:, :3], dim=1)
        coarse = sum(weights[:, index : index + 1] * fill for index, fill in enumerate(fills))
        prediction = (coarse + head[:, 3:]).clamp(0.0, 1.0)
        return masked + prediction * mask if composite else prediction


# --------------------------------------------------------------------------------------------
# Checkpoint detection

_KEY = re.compile(
    r"^(stem|down\.[01]|up\.[01]|head"
    r"|blocks\.\d+\.(first|second)\.(l2l|l2g|g2l|global_\.(reduce|fourier|expand)))\.(weight|bias)$"
)


def params_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict | None:
    """Constructor keywords of an FFCInpainter state dict (already unwrapped), or None."""
    if not state_dict or not all(_KEY.match(key) for key in state_dict):
        return None
    stem, head = state_dict.get("stem.weight"), state_dict.get("head.weight")
    if stem is None or head is None or stem.dim() != 4 or head.dim() != 4:
        return None
    blocks = {int(key.split(".")[1]) for key in state_dict if key.startswith("blocks.")}
    if not blocks or blocks != set(range(max(blocks) + 1)):
        return None
    out_channels = int(head.shape[0]) - 3
    if out_channels < 1:
        return None
    return {"in_channels": int(stem.shape[1]) - 3 * out_channels, "out_channels": out_channels,
            "num_features": int(stem.shape[0]), "num_blocks": len(blocks)}


# --------------------------------------------------------------------------------------------
# Declaration

ARCH = Arch(
    name="inpaint_ffc",
    build=FFCInpainter,
    detect=params_from_state_dict,
    task="inpaint",
    value_range=(0.0, 1.0),
    tile_overlap=0,  # unused: not tileable
    tiny_params={"num_features": 4, "num_blocks": 1},
    # The spectral transform sees the whole input: tiles would change the result.
    tileable=False,
    working_size=512,
)
