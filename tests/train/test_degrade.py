"""Real-ESRGAN degradation: deterministic under its generator, right shapes, and really degrading."""

from __future__ import annotations

import math

import pytest
import torch
from skimage import data as skimage_data

from imgan.train.data import bicubic_downscale
from imgan.train.degrade import (
    DegradationConfig,
    add_gaussian_noise,
    degrade,
    jpeg_compress,
    kernel_from_shape,
    random_kernel,
    sinc_kernel,
)


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """A 256x256 crop of the astronaut photo, (3,H,W) float [0,1]."""
    pixels = torch.from_numpy(skimage_data.astronaut()).permute(2, 0, 1).float() / 255
    return pixels[:, 40:296, 120:376].contiguous()


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def psnr(first: torch.Tensor, second: torch.Tensor) -> float:
    return 10 * math.log10(1 / (first - second).pow(2).mean().item())


def test_same_seed_gives_the_same_result_and_other_seeds_differ(photo: torch.Tensor) -> None:
    config = DegradationConfig()
    first = degrade(photo, scale=4, config=config, generator=generator(1))
    assert torch.equal(first, degrade(photo, scale=4, config=config, generator=generator(1)))
    assert not torch.equal(first, degrade(photo, scale=4, config=config, generator=generator(2)))


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_output_has_the_low_resolution_size_and_8_bit_values(scale: int) -> None:
    hr = torch.rand(3, 36, 48, generator=generator(scale))
    lr = degrade(hr, scale=scale, config=DegradationConfig(), generator=generator(0))
    assert lr.shape == (3, 36 // scale, 48 // scale)
    assert 0 <= lr.min() and lr.max() <= 1
    assert torch.equal(lr * 255, (lr * 255).round())


def test_sides_that_are_not_multiples_of_the_scale_are_refused() -> None:
    with pytest.raises(ValueError, match="multiples of the scale 4"):
        degrade(torch.zeros(3, 30, 32), scale=4, config=DegradationConfig(), generator=generator(0))


@pytest.mark.parametrize("second", [False, True])
def test_random_kernels_are_odd_squares_in_range_that_sum_to_one(second: bool) -> None:
    config, draws = DegradationConfig(), generator(3)
    sides = set()
    for _ in range(60):
        kernel = random_kernel(config=config, generator=draws, second=second)
        sides.add(kernel.shape[0])
        assert kernel.shape[0] == kernel.shape[1] and kernel.shape[0] % 2 == 1
        assert kernel.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert min(sides) >= 7 and max(sides) <= 21 and len(sides) > 4


def test_isotropic_gaussian_is_symmetric_and_matches_the_formula() -> None:
    kernel = kernel_from_shape("gaussian", size=9, sigma_x=1.5, sigma_y=1.5)
    assert torch.equal(kernel, kernel.T)
    assert torch.equal(kernel, kernel.flip(0)) and torch.equal(kernel, kernel.flip(1))
    assert kernel[4, 5] / kernel[4, 4] == pytest.approx(math.exp(-0.5 / 1.5**2), rel=1e-5)


def test_anisotropic_kernel_is_longer_along_its_rotated_axis() -> None:
    kernel = kernel_from_shape("gaussian", size=11, sigma_x=3.0, sigma_y=0.5, rotation=math.pi / 2)
    assert kernel[0, 5] > kernel[5, 0] * 100  # rotated a quarter turn: spread along rows, not columns
    assert torch.allclose(kernel, kernel.flip(0).flip(1))


def test_sinc_kernel_is_radially_symmetric_and_rings() -> None:
    kernel = sinc_kernel(math.pi / 3, size=21)
    assert kernel.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(kernel, kernel.T) and torch.allclose(kernel, kernel.flip(0))
    assert kernel.min() < 0  # negative lobes: the ringing it is there to simulate


def test_forced_gaussian_noise_has_the_drawn_sigma() -> None:
    noise_only = DegradationConfig(
        kernel_probs=(1, 0, 0, 0, 0, 0), sinc_prob=0, blur_sigma=(0.2, 0.2), resize_probs=(0, 0, 1),
        gaussian_noise_prob=1, noise_range=(10, 10), gray_noise_prob=1, jpeg_range=(100, 100),
        second_blur_prob=0, resize_probs2=(0, 0, 1), gaussian_noise_prob2=1, noise_range2=(0, 0),
        jpeg_range2=(100, 100), final_sinc_prob=0,
    )
    flat = torch.full((3, 128, 128), 128 / 255)
    residual = degrade(flat, scale=1, config=noise_only, generator=generator(0)) - flat
    assert residual.std().item() * 255 == pytest.approx(10, rel=0.05)
    assert residual.mean().abs().item() * 255 < 0.5


def test_gray_noise_is_the_same_on_every_channel() -> None:
    noisy = add_gaussian_noise(torch.full((3, 16, 16), 0.5), sigma=0.05, gray=True, generator=generator(0))
    assert torch.equal(noisy[0], noisy[1]) and torch.equal(noisy[1], noisy[2])
    assert noisy.std().item() > 0.03


def test_low_jpeg_quality_changes_the_image_much_more_than_high(photo: torch.Tensor) -> None:
    low = (jpeg_compress(photo, quality=10) - photo).abs().mean().item()
    high = (jpeg_compress(photo, quality=95) - photo).abs().mean().item()
    assert high < 0.015
    assert low > 4 * high


def test_degraded_inputs_are_much_farther_from_bicubic_than_a_light_touch(photo: torch.Tensor) -> None:
    bicubic = bicubic_downscale(photo, 4)
    baseline = psnr(jpeg_compress(bicubic, quality=95), bicubic)
    default = [psnr(degrade(photo, scale=4, config=DegradationConfig(), generator=generator(seed)), bicubic)
               for seed in range(8)]
    light = [psnr(degrade(photo, scale=4, config=DegradationConfig.light(), generator=generator(seed)), bicubic)
             for seed in range(8)]
    assert baseline > 33
    assert max(default) < baseline - 5
    assert 15 < sum(default) / 8 < 30  # still the same picture, but clearly degraded
    assert sum(default) / 8 < sum(light) / 8


def test_light_config_halves_the_noise_and_blur_ranges() -> None:
    default, light = DegradationConfig(), DegradationConfig.light()
    assert light.noise_range == (1.0, 15.0) and light.noise_range2 == (1.0, 12.5)
    assert light.blur_sigma == (0.2, 1.5) and light.blur_sigma2 == (0.2, 0.75)
    assert light.poisson_scale_range[1] == default.poisson_scale_range[1] / 2
    assert light.jpeg_range == default.jpeg_range


def test_config_takes_lists_and_rejects_impossible_values() -> None:
    assert DegradationConfig(noise_range=[2, 4]).noise_range == (2, 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="jpeg_range"):
        DegradationConfig(jpeg_range=(30, 120))
    with pytest.raises(ValueError, match="kernel_size_range"):
        DegradationConfig(kernel_size_range=(6, 21))
    with pytest.raises(ValueError, match="resize_probs"):
        DegradationConfig(resize_probs=(0.5, 0.5))  # type: ignore[arg-type]
