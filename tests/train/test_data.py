"""Training data: folder scans, the image pool, deterministic on-the-fly pairs, validation crops."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from imgan.errors import InputError
from imgan.io import Picture, write_picture
from imgan.train.data import (
    ImagePool,
    SRPairs,
    SRValidation,
    bicubic_downscale,
    random_crop_augment,
    sample_generator,
    scan_images,
)
from imgan.train.degrade import DegradationConfig


def random_image(height: int, width: int, *, seed: int = 0) -> torch.Tensor:
    """(3,H,W) float with 8-bit values, so a PNG round trip is exact."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, height, width), generator=generator).float() / 255


def save(path: Path, rgb: torch.Tensor, *, alpha: torch.Tensor | None = None, grayscale: bool = False) -> Path:
    picture = Picture(rgb=rgb.unsqueeze(0), alpha=None if alpha is None else alpha.unsqueeze(0), bit_depth=8,
                      grayscale=grayscale, icc_profile=None, exif=None, source_format="png", name=str(path))
    write_picture(picture, path)
    return path


def as_uint8(rgb: torch.Tensor) -> torch.Tensor:
    return rgb.mul(255).round().to(torch.uint8)


@pytest.fixture
def pool(tmp_path: Path) -> ImagePool:
    paths = [save(tmp_path / f"{index}.png", random_image(40 + 8 * index, 48, seed=index)) for index in range(3)]
    return ImagePool(paths, min_side=32)


# --------------------------------------------------------------------------- generators


def test_sample_generator_depends_on_seed_and_index_only() -> None:
    first = torch.rand(4, generator=sample_generator(7, 3))
    assert torch.equal(first, torch.rand(4, generator=sample_generator(7, 3)))
    assert not torch.equal(first, torch.rand(4, generator=sample_generator(7, 4)))
    assert not torch.equal(first, torch.rand(4, generator=sample_generator(8, 3)))


# --------------------------------------------------------------------------- scan_images


def test_scan_images_finds_nested_images_sorted_and_skips_hidden_and_other_files(tmp_path: Path) -> None:
    image = random_image(4, 4)
    save(tmp_path / "b.png", image)
    save(tmp_path / "a" / "deep" / "c.jpg", image)
    save(tmp_path / ".hidden.png", image)
    save(tmp_path / ".cache" / "d.png", image)
    (tmp_path / "notes.txt").write_text("not an image")
    assert scan_images(tmp_path) == [tmp_path / "a" / "deep" / "c.jpg", tmp_path / "b.png"]


def test_scan_images_of_a_folder_without_images_names_it(tmp_path: Path) -> None:
    (tmp_path / "readme.md").write_text("nothing here")
    with pytest.raises(InputError, match=rf"^{tmp_path}: no images found"):
        scan_images(tmp_path)


def test_scan_images_of_a_file_or_missing_folder_fails(tmp_path: Path) -> None:
    file = save(tmp_path / "x.png", random_image(4, 4))
    with pytest.raises(InputError, match="not a folder"):
        scan_images(file)
    with pytest.raises(InputError, match="no such folder"):
        scan_images(tmp_path / "missing")


# --------------------------------------------------------------------------- ImagePool


def test_pool_keeps_exact_pixels_and_skips_small_and_unreadable_files_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    big = random_image(40, 50, seed=1)
    good = save(tmp_path / "good.png", big)
    small = save(tmp_path / "small.png", random_image(20, 50, seed=2))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with caplog.at_level(logging.WARNING, logger="imgan.train.data"):
        pool = ImagePool([good, small, broken], min_side=32)
    assert len(pool) == 1
    assert pool.names == [str(good)]
    assert pool[0].dtype == torch.uint8
    assert torch.equal(pool[0], as_uint8(big))
    warnings = [record.getMessage() for record in caplog.records]
    assert any(message.startswith(str(small)) and "smaller than 32" in message for message in warnings)
    assert any(message.startswith(str(broken)) and "skipped" in message for message in warnings)


def test_pool_shrinks_oversized_images_by_a_whole_box_factor(tmp_path: Path) -> None:
    blocks = random_image(8, 12, seed=3)  # every pixel becomes a 4x4 block: 32x48
    path = save(tmp_path / "big.png", blocks.repeat_interleave(4, 1).repeat_interleave(4, 2))
    pool = ImagePool([path], min_side=4, max_side=12)
    assert pool[0].shape == (3, 8, 12)
    assert torch.equal(pool[0], as_uint8(blocks))


