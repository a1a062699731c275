"""Image-to-image translation families: CycleGAN, pix2pix and Fast-AgingGAN generators.

Published key layouts (from ``../shared/compat``), detection from keys and shapes, and forward
behaviour on small random-weight models.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from imgan.archs import ARCHS, build_model, detect_arch
from imgan.archs.aginggan import Generator
from imgan.archs.cyclegan import ResnetGenerator, drop_legacy_norm_buffers
from imgan.archs.pix2pix import UnetGenerator, add_batchnorm_counters, set_batchnorm_mode

COMPAT = Path(__file__).resolve().parents[2] / "shared" / "compat"

CYCLEGAN_PARAMS = {"in_channels": 3, "out_channels": 3, "num_features": 64, "num_blocks": 9}
LISTINGS = {
    "cyclegan_resnet9": ("cyclegan", CYCLEGAN_PARAMS),
    "cyclegan_resnet9_legacy": ("cyclegan", CYCLEGAN_PARAMS),
    "pix2pix_unet256": (
        "pix2pix",
        {"in_channels": 3, "out_channels": 3, "num_features": 64, "num_downs": 8},
    ),
    "fast_aginggan": (
        "aginggan",
        {"in_channels": 3, "out_channels": 3, "num_features": 32, "num_blocks": 9},
    ),
}
SR_LISTINGS = ("rrdbnet_x4", "rrdbnet_x2", "srvgg_x4_conv32", "srvgg_x4_conv16")


def read_listing(name: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape from a ``key<TAB>(shape)<TAB>dtype`` listing; skip when it is absent."""
    path = COMPAT / f"{name}.keys.txt"
    if not path.is_file():
        pytest.skip(f"{path} not available")
    shapes: dict[str, tuple[int, ...]] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, shape, _dtype = line.split("\t")
        shapes[key] = tuple(int(n) for n in shape.strip("()").split(",") if n.strip())
    return shapes


