"""Real-ESRGAN's second-order degradation: synthetic low-resolution inputs that look like real ones.

Wang, Xie, Dong, Shan, "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure
Synthetic Data", ICCVW 2021 (arXiv:2107.10833). The defaults are the published hyperparameters
of Real-ESRGAN's ``options/train_realesrgan_x4plus.yml`` (BSD-3-Clause); this code is written
from the paper and those numbers.

One pass of degradation is blur (a random Gaussian-family or sinc kernel), a random resize, noise
(Gaussian or Poisson, colour or gray) and JPEG. It runs twice, then a final resize to the target
size, a sinc filter (ringing) and JPEG in random order, and 8-bit quantisation.

Differences from the reference, all deliberate: one sample at a time on CPU (this runs in
DataLoader workers) instead of batches on the GPU; JPEG through libjpeg (Pillow, by way of
imgan.io) at whole qualities instead of a differentiable JPEG; the HR crop itself is degraded,
not an unsharp-masked copy; kernels are not zero-padded to 21x21 (that changes only the cost).
Every random draw comes from the ``torch.Generator`` passed in, so a sample is a pure function
of its generator's seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F

from imgan.io import Picture, decode_picture, encode_picture

__all__ = [
    "KERNEL_TYPES",
    "RESIZE_MODES",
    "DegradationConfig",
    "add_gaussian_noise",
    "add_poisson_noise",
    "blur",
    "degrade",
    "jpeg_compress",
    "kernel_from_shape",
    "random_kernel",
    "sinc_kernel",
]

KERNEL_TYPES: tuple[str, ...] = (
    "iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso",
)
"""Blur kernel families, in the order of ``DegradationConfig.kernel_probs``."""

RESIZE_MODES: tuple[str, ...] = ("area", "bilinear", "bicubic")
"""Interpolation modes a random resize may use."""

_LUMA = (0.2989, 0.587, 0.114)


@dataclass(frozen=True)
class DegradationConfig:
    """Parameters of the two degradation passes; fields ending in 2 are for the second pass.

    Noise sigmas are in 8-bit levels (0-255); probability tuples are weights, normalised on use.
    Sequences (for example lists from TOML) are stored as tuples.
    """

    kernel_size_range: tuple[int, int] = (7, 21)
    """Smallest and largest blur kernel side; the side is drawn from the odd numbers between."""
    resize_modes: tuple[str, ...] = RESIZE_MODES
    final_sinc_prob: float = 0.8

    kernel_probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    """Weights of the kernel families in ``KERNEL_TYPES`` order."""
    sinc_prob: float = 0.1
    """Probability that the blur kernel is a sinc (circular low-pass) kernel instead."""
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    """Shape exponent of generalized Gaussian kernels."""
    betap_range: tuple[float, float] = (1.0, 2.0)
    """Shape exponent of plateau kernels."""
    resize_probs: tuple[float, float, float] = (0.2, 0.7, 0.1)
    """Weights of up, down, keep."""
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    """Probability of Gaussian noise; Poisson noise otherwise."""
    noise_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[int, int] = (30, 95)

    second_blur_prob: float = 0.8
    kernel_probs2: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob2: float = 0.1
    blur_sigma2: tuple[float, float] = (0.2, 1.5)
    betag_range2: tuple[float, float] = (0.5, 4.0)
    betap_range2: tuple[float, float] = (1.0, 2.0)
    resize_probs2: tuple[float, float, float] = (0.3, 0.4, 0.3)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    """Second-pass resize, relative to the final low-resolution size."""
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_range2: tuple[int, int] = (30, 95)

    @classmethod
    def light(cls) -> DegradationConfig:
        """A milder variant for small models: blur sigmas, noise sigmas and Poisson scales halved."""
        default = cls()
        halved = ("blur_sigma", "blur_sigma2", "noise_range", "noise_range2",
                  "poisson_scale_range", "poisson_scale_range2")
        changes = {}
        for name in halved:
            low, high = getattr(default, name)
            changes[name] = (low, max(low, high / 2))
        return replace(default, **changes)

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, list):
                object.__setattr__(self, field.name, tuple(value))
        low, high = self.kernel_size_range
        if low % 2 == 0 or high % 2 == 0 or not 1 <= low <= high:
            raise ValueError(f"kernel_size_range must be two odd sizes, low <= high, not {self.kernel_size_range}")
        unknown = set(self.resize_modes) - set(RESIZE_MODES)
        if not self.resize_modes or unknown:
            raise ValueError(f"resize_modes must be some of {', '.join(RESIZE_MODES)}, not {self.resize_modes}")
        for name in ("final_sinc_prob", "sinc_prob", "gaussian_noise_prob", "gray_noise_prob",
                     "second_blur_prob", "sinc_prob2", "gaussian_noise_prob2", "gray_noise_prob2"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1, not {getattr(self, name)}")
        for name, count in (("kernel_probs", len(KERNEL_TYPES)), ("kernel_probs2", len(KERNEL_TYPES)),
                            ("resize_probs", 3), ("resize_probs2", 3)):
            weights = getattr(self, name)
            if len(weights) != count or min(weights) < 0 or sum(weights) <= 0:
                raise ValueError(f"{name} must be {count} non-negative weights with a positive sum, not {weights}")
        for name, smallest in (("blur_sigma", 1e-3), ("blur_sigma2", 1e-3), ("betag_range", 1e-3),
                               ("betag_range2", 1e-3), ("betap_range", 1e-3), ("betap_range2", 1e-3),
                               ("resize_range", 1e-3), ("resize_range2", 1e-3), ("noise_range", 0),
                               ("noise_range2", 0), ("poisson_scale_range", 0), ("poisson_scale_range2", 0),
                               ("jpeg_range", 1), ("jpeg_range2", 1)):
            value = getattr(self, name)
            if len(value) != 2 or not smallest <= value[0] <= value[1]:
                raise ValueError(f"{name} must be (low, high) with {smallest} <= low <= high, not {value}")
        for name in ("jpeg_range", "jpeg_range2"):
            low, high = getattr(self, name)
            if high > 100 or int(low) != low or int(high) != high:
                raise ValueError(f"{name} must be whole JPEG qualities between 1 and 100, not {(low, high)}")


@dataclass(frozen=True)
class _Pass:
    """The parameters of one degradation pass, picked out of a DegradationConfig."""

    kernel_probs: tuple[float, ...]
    sinc_prob: float
    blur_sigma: tuple[float, float]
    betag_range: tuple[float, float]
    betap_range: tuple[float, float]
    resize_probs: tuple[float, float, float]
    resize_range: tuple[float, float]
    gaussian_noise_prob: float
    noise_range: tuple[float, float]
    poisson_scale_range: tuple[float, float]
    gray_noise_prob: float
    jpeg_range: tuple[int, int]


def _pass(config: DegradationConfig, *, second: bool) -> _Pass:
    suffix = "2" if second else ""
    return _Pass(**{field.name: getattr(config, field.name + suffix) for field in fields(_Pass)})


# --------------------------------------------------------------------------- random draws


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=generator, dtype=torch.float64).item()


def _randint(generator: torch.Generator, low: int, high: int) -> int:
    """A whole number in [low, high], both ends included."""
    return int(torch.randint(int(low), int(high) + 1, (), generator=generator).item())


def _chance(generator: torch.Generator, probability: float) -> bool:
    return _uniform(generator, 0.0, 1.0) < probability


def _choose(generator: torch.Generator, weights: tuple[float, ...]) -> int:
    """An index drawn with probability proportional to ``weights``."""
    point = _uniform(generator, 0.0, sum(weights))
    total = 0.0
    for index, weight in enumerate(weights):
        total += weight
        if point < total:
            return index
    return max(index for index, weight in enumerate(weights) if weight > 0)


def _beta(generator: torch.Generator, limits: tuple[float, float]) -> float:
    """A kernel shape exponent: below or above 1 with even odds, as Real-ESRGAN draws it."""
    low, high = limits
    if _chance(generator, 0.5):
        return _uniform(generator, low, min(1.0, high))
    return _uniform(generator, max(1.0, low), high)


# --------------------------------------------------------------------------- kernels


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Column and row offsets from the kernel centre, float64 (size, size)."""
    offsets = torch.arange(size, dtype=torch.float64) - size // 2
    rows, columns = torch.meshgrid(offsets, offsets, indexing="ij")
    return columns, rows