def test_pool_never_shrinks_below_min_side(tmp_path: Path) -> None:
    path = save(tmp_path / "wide.png", random_image(20, 200))
    pool = ImagePool([path], min_side=10, max_side=50)  # 4x would fit 50 but leave 5 rows
    assert pool[0].shape == (3, 10, 100)


def test_pool_makes_gray_rgb_and_drops_alpha(tmp_path: Path) -> None:
    gray = random_image(32, 32, seed=4)[:1].expand(3, -1, -1)
    gray_path = save(tmp_path / "gray.png", gray, grayscale=True)
    alpha_path = save(tmp_path / "alpha.png", random_image(32, 32, seed=5), alpha=torch.full((1, 32, 32), 0.5))
    pool = ImagePool([gray_path, alpha_path], min_side=32)
    assert pool[0].shape == pool[1].shape == (3, 32, 32)
    assert torch.equal(pool[0], as_uint8(gray))
    assert torch.equal(pool[1], as_uint8(random_image(32, 32, seed=5)))


def test_pool_without_a_usable_image_fails_naming_the_folder(tmp_path: Path) -> None:
    path = save(tmp_path / "tiny.png", random_image(8, 8))
    with pytest.raises(InputError, match=rf"^{tmp_path}: none of the 1 images can be used"):
        ImagePool([path], min_side=16)


# --------------------------------------------------------------------------- bicubic_downscale


def test_bicubic_of_a_constant_image_is_that_constant() -> None:
    level = 100 / 255
    lr = bicubic_downscale(torch.full((3, 48, 36), level), 4)
    assert lr.shape == (3, 12, 9)
    assert torch.equal(lr, torch.full((3, 12, 9), level))


def test_bicubic_gives_8_bit_values_and_treats_batches_like_single_images() -> None:
    images = torch.stack([random_image(24, 24, seed=6), random_image(24, 24, seed=7)])
    batch = bicubic_downscale(images, 3)
    assert batch.shape == (2, 3, 8, 8)
    assert torch.equal(batch[1], bicubic_downscale(images[1], 3))
    assert torch.equal(batch * 255, (batch * 255).round())
    assert 0 <= batch.min() and batch.max() <= 1


def test_bicubic_refuses_sides_that_are_not_multiples_of_the_scale() -> None:
    with pytest.raises(ValueError, match="multiples of the scale 4"):
        bicubic_downscale(torch.zeros(3, 10, 12), 4)


# --------------------------------------------------------------------------- random_crop_augment


def test_crop_without_augmentation_is_a_window_of_the_image() -> None:
    image = as_uint8(random_image(20, 30, seed=8))
    crop = random_crop_augment(image, size=8, generator=torch.Generator().manual_seed(1), augment=False)
    windows = image.float().div(255).unfold(1, 8, 1).unfold(2, 8, 1)  # (3, 13, 23, 8, 8)
    matches = (windows == crop[:, None, None]).all(-1).all(-1).all(0)
    assert crop.shape == (3, 8, 8) and crop.dtype == torch.float32
    assert matches.sum() == 1


def test_augmentation_reaches_all_eight_symmetries_of_the_square() -> None:
    image = as_uint8(random_image(6, 6, seed=9))
    outputs = {random_crop_augment(image, size=6, generator=torch.Generator().manual_seed(seed)).numpy().tobytes()
               for seed in range(100)}
    assert len(outputs) == 8


# --------------------------------------------------------------------------- SRPairs


