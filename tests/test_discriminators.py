"""Discriminators: output shapes, published key layouts, spectral norm, size rules, receptive field."""

from __future__ import annotations

import pytest
import torch

from imgan.archs.discriminators import PatchDiscriminator, UNetDiscriminatorSN, VGGStyleDiscriminator


def shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in module.state_dict().items()}


# --------------------------------------------------------------------------------------------
# VGG-style (SRGAN / ESRGAN, BasicSR layout)


@pytest.mark.parametrize("size", [96, 128, 256])
def test_vgg_style_gives_one_logit_per_image(size: int) -> None:
    net = VGGStyleDiscriminator(num_features=8, input_size=size)
    assert net(torch.rand(2, 3, size, size)).shape == (2, 1)


def test_vgg_style_has_basicsr_keys_and_shapes() -> None:
    found = shapes(VGGStyleDiscriminator())
    assert found["conv0_0.weight"] == (64, 3, 3, 3) and "conv0_0.bias" in found
    assert found["conv0_1.weight"] == (64, 64, 4, 4) and "conv0_1.bias" not in found
    assert found["conv1_0.weight"] == (128, 64, 3, 3)
    assert found["conv3_1.weight"] == (512, 512, 4, 4)
    assert found["bn4_1.running_var"] == (512,)
    assert found["linear1.weight"] == (100, 512 * 4 * 4)
    assert found["linear2.weight"] == (1, 100)
    assert not any(key.startswith("conv5") for key in found)


def test_vgg_style_adds_a_sixth_stage_at_256() -> None:
    found = shapes(VGGStyleDiscriminator(input_size=256))
    assert found["conv5_1.weight"] == (512, 512, 4, 4)
    assert found["linear1.weight"] == (100, 512 * 4 * 4)


def test_vgg_style_refuses_other_sizes() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        VGGStyleDiscriminator(input_size=100)
    net = VGGStyleDiscriminator(num_features=8, input_size=128)
    with pytest.raises(ValueError, match="takes 128x128 inputs, got 96x96"):
        net(torch.rand(1, 3, 96, 96))


# --------------------------------------------------------------------------------------------
# U-Net with spectral norm (Real-ESRGAN layout)

_UNET_KEYS = {
    "conv0.weight": (64, 3, 3, 3), "conv0.bias": (64,),
    **{
        f"conv{index}.{part}": shape
        for index, (out, inp, kernel) in {
            1: (128, 64, 4), 2: (256, 128, 4), 3: (512, 256, 4), 4: (256, 512, 3),
            5: (128, 256, 3), 6: (64, 128, 3), 7: (64, 64, 3), 8: (64, 64, 3),
        }.items()
        for part, shape in (
            ("weight_orig", (out, inp, kernel, kernel)), ("weight_u", (out,)), ("weight_v", (inp * kernel * kernel,)),
        )
    },
    "conv9.weight": (1, 64, 3, 3), "conv9.bias": (1,),
}


def test_unet_state_dict_is_the_published_netd_layout() -> None:
    assert shapes(UNetDiscriminatorSN()) == _UNET_KEYS


@pytest.mark.parametrize(("height", "width"), [(32, 32), (40, 72), (24, 8)])
def test_unet_gives_a_logit_per_pixel_for_multiples_of_8(height: int, width: int) -> None:
    net = UNetDiscriminatorSN(num_features=8)
    assert net(torch.rand(2, 3, height, width)).shape == (2, 1, height, width)


def test_unet_without_skips_has_the_same_weights() -> None:
    net = UNetDiscriminatorSN(num_features=8, skip_connection=False)
    assert net(torch.rand(1, 3, 16, 16)).shape == (1, 1, 16, 16)
    assert shapes(net) == shapes(UNetDiscriminatorSN(num_features=8))


def test_unet_refuses_sizes_that_are_not_multiples_of_8() -> None:
    with pytest.raises(ValueError, match="multiples of 8, got 30x32"):
        UNetDiscriminatorSN(num_features=8)(torch.rand(1, 3, 32, 30))


def test_unet_spectral_norm_bounds_the_weights_of_its_inner_convolutions() -> None:
    torch.manual_seed(0)
    net = UNetDiscriminatorSN(num_features=8)
    for name in ("conv1", "conv8"):  # a strided and a head convolution
        conv = getattr(net, name)
        for _ in range(40):  # one power iteration per training forward pass
            conv(torch.zeros(1, conv.in_channels, 4, 4))
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert sigma.item() == pytest.approx(1.0, abs=0.01), name
    assert not hasattr(net.conv0, "weight_orig") and not hasattr(net.conv9, "weight_orig")


# --------------------------------------------------------------------------------------------
# PatchGAN (pix2pix / CycleGAN layout)


def test_patch_gives_30x30_logits_for_256_pixels() -> None:
    assert PatchDiscriminator(num_features=8)(torch.rand(1, 3, 256, 256)).shape == (1, 1, 30, 30)


def test_patch_has_junyanz_keys_with_batch_norm() -> None:
    found = shapes(PatchDiscriminator(in_channels=6))  # pix2pix: input and output stacked
    assert found["model.0.weight"] == (64, 6, 4, 4) and "model.0.bias" in found
    assert found["model.2.weight"] == (128, 64, 4, 4) and "model.2.bias" not in found
    assert found["model.3.running_mean"] == (128,)
    assert found["model.8.weight"] == (512, 256, 4, 4)
    assert found["model.11.weight"] == (1, 512, 4, 4)


def test_patch_with_instance_norm_has_biases_and_no_norm_state() -> None:
    found = shapes(PatchDiscriminator(norm="instance"))
    assert "model.2.bias" in found and "model.8.bias" in found
    assert not any(key.startswith(("model.3.", "model.6.", "model.9.")) for key in found)


def test_patch_logit_sees_a_70x70_patch() -> None:
    torch.manual_seed(0)
    net = PatchDiscriminator(num_features=4).eval()  # eval: batch norm uses running stats, stays local
    image = torch.rand(1, 3, 128, 128, requires_grad=True)
    net(image)[0, 0, 6, 6].backward()
    rows = image.grad.abs().sum(dim=(0, 1, 3)).nonzero()
    cols = image.grad.abs().sum(dim=(0, 1, 2)).nonzero()
    assert (rows.max() - rows.min() + 1).item() == 70
    assert (cols.max() - cols.min() + 1).item() == 70


def test_patch_rejects_an_unknown_norm() -> None:
    with pytest.raises(ValueError, match="batch or instance"):
        PatchDiscriminator(norm="group")