def kernel_from_shape(
    kind: str, *, size: int, sigma_x: float, sigma_y: float, rotation: float = 0.0, beta: float = 1.0
) -> torch.Tensor:
    """A normalised (size,size) float32 kernel of family ``gaussian``, ``generalized`` or ``plateau``.

    With covariance S = R diag(sigma_x², sigma_y²) Rᵀ and q = xᵀ S⁻¹ x: gaussian exp(-q/2),
    generalized exp(-q^beta / 2), plateau 1 / (1 + q^beta).
    """
    columns, rows = _grid(size)
    cos, sin = math.cos(rotation), math.sin(rotation)
    along = cos * columns + sin * rows
    across = -sin * columns + cos * rows
    quadratic = (along / sigma_x) ** 2 + (across / sigma_y) ** 2
    if kind == "gaussian":
        kernel = torch.exp(-0.5 * quadratic)
    elif kind == "generalized":
        kernel = torch.exp(-0.5 * quadratic.pow(beta))
    elif kind == "plateau":
        kernel = 1.0 / (quadratic.pow(beta) + 1.0)
    else:
        raise ValueError(f"unknown kernel family {kind!r}; use gaussian, generalized or plateau")
    return (kernel / kernel.sum()).to(torch.float32)


def sinc_kernel(cutoff: float, *, size: int) -> torch.Tensor:
    """A normalised (size,size) float32 circular low-pass (2-D sinc) kernel; ``cutoff`` in radians/pixel."""
    columns, rows = _grid(size)
    radius = torch.hypot(columns, rows)
    safe = torch.where(radius > 0, radius, torch.ones_like(radius))
    kernel = cutoff * torch.special.bessel_j1(cutoff * safe) / (2 * math.pi * safe)
    kernel = torch.where(radius > 0, kernel, torch.full_like(kernel, cutoff**2 / (4 * math.pi)))
    return (kernel / kernel.sum()).to(torch.float32)