def test_pairs_are_the_same_in_two_datasets_and_differ_between_indices(pool: ImagePool) -> None:
    first = SRPairs(pool, scale=4, crop=32, length=10, seed=5)
    second = SRPairs(pool, scale=4, crop=32, length=10, seed=5)
    for index in (0, 7):
        assert torch.equal(first[index]["hr"], second[index]["hr"])
        assert torch.equal(first[index]["lr"], second[index]["lr"])
    assert not torch.equal(first[0]["hr"], first[1]["hr"])
    assert not torch.equal(first[0]["hr"], SRPairs(pool, scale=4, crop=32, length=10, seed=6)[0]["hr"])


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("degraded", [False, True])
def test_pair_shapes_follow_crop_and_scale(pool: ImagePool, scale: int, degraded: bool) -> None:
    config = DegradationConfig() if degraded else None
    pairs = SRPairs(pool, scale=scale, crop=24, length=2, seed=0, degradation=config)
    item = pairs[1]
    assert item["hr"].shape == (3, 24, 24)
    assert item["lr"].shape == (3, 24 // scale, 24 // scale)
    assert item["lr"].dtype == torch.float32 and 0 <= item["lr"].min() and item["lr"].max() <= 1


def test_plain_pairs_use_the_bicubic_downscale(pool: ImagePool) -> None:
    item = SRPairs(pool, scale=2, crop=16, length=1, seed=0)[0]
    assert torch.equal(item["lr"], bicubic_downscale(item["hr"], 2))


def test_images_are_picked_in_proportion_to_their_area(tmp_path: Path) -> None:
    large = save(tmp_path / "large.png", torch.zeros(3, 60, 60))
    small = save(tmp_path / "small.png", torch.ones(3, 30, 30))
    pairs = SRPairs(ImagePool([large, small], min_side=8), scale=2, crop=8, length=1000, seed=0, augment=False)
    from_large = sum(pairs[index]["hr"].max().item() == 0 for index in range(500))
    assert 0.74 < from_large / 500 < 0.86  # 3600 / (3600 + 900) = 0.8


def test_pairs_leave_out_images_smaller_than_the_crop(pool: ImagePool, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="imgan.train.data"):
        pairs = SRPairs(pool, scale=4, crop=44, length=20, seed=0)  # the 40x48 image is too small
    assert f"smaller than the 44-pixel crop are not used (1): {pool.names[0]}" in caplog.text
    assert {tuple(pairs[index]["hr"].shape) for index in range(5)} == {(3, 44, 44)}
    with pytest.raises(InputError, match="no training image is at least 64 pixels"):
        SRPairs(pool, scale=4, crop=64, length=20, seed=0)


def test_pairs_refuse_indices_outside_their_length(pool: ImagePool) -> None:
    pairs = SRPairs(pool, scale=2, crop=16, length=3, seed=0)
    with pytest.raises(IndexError):
        pairs[3]


def test_a_dataloader_with_workers_gives_the_same_batches_as_the_main_process(pool: ImagePool) -> None:
    pairs = SRPairs(pool, scale=4, crop=32, length=8, seed=11, degradation=DegradationConfig())
    in_process = list(DataLoader(pairs, batch_size=4, num_workers=0))
    in_workers = list(DataLoader(pairs, batch_size=4, num_workers=2))
    assert len(in_process) == len(in_workers) == 2
    for expected, actual in zip(in_process, in_workers, strict=True):
        assert torch.equal(expected["hr"], actual["hr"])
        assert torch.equal(expected["lr"], actual["lr"])


# --------------------------------------------------------------------------- SRValidation


def test_validation_takes_centre_crops_that_are_multiples_of_the_scale(pool: ImagePool) -> None:
    validation = SRValidation(pool, scale=3, crop=44)
    sides = [validation[index]["hr"].shape[-1] for index in range(len(validation))]
    assert sides == [39, 42, 42]  # min(44, 40) -> 39; min(44, 48) -> 42; min(44, 48, 56) -> 42
    item = validation[2]
    image = pool[2]  # 56x48: centre 42x42 window starts at row 7, column 3
    assert torch.equal(as_uint8(item["hr"]), image[:, 7:49, 3:45])
    assert torch.equal(item["lr"], bicubic_downscale(item["hr"], 3))
    assert item["name"] == pool.names[2]


def test_validation_items_are_fixed(pool: ImagePool) -> None:
    first, second = SRValidation(pool, scale=2)[1], SRValidation(pool, scale=2)[1]
    assert torch.equal(first["hr"], second["hr"]) and torch.equal(first["lr"], second["lr"])


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_downscale_matches_pillow_like_the_evaluation_protocol(scale: int) -> None:
    import numpy as np
    from PIL import Image
    from skimage import data

    photo = data.astronaut()[:504, :504]
    pillow = np.asarray(Image.fromarray(photo).resize((504 // scale,) * 2, Image.BICUBIC), dtype=np.float64)
    ours = bicubic_downscale(torch.from_numpy(photo).permute(2, 0, 1).float() / 255, scale)
    difference = ours.permute(1, 2, 0).numpy() * 255 - pillow
    # Pillow rounds to 8 bits between its two passes; that is all that is left.
    assert 10 * np.log10(255**2 / np.mean(difference**2)) > 54
    assert np.mean(difference[4:-4, 4:-4] == 0) > 0.85