def fake_state_dict(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Zero tensors of the listed shapes, as zero-stride views of one element (no memory)."""
    zero = torch.zeros(())
    return {key: zero.expand(shape) for key, shape in shapes.items()}


def model_shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


@pytest.mark.parametrize("listing", list(LISTINGS))
def test_published_layout_is_detected_and_loads_strictly(listing: str) -> None:
    family, params = LISTINGS[listing]
    state_dict = fake_state_dict(read_listing(listing))
    if listing.endswith("_legacy"):
        state_dict = drop_legacy_norm_buffers(state_dict)

    assert detect_arch(state_dict) == (family, params)
    model = build_model(family, params)
    model.load_state_dict(state_dict, strict=True)
    assert model_shapes(model) == {key: tuple(v.shape) for key, v in state_dict.items()}


def test_model_keys_equal_the_published_listing_exactly() -> None:
    assert model_shapes(ResnetGenerator()) == read_listing("cyclegan_resnet9")
    assert model_shapes(UnetGenerator()) == read_listing("pix2pix_unet256")
    assert model_shapes(Generator()) == read_listing("fast_aginggan")


def test_drop_legacy_norm_buffers_removes_only_instance_norm_stats() -> None:
    legacy = read_listing("cyclegan_resnet9_legacy")
    cleaned = drop_legacy_norm_buffers(fake_state_dict(legacy))
    assert set(cleaned) == set(read_listing("cyclegan_resnet9"))
    assert len(legacy) - len(cleaned) == 69  # 23 InstanceNorm layers x 3 buffers

    aging = fake_state_dict(read_listing("fast_aginggan"))
    assert set(drop_legacy_norm_buffers(aging)) == set(aging)  # BatchNorm stats are kept


def test_add_batchnorm_counters_restores_exactly_the_missing_counters() -> None:
    shapes = read_listing("pix2pix_unet256")
    current = fake_state_dict(shapes)
    old = {k: v for k, v in current.items() if "num_batches_tracked" not in k}
    upgraded = add_batchnorm_counters(old)
    assert set(upgraded) == set(current) and len(upgraded) > len(old)
    counters = [upgraded[k] for k in set(upgraded) - set(old)]
    assert all(c.dtype == torch.long and c.shape == () and int(c) == 0 for c in counters)
    assert set(add_batchnorm_counters(current)) == set(current)


def test_legacy_cyclegan_file_is_recognised_before_cleaning() -> None:
    legacy = fake_state_dict(read_listing("cyclegan_resnet9_legacy"))
    assert detect_arch(legacy) == ("cyclegan", CYCLEGAN_PARAMS)


def test_pix2pix_file_without_num_batches_tracked_is_recognised() -> None:
    shapes = read_listing("pix2pix_unet256")
    old = {k: v for k, v in fake_state_dict(shapes).items() if "num_batches_tracked" not in k}
    assert detect_arch(old)[0] == "pix2pix"


@pytest.mark.parametrize("listing", list(LISTINGS) + list(SR_LISTINGS))
def test_no_family_claims_another_familys_listing(listing: str) -> None:
    expected = LISTINGS[listing][0] if listing in LISTINGS else listing.split("_")[0]
    state_dict = fake_state_dict(read_listing(listing))
    claims = [name for name, arch in ARCHS.items() if arch.detect(state_dict) is not None]
    assert claims == [expected]


def test_aginggan_refuses_a_cyclegan_dict_and_vice_versa() -> None:
    cyclegan = ResnetGenerator(num_features=8, num_blocks=2).state_dict()
    aging = Generator(num_features=8, num_blocks=2).state_dict()
    assert ARCHS["aginggan"].detect(cyclegan) is None
    assert ARCHS["cyclegan"].detect(aging) is None
    assert ARCHS["cyclegan"].detect(cyclegan) == {
        "in_channels": 3,
        "out_channels": 3,
        "num_features": 8,
        "num_blocks": 2,
    }


def test_a_truncated_dict_is_refused() -> None:
    state_dict = dict(ResnetGenerator(num_features=8, num_blocks=2).state_dict())
    del state_dict["model.4.bias"]
    assert ARCHS["cyclegan"].detect(state_dict) is None


@pytest.mark.parametrize("model_class", [ResnetGenerator, Generator])
def test_resnet_generators_keep_the_size_and_the_tanh_range(model_class: type) -> None:
    torch.manual_seed(0)
    model = model_class(num_features=8, num_blocks=1).eval()
    assert (model.scale, model.size_multiple) == (1, 4)
    x = torch.rand(2, 3, 36, 44) * 2 - 1
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 3, 36, 44)
    assert y.abs().max() <= 1


def test_unet_generator_keeps_the_size() -> None:
    torch.manual_seed(0)
    model = UnetGenerator(num_features=4, num_downs=5).eval()
    assert (model.scale, model.size_multiple) == (1, 32)
    with torch.no_grad():
        y = model(torch.rand(1, 3, 64, 96) * 2 - 1)
    assert y.shape == (1, 3, 64, 96)
    assert y.abs().max() <= 1


def test_unet_refuses_fewer_than_five_downsamplings() -> None:
    with pytest.raises(ValueError, match="num_downs"):
        UnetGenerator(num_downs=4)


def small_unet() -> UnetGenerator:
    torch.manual_seed(0)
    model = UnetGenerator(num_features=4, num_downs=5, dropout=False).eval()
    for layer in model.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.running_mean.fill_(0.5)
            layer.running_var.fill_(2.0)
    return model


def test_per_image_batchnorm_does_not_mix_images_in_a_batch() -> None:
    model = small_unet()
    set_batchnorm_mode(model, per_image=True)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        together = model(images)
        alone = torch.cat([model(images[:1]), model(images[1:])])
    torch.testing.assert_close(together, alone)


def test_per_image_batchnorm_equals_upstream_train_mode_with_batch_one() -> None:
    model = small_unet()
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    set_batchnorm_mode(model, per_image=True)
    with torch.no_grad():
        ours = model(image)
    set_batchnorm_mode(model, per_image=False)
    model.train()  # dropout is off in this model, so only BatchNorm changes
    with torch.no_grad():
        upstream = model(image)
    torch.testing.assert_close(ours, upstream)


def test_running_stats_mode_reads_running_mean_and_per_image_mode_ignores_it() -> None:
    model = small_unet()
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    set_batchnorm_mode(model, per_image=False)
    with torch.no_grad():
        before = model(image)
        model.model.model[1].model[2].running_mean.fill_(-3.0)
        after = model(image)
    assert not torch.allclose(before, after)

    set_batchnorm_mode(model, per_image=True)
    with torch.no_grad():
        first = model(image)
        model.model.model[1].model[2].running_mean.fill_(7.0)
        second = model(image)
    torch.testing.assert_close(first, second)
