"""PSNR/SSIM/luma against scikit-image, and the SR evaluation protocol against Pillow itself.

scikit-image (a test dependency) is the independent reference for the metrics; Pillow for the
resampling, which imgan re-implements on tensors and must match byte for byte.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from imgan.errors import InputError, ModelError
from imgan.metrics import psnr, rgb_to_y, ssim
from imgan.tasks.evaluate import (
    EvalRow,
    bicubic_upscale,
    box_downscale,
    evaluate_model,
    evaluate_pairs,
    list_images,
    mean_row,
    pair_folders,
    pil_bicubic_resize,
    protocol_pair,
    quantize,
    score,
    score_files,
)


def to_tensor(array: np.ndarray, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """HWC uint8 -> (1,3,H,W) in [0,1]."""
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].to(dtype) / 255


def to_array(image: torch.Tensor) -> np.ndarray:
    """(1,3,H,W) quantised [0,1] -> HWC uint8."""
    return (image[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


@pytest.fixture(scope="module")
def noisy_pair(astronaut: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 128x160 crop and a copy with +-20 uniform noise."""
    clean = astronaut[100:228, 100:260]
    noise = np.random.default_rng(0).integers(-20, 21, clean.shape)
    return clean, np.clip(clean.astype(int) + noise, 0, 255).astype(np.uint8)


def skimage_ssim(a: np.ndarray, b: np.ndarray, **kwargs: object) -> float:
    """Wang et al.'s settings in scikit-image's terms."""
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, **kwargs
    )


# --------------------------------------------------------------------------------------------
# metrics


def test_luma_of_black_and_white_is_studio_range() -> None:
    image = torch.stack([torch.zeros(3, 2, 2), torch.ones(3, 2, 2)])
    luma = rgb_to_y(image)
    assert luma.shape == (2, 1, 2, 2)
    assert luma[0].unique().item() == pytest.approx(16 / 255)
    assert luma[1].unique().item() == pytest.approx(235 / 255)


def test_luma_matches_matlab_rgb2ycbcr(noisy_pair: tuple[np.ndarray, np.ndarray]) -> None:
    clean, _ = noisy_pair
    expected = rgb2ycbcr(clean)[..., 0] / 255
    actual = rgb_to_y(to_tensor(clean))[0, 0].numpy()
    np.testing.assert_allclose(actual, expected, atol=1e-12)


def test_psnr_of_a_constant_error_of_a_tenth_is_20_db() -> None:
    reference = torch.zeros(3, 16, 16, dtype=torch.float64)
    assert psnr(reference + 0.1, reference) == pytest.approx(20.0, abs=1e-9)


def test_psnr_of_identical_images_is_infinite() -> None:
    image = torch.rand(1, 3, 8, 8)
    assert psnr(image, image.clone()) == math.inf


def test_psnr_matches_skimage(noisy_pair: tuple[np.ndarray, np.ndarray]) -> None:
    clean, noisy = noisy_pair
    expected = peak_signal_noise_ratio(clean, noisy, data_range=255)
    assert psnr(to_tensor(noisy), to_tensor(clean)) == pytest.approx(expected, abs=1e-9)


def test_ssim_matches_skimage_gaussian_settings(noisy_pair: tuple[np.ndarray, np.ndarray]) -> None:
    clean, noisy = noisy_pair
    expected = skimage_ssim(clean, noisy, channel_axis=2)
    actual = ssim(to_tensor(noisy), to_tensor(clean))
    assert 0.5 < actual < 0.7
    assert actual == pytest.approx(expected, abs=1e-9)


def test_y_channel_metrics_with_shave_match_skimage_on_luma(
    noisy_pair: tuple[np.ndarray, np.ndarray],
) -> None:
    clean, noisy = noisy_pair
    luma_clean = rgb2ycbcr(clean)[4:-4, 4:-4, 0]
    luma_noisy = rgb2ycbcr(noisy)[4:-4, 4:-4, 0]
    prediction, reference = to_tensor(noisy), to_tensor(clean)

    assert psnr(prediction, reference, shave=4, y_channel=True) == pytest.approx(
        peak_signal_noise_ratio(luma_clean, luma_noisy, data_range=255), abs=1e-9
    )
    assert ssim(prediction, reference, shave=4, y_channel=True) == pytest.approx(
        skimage_ssim(luma_clean, luma_noisy), abs=1e-9
    )


def test_ssim_of_identical_images_is_one() -> None:
    image = torch.rand(3, 24, 24)
    assert ssim(image, image.clone()) == pytest.approx(1.0, abs=1e-12)


def test_shave_ignores_differences_in_the_border() -> None:
    reference = torch.rand(1, 3, 32, 32)
    prediction = reference.clone()
    prediction[..., :3, :] = 0.0
    prediction[..., :, -3:] = 1.0
    assert psnr(prediction, reference, shave=3) == math.inf
    assert psnr(prediction, reference, shave=2) < 30
    assert ssim(prediction, reference, shave=3) == pytest.approx(1.0)


