"""Image quality metrics: PSNR and SSIM, on RGB or on BT.601 luma, over the image or inside a mask.

Pure tensor functions. Images are float (B,C,H,W) or (C,H,W) in [0,1]; batches give the
mean of the per-image values. Everything is computed in float64 on the 0..255 scale, as the
usual SR evaluation code does (BasicSR, MATLAB), so numbers are comparable with theirs when
the inputs are the same 8-bit images.

SSIM is Wang et al., "Image quality assessment: from error visibility to structural
similarity" (IEEE TIP 2004): an 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03,
statistics over the window positions that fit inside the image ("valid"), averaged over the
map and over channels. The masked variants (inpainting: scores inside the hole) average the
squared error over the mask's pixels, and the SSIM map over the window positions whose centre
lies in the mask.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["masked_psnr", "masked_ssim", "psnr", "rgb_to_y", "ssim"]

# ITU-R BT.601 luma for [0,1] RGB as MATLAB's rgb2ycbcr computes it (studio range 16..235).
_Y_WEIGHTS = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0

_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03
_PEAK = 255.0


def rgb_to_y(image: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of [0,1] RGB, in [16/255, 235/255]; shape (..., 1, H, W)."""
    if image.shape[-3] != 3:
        raise ValueError(f"rgb_to_y needs 3 channels in dim -3, got shape {tuple(image.shape)}")
    red, green, blue = image.unbind(dim=-3)
    weight_r, weight_g, weight_b = _Y_WEIGHTS
    luma = (_Y_OFFSET + weight_r * red + weight_g * green + weight_b * blue) / _PEAK
    return luma.unsqueeze(-3)


def psnr(
    prediction: torch.Tensor,
    reference: torch.Tensor,
    *,
    shave: int = 0,
    y_channel: bool = False,
) -> float:
    """Peak signal-to-noise ratio in dB (peak 1.0); ``inf`` for identical images."""
    prediction, reference = _prepare(prediction, reference, shave=shave, y_channel=y_channel)
    mse = (prediction - reference).square().flatten(1).mean(dim=1)
    values = [math.inf if error == 0 else 10.0 * math.log10(_PEAK**2 / error) for error in mse.tolist()]
    return sum(values) / len(values)


def ssim(
    prediction: torch.Tensor,
    reference: torch.Tensor,
    *,
    shave: int = 0,
    y_channel: bool = False,
) -> float:
    """Structural similarity (Wang et al. 2004), mean over the map and the channels."""
    import torch

    prediction, reference = _prepare(prediction, reference, shave=shave, y_channel=y_channel)
    batch = prediction.shape[0]
    per_image = _ssim_map(prediction, reference).reshape(batch, -1).mean(dim=1)
    return float(torch.mean(per_image))


def masked_psnr(prediction: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR in dB over the pixels where ``mask`` (B,1,H,W) is set, all channels; ``inf`` if they match."""
    prediction, reference = _prepare(prediction, reference, shave=0, y_channel=False)
    selected = mask.detach().to(prediction.dtype).expand_as(prediction) > 0.5
    if not bool(selected.any()):
        raise ValueError("the mask selects no pixel")
    error = float((prediction - reference)[selected].square().mean())
    return math.inf if error == 0 else 10.0 * math.log10(_PEAK**2 / error)


def masked_ssim(prediction: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor) -> float:
    """SSIM averaged over the window positions whose centre pixel ``mask`` (B,1,H,W) sets, and the channels."""
    prediction, reference = _prepare(prediction, reference, shave=0, y_channel=False)
    ssim_map = _ssim_map(prediction, reference)  # (B, C, H-10, W-10): window centres 5 px in
    margin = _SSIM_WINDOW // 2
    centres = mask.detach()[..., margin : margin + ssim_map.shape[-2], margin : margin + ssim_map.shape[-1]] > 0.5
    selected = centres.expand_as(ssim_map)
    if not bool(selected.any()):
        raise ValueError(f"the mask selects no pixel at least {margin} px inside the image")
    return float(ssim_map[selected].mean())


def _ssim_map(prediction: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """The SSIM map (B,C,H-10,W-10) of two prepared images (float64, 0..255)."""
    import torch
    import torch.nn.functional as F

    height, width = prediction.shape[-2:]
    if min(height, width) < _SSIM_WINDOW:
        raise ValueError(
            f"ssim needs at least {_SSIM_WINDOW}x{_SSIM_WINDOW} pixels after shaving, "
            f"got {height}x{width}"
        )
    batch, channels = prediction.shape[:2]
    # Channels become batch entries so that one single-channel window filters them all.
    x = prediction.reshape(batch * channels, 1, height, width)
    y = reference.reshape(batch * channels, 1, height, width)
    profile = _gaussian_profile(dtype=x.dtype, device=x.device)
    # The window is separable: a vertical then a horizontal 11-tap pass over the five maps.
    stacked = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    stacked = stacked.reshape(-1, 1, height, width)
    means = F.conv2d(F.conv2d(stacked, profile.view(1, 1, -1, 1)), profile.view(1, 1, 1, -1))
    means = means.reshape(batch * channels, 5, *means.shape[-2:])
    mu_x, mu_y, mean_xx, mean_yy, mean_xy = means.unbind(dim=1)
    var_x = mean_xx - mu_x.square()
    var_y = mean_yy - mu_y.square()
    cov = mean_xy - mu_x * mu_y
    c1 = (_SSIM_K1 * _PEAK) ** 2
    c2 = (_SSIM_K2 * _PEAK) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2)
    )
    return ssim_map.reshape(batch, channels, *ssim_map.shape[-2:])


def _prepare(
    prediction: torch.Tensor, reference: torch.Tensor, *, shave: int, y_channel: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both images as float64 (B,C,H,W) on the 0..255 scale, shaved and optionally luma."""
    if prediction.shape != reference.shape:
        raise ValueError(
            f"images differ in shape: {tuple(prediction.shape)} vs {tuple(reference.shape)}"
        )
    if prediction.dim() not in (3, 4):
        raise ValueError(f"expected (C,H,W) or (B,C,H,W), got shape {tuple(prediction.shape)}")
    if shave < 0:
        raise ValueError(f"shave must be >= 0, got {shave}")
    height, width = prediction.shape[-2:]
    if 2 * shave >= min(height, width):
        raise ValueError(f"shave {shave} leaves nothing of a {height}x{width} image")

    def convert(image: torch.Tensor) -> torch.Tensor:
        import torch

        image = image.detach().to(dtype=torch.float64)
        if image.dim() == 3:
            image = image.unsqueeze(0)
        if y_channel:
            image = rgb_to_y(image)
        if shave:
            image = image[..., shave:-shave, shave:-shave]
        return image * _PEAK

    return convert(prediction), convert(reference)


def _gaussian_profile(*, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The normalised 1-D Gaussian (11 taps, sigma 1.5); the window is its outer product."""
    import torch

    offsets = torch.arange(_SSIM_WINDOW, dtype=dtype, device=device) - (_SSIM_WINDOW - 1) / 2
    profile = torch.exp(-offsets.square() / (2 * _SSIM_SIGMA**2))
    return profile / profile.sum()