def _random_size(config: DegradationConfig, generator: torch.Generator) -> int:
    low, high = config.kernel_size_range
    return low + 2 * _randint(generator, 0, (high - low) // 2)


def random_kernel(*, config: DegradationConfig, generator: torch.Generator, second: bool = False) -> torch.Tensor:
    """A random blur kernel (k,k) for the first (or ``second``) pass; it sums to 1."""
    stage = _pass(config, second=second)
    size = _random_size(config, generator)
    if _chance(generator, stage.sinc_prob):
        low_cutoff = math.pi / 3 if size < 13 else math.pi / 5
        return sinc_kernel(_uniform(generator, low_cutoff, math.pi), size=size)
    kind = KERNEL_TYPES[_choose(generator, stage.kernel_probs)]
    family, _, shape = kind.rpartition("_")
    family = family or "gaussian"
    sigma_x = _uniform(generator, *stage.blur_sigma)
    if shape == "aniso":
        sigma_y = _uniform(generator, *stage.blur_sigma)
        rotation = _uniform(generator, -math.pi, math.pi)
    else:
        sigma_y, rotation = sigma_x, 0.0
    beta = 1.0
    if family == "generalized":
        beta = _beta(generator, stage.betag_range)
    elif family == "plateau":
        beta = _beta(generator, stage.betap_range)
    return kernel_from_shape(family, size=size, sigma_x=sigma_x, sigma_y=sigma_y, rotation=rotation, beta=beta)


# --------------------------------------------------------------------------- operations


def blur(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve each channel of (C,H,W) with a (k,k) kernel; reflected borders keep the size."""
    channels = image.shape[0]
    pad = kernel.shape[-1] // 2
    batch = image.unsqueeze(0)
    if pad:
        mode = "reflect" if pad < min(image.shape[-2:]) else "replicate"
        batch = F.pad(batch, (pad, pad, pad, pad), mode=mode)
    weight = kernel.to(image.dtype).expand(channels, 1, *kernel.shape)
    return F.conv2d(batch, weight, groups=channels).squeeze(0)


def _resize(image: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    if tuple(image.shape[-2:]) == size:
        return image
    align = None if mode == "area" else False
    return F.interpolate(image.unsqueeze(0), size=size, mode=mode, align_corners=align).squeeze(0)


def _random_resize(
    image: torch.Tensor, *, base: tuple[int, int], stage: _Pass, config: DegradationConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """Resize to ``base`` times a random factor (up, down or keep) with a random mode."""
    direction = _choose(generator, stage.resize_probs)
    low, high = stage.resize_range
    if direction == 0:
        factor = _uniform(generator, 1.0, max(1.0, high))
    elif direction == 1:
        factor = _uniform(generator, min(1.0, low), 1.0)
    else:
        factor = 1.0
    mode = config.resize_modes[_randint(generator, 0, len(config.resize_modes) - 1)]
    size = (max(1, int(base[0] * factor)), max(1, int(base[1] * factor)))
    return _resize(image, size, mode)


def add_gaussian_noise(
    image: torch.Tensor, *, sigma: float, gray: bool, generator: torch.Generator
) -> torch.Tensor:
    """(C,H,W) plus Gaussian noise of std ``sigma`` (in [0,1] units), clamped; gray: same on every channel."""
    channels, height, width = image.shape
    noise = torch.randn((1 if gray else channels, height, width), generator=generator, dtype=image.dtype)
    return (image + sigma * noise).clamp_(0, 1)


def add_poisson_noise(
    image: torch.Tensor, *, scale: float, gray: bool, generator: torch.Generator
) -> torch.Tensor:
    """(3,H,W) plus ``scale`` times shot noise; the photon count per level follows the number of
    distinct 8-bit values, as in Real-ESRGAN. Gray: noise of the luma, on every channel."""
    source = image
    if gray:
        luma = torch.tensor(_LUMA, dtype=image.dtype).view(3, 1, 1)
        source = (image * luma).sum(0, keepdim=True)
    levels_8bit = (source.clamp(0, 1) * 255).round()
    distinct = int(torch.bincount(levels_8bit.to(torch.int64).flatten(), minlength=256).count_nonzero())
    photons = 2.0 ** math.ceil(math.log2(max(distinct, 1)))
    clean = levels_8bit / 255
    noisy = torch.poisson(clean * photons, generator=generator) / photons
    return (image + scale * (noisy - clean)).clamp_(0, 1)


def _random_noise(image: torch.Tensor, *, stage: _Pass, generator: torch.Generator) -> torch.Tensor:
    if _chance(generator, stage.gaussian_noise_prob):
        sigma = _uniform(generator, *stage.noise_range) / 255
        gray = _chance(generator, stage.gray_noise_prob)
        return add_gaussian_noise(image, sigma=sigma, gray=gray, generator=generator)
    scale = _uniform(generator, *stage.poisson_scale_range)
    gray = _chance(generator, stage.gray_noise_prob)
    return add_poisson_noise(image, scale=scale, gray=gray, generator=generator)


def jpeg_compress(image: torch.Tensor, *, quality: int) -> torch.Tensor:
    """Encode (3,H,W) float [0,1] as a JPEG of ``quality`` (1-100) in memory and decode it again."""
    picture = Picture(rgb=image.detach().unsqueeze(0), alpha=None, bit_depth=8, grayscale=False,
                      icc_profile=None, exif=None, source_format="png", name="<degradation>")
    decoded = decode_picture(encode_picture(picture, format="jpg", quality=int(quality)), name="<degradation>")
    return decoded.rgb[0].to(image.dtype)


def _quantise(image: torch.Tensor) -> torch.Tensor:
    return image.clamp(0, 1).mul_(255).round_().div_(255)


# --------------------------------------------------------------------------- the pipeline


def degrade(
    hr: torch.Tensor, *, scale: int, config: DegradationConfig, generator: torch.Generator
) -> torch.Tensor:
    """(3,H,W) float [0,1] -> (3,H/scale,W/scale) float [0,1]: the two-pass degradation, 8-bit values.

    H and W must be multiples of ``scale``. The result depends only on the inputs and the
    generator's state.
    """
    if hr.ndim != 3 or hr.shape[0] != 3:
        raise ValueError(f"degrade expects a (3,H,W) image, not {tuple(hr.shape)}")
    height, width = hr.shape[-2:]
    if scale < 1 or height % scale or width % scale:
        raise ValueError(f"image sides {height}x{width} must be multiples of the scale {scale}")
    target = (height // scale, width // scale)
    first, second = _pass(config, second=False), _pass(config, second=True)

    kernel1 = random_kernel(config=config, generator=generator)
    kernel2 = random_kernel(config=config, generator=generator, second=True)
    final_kernel = None
    if _chance(generator, config.final_sinc_prob):
        size = _random_size(config, generator)
        final_kernel = sinc_kernel(_uniform(generator, math.pi / 3, math.pi), size=size)

    out = blur(hr.float(), kernel1)
    out = _random_resize(out, base=(height, width), stage=first, config=config, generator=generator)
    out = _random_noise(out, stage=first, generator=generator)
    out = jpeg_compress(out, quality=_randint(generator, *first.jpeg_range))

    if _chance(generator, config.second_blur_prob):
        out = blur(out, kernel2)
    out = _random_resize(out, base=target, stage=second, config=config, generator=generator)
    out = _random_noise(out, stage=second, generator=generator)

    mode = config.resize_modes[_randint(generator, 0, len(config.resize_modes) - 1)]
    quality = _randint(generator, *second.jpeg_range)
    if _chance(generator, 0.5):
        out = _resize(out, target, mode)
        if final_kernel is not None:
            out = blur(out, final_kernel)
        out = jpeg_compress(out, quality=quality)
    else:
        out = jpeg_compress(out, quality=quality)
        out = _resize(out, target, mode)
        if final_kernel is not None:
            out = blur(out, final_kernel)
    return _quantise(out)