def test_batches_give_the_mean_of_per_image_values() -> None:
    reference = torch.zeros(2, 3, 16, 16, dtype=torch.float64)
    prediction = reference.clone()
    prediction[0] += 0.1  # 20 dB
    prediction[1] += 0.01  # 40 dB
    assert psnr(prediction, reference) == pytest.approx(30.0)


def test_metrics_refuse_images_of_different_shapes() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(torch.rand(3, 8, 8), torch.rand(3, 8, 9))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.rand(3, 20, 20), torch.rand(3, 20, 20), shave=5)


# --------------------------------------------------------------------------------------------
# Pillow-exact resampling


@pytest.mark.parametrize(
    "size",
    [(128, 128), (160, 96), (1024, 1024), (519, 507), (512, 77), (47, 512), (13, 9)],
    ids=["down4", "down-unequal", "up2", "up-down", "width-only", "tall-vertical-first", "tiny"],
)
def test_bicubic_resize_gives_pillows_bytes(astronaut: np.ndarray, size: tuple[int, int]) -> None:
    width, height = size
    expected = np.asarray(Image.fromarray(astronaut).resize((width, height), Image.BICUBIC))
    actual = to_array(pil_bicubic_resize(to_tensor(astronaut, torch.float32), height, width))
    assert np.array_equal(actual, expected)


def test_bicubic_resize_of_a_tall_image_runs_the_vertical_pass_first() -> None:
    # Pillow shrinks first along the axis that loses more than twice as many pixels.
    pixels = np.random.default_rng(1).integers(0, 256, (116, 36, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(pixels).resize((9, 29), Image.BICUBIC))
    assert np.array_equal(to_array(pil_bicubic_resize(to_tensor(pixels), 29, 9)), expected)


@pytest.mark.parametrize("factor", [2, 3, 4, 5, 7])
def test_box_downscale_is_pillows_reduce_including_partial_cells(factor: int) -> None:
    pixels = np.random.default_rng(factor).integers(0, 256, (61, 94, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(pixels).reduce(factor))
    actual = to_array(box_downscale(to_tensor(pixels), factor))
    assert actual.shape == expected.shape
    assert np.array_equal(actual, expected)


def test_quantize_rounds_to_eight_bits() -> None:
    image = torch.tensor([0.0, 0.5 / 255, 0.51 / 255, 1.2]).view(1, 1, 1, 4)
    assert (quantize(image) * 255).flatten().tolist() == pytest.approx([0.0, 0.0, 1.0, 255.0])


# --------------------------------------------------------------------------------------------
# the protocol


def test_protocol_box_downscales_large_images_then_centre_crops() -> None:
    pixels = np.random.default_rng(2).integers(0, 256, (1700, 3100, 3), dtype=np.uint8)
    hr, lr = protocol_pair(to_tensor(pixels, torch.float32))
    # 3100 px long side -> factor 3 -> 1034x567 -> centre 512x512 -> 128x128.
    reduced = np.asarray(Image.fromarray(pixels).reduce(3))
    top, left = (567 - 512) // 2, (1034 - 512) // 2
    assert np.array_equal(to_array(hr), reduced[top : top + 512, left : left + 512])
    assert lr.shape == (1, 3, 128, 128)


def test_protocol_keeps_a_small_image_whole_trimmed_to_the_scale() -> None:
    pixels = np.random.default_rng(3).integers(0, 256, (258, 300, 3), dtype=np.uint8)
    hr, lr = protocol_pair(to_tensor(pixels, torch.float32), scale=4)
    assert hr.shape == (1, 3, 256, 300) and lr.shape == (1, 3, 64, 75)
    assert np.array_equal(to_array(hr), pixels[1:257])


def test_protocol_bicubic_baseline_matches_pillow_and_skimage(astronaut: np.ndarray) -> None:
    """The x4 bicubic baseline of the protocol, recomputed with Pillow and scikit-image only."""
    low = Image.fromarray(astronaut).resize((128, 128), Image.BICUBIC)
    baseline = np.asarray(low.resize((512, 512), Image.BICUBIC))
    luma_hr = rgb2ycbcr(astronaut)[4:-4, 4:-4, 0]
    luma_up = rgb2ycbcr(baseline)[4:-4, 4:-4, 0]

    hr, lr = protocol_pair(to_tensor(astronaut, torch.float32))
    row = score(bicubic_upscale(lr, 4), hr, shave=4)

    assert np.array_equal(to_array(lr), np.asarray(low))
    assert row.psnr == pytest.approx(peak_signal_noise_ratio(luma_hr, luma_up, data_range=255), abs=1e-4)
    assert row.ssim == pytest.approx(skimage_ssim(luma_hr, luma_up), abs=1e-6)
    assert row.psnr == pytest.approx(26.838, abs=1e-3)  # pinned: astronaut, x4, Y, shave 4


def test_evaluate_model_scores_the_baseline_and_the_model(astronaut: np.ndarray) -> None:
    image = to_tensor(astronaut[:256, :256], torch.float32)
    results = evaluate_model(lambda lr: bicubic_upscale(lr, 4), [("a", image)], scale=4)
    assert [row.name for row in results["bicubic"]] == ["a"]
    assert results["model"] == results["bicubic"]  # a "model" that is bicubic scores the same


def test_evaluate_model_rejects_an_output_of_the_wrong_size(astronaut: np.ndarray) -> None:
    image = to_tensor(astronaut[:64, :64], torch.float32)
    with pytest.raises(ModelError, match=r"a: the model made 32x32 of a 16x16 input, expected 64x64"):
        evaluate_model(lambda lr: bicubic_upscale(lr, 2), [("a", image)], scale=4)


def test_evaluate_pairs_names_a_pair_of_different_sizes() -> None:
    good = torch.rand(1, 3, 16, 16)
    rows = evaluate_pairs([("same", good, good.clone())], shave=0)
    assert rows == [EvalRow("same", math.inf, pytest.approx(1.0))]
    with pytest.raises(InputError, match="odd: prediction is 16x12 but the reference is 16x16"):
        evaluate_pairs([("odd", torch.rand(1, 3, 12, 16), good)], shave=0)


def test_score_refuses_images_too_small_for_the_ssim_window() -> None:
    image = torch.rand(1, 3, 18, 40)
    with pytest.raises(InputError, match=r"tiny: 40x18 is too small to score with a 4 px shave \(SSIM needs 19 px\)"):
        score(image, image, shave=4, name="tiny")


def test_mean_row_averages_psnr_and_ssim() -> None:
    rows = [EvalRow("a", 30.0, 0.8), EvalRow("b", 20.0, 0.6)]
    assert mean_row(rows) == EvalRow("mean", 25.0, pytest.approx(0.7))


# --------------------------------------------------------------------------------------------
# folders


def save(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def test_pair_folders_matches_by_relative_path_and_stem(tmp_path: Path) -> None:
    pixels = np.zeros((16, 16, 3), dtype=np.uint8)
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    save(ref / "a.png", pixels)
    save(ref / "sub" / "b.jpg", pixels)
    save(ref / "c.png", pixels)
    save(ref / "d.png", pixels)
    save(pred / "a.webp", pixels)  # other extension
    save(pred / "sub" / "b.png", pixels)  # same sub folder
    save(pred / "c_x4.png", pixels)  # imgan upscale's default name
    save(pred / "extra.png", pixels)  # no reference: ignored

    pairs, problems = pair_folders(pred, ref)

    assert pairs == [
        ("a", pred / "a.webp", ref / "a.png"),
        ("c", pred / "c_x4.png", ref / "c.png"),
        ("sub/b", pred / "sub" / "b.png", ref / "sub" / "b.jpg"),
    ]
    assert problems == [f"{ref / 'd.png'}: no prediction named d.* in {pred}"]


def test_pair_folders_reports_ambiguous_predictions(tmp_path: Path) -> None:
    pixels = np.zeros((16, 16, 3), dtype=np.uint8)
    save(tmp_path / "ref" / "a.png", pixels)
    save(tmp_path / "pred" / "a.png", pixels)
    save(tmp_path / "pred" / "a.jpg", pixels)
    pairs, problems = pair_folders(tmp_path / "pred", tmp_path / "ref")
    assert pairs == []
    assert problems == [f"{tmp_path / 'ref' / 'a.png'}: several predictions match (a.jpg, a.png); keep one"]


def test_list_images_refuses_a_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="no images found"):
        list_images(tmp_path)
    with pytest.raises(InputError, match="not a directory"):
        list_images(tmp_path / "missing")


def test_score_files_reads_and_scores_on_luma(tmp_path: Path, noisy_pair: tuple[np.ndarray, np.ndarray]) -> None:
    clean, noisy = noisy_pair
    row = score_files(save(tmp_path / "p.png", noisy), save(tmp_path / "r.png", clean), shave=4)
    expected = peak_signal_noise_ratio(
        rgb2ycbcr(clean)[4:-4, 4:-4, 0], rgb2ycbcr(noisy)[4:-4, 4:-4, 0], data_range=255
    )
    assert row.name == str(tmp_path / "r.png")
    assert row.psnr == pytest.approx(expected, abs=1e-4)


def test_score_files_refuses_different_sizes_naming_both(tmp_path: Path) -> None:
    prediction = save(tmp_path / "p.png", np.zeros((16, 20, 3), dtype=np.uint8))
    reference = save(tmp_path / "r.png", np.zeros((16, 16, 3), dtype=np.uint8))
    with pytest.raises(InputError, match=r"p\.png: is 20x16 but its reference .*r\.png is 16x16"):
        score_files(prediction, reference, shave=0)
