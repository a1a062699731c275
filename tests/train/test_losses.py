"""Training losses: closed-form values of the pure functions, and the VGG19 perceptual loss
with random weights (never downloaded here)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.vgg import cfgs, make_layers

from imgan.errors import DownloadError, ModelError, OfflineError, UsageError
from imgan.train import losses
from imgan.train.losses import PerceptualLoss, gan_loss, pixel_loss, relativistic_loss

LOG2 = math.log(2.0)


@pytest.fixture(scope="module")
def random_vgg19() -> dict[str, torch.Tensor]:
    """A random-weight state dict in torchvision's vgg19 layout (features only, plus one extra key)."""
    torch.manual_seed(0)
    features = make_layers(cfgs["E"], batch_norm=False)
    state = {f"features.{key}": value for key, value in features.state_dict().items()}
    state["classifier.6.bias"] = torch.zeros(1000)  # the real file has a classifier: it is ignored
    return state


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, 32, 32, generator=generator), torch.rand(2, 3, 32, 32, generator=generator)


# --------------------------------------------------------------------------------------------
# pixel and GAN losses


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("l1", 0.5), ("l2", 0.25), ("mse", 0.25), ("charbonnier", math.sqrt(0.25 + 1e-6))],
)
def test_pixel_loss_of_a_constant_half_error(kind: str, expected: float) -> None:
    prediction, target = torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.5)
    assert pixel_loss(prediction, target, kind=kind).item() == pytest.approx(expected, rel=1e-6)


def test_charbonnier_is_eps_for_identical_images() -> None:
    image = torch.rand(1, 3, 4, 4)
    assert pixel_loss(image, image, kind="charbonnier").item() == pytest.approx(1e-3)


def test_unknown_pixel_loss_names_the_choices() -> None:
    with pytest.raises(UsageError, match="use one of l1, l2, mse, charbonnier"):
        pixel_loss(torch.zeros(1), torch.zeros(1), kind="l3")


def test_vanilla_gan_loss_is_binary_cross_entropy_on_logits() -> None:
    logits = torch.tensor([-2.0, 0.0, 3.0])
    # -log(sigmoid(x)) = softplus(-x); -log(1 - sigmoid(x)) = softplus(x)
    assert gan_loss(logits, real=True).item() == pytest.approx(F.softplus(-logits).mean().item())
    assert gan_loss(logits, real=False).item() == pytest.approx(F.softplus(logits).mean().item())
    assert gan_loss(torch.zeros(5), real=True).item() == pytest.approx(LOG2)


def test_lsgan_loss_is_squared_distance_to_the_label() -> None:
    logits = torch.tensor([1.0, 3.0])
    assert gan_loss(logits, real=True, kind="lsgan").item() == pytest.approx(2.0)  # (0 + 4) / 2
    assert gan_loss(logits, real=False, kind="lsgan").item() == pytest.approx(5.0)  # (1 + 9) / 2


def test_hinge_loss_for_the_discriminator_and_the_generator() -> None:
    logits = torch.tensor([-2.0, 0.5, 2.0])
    assert gan_loss(logits, real=True, kind="hinge").item() == pytest.approx((3.0 + 0.5 + 0.0) / 3)
    assert gan_loss(logits, real=False, kind="hinge").item() == pytest.approx((0.0 + 1.5 + 3.0) / 3)
    generator = gan_loss(logits, real=True, kind="hinge", for_discriminator=False)
    assert generator.item() == pytest.approx(-0.5 / 3)


def test_the_generator_loss_must_target_real() -> None:
    with pytest.raises(ValueError, match="real=True"):
        gan_loss(torch.zeros(2), real=False, for_discriminator=False)


def test_unknown_gan_loss_names_the_choices() -> None:
    with pytest.raises(UsageError, match="vanilla, lsgan, hinge, wgan"):
        gan_loss(torch.zeros(2), real=True, kind="wasserstein")


def test_relativistic_loss_is_log2_when_real_and_fake_look_alike() -> None:
    logits = torch.full((4, 1), 0.3)
    assert relativistic_loss(logits, logits, for_generator=False).item() == pytest.approx(LOG2)
    assert relativistic_loss(logits, logits, for_generator=True).item() == pytest.approx(LOG2)


def test_relativistic_loss_matches_esrgan_formula() -> None:
    real = torch.tensor([[2.0], [1.0]])
    fake = torch.tensor([[-1.0], [0.0]])
    real_vs_fake = real - fake.mean()  # [2.5, 1.5]
    fake_vs_real = fake - real.mean()  # [-2.5, -1.5]
    discriminator = 0.5 * (F.softplus(-real_vs_fake).mean() + F.softplus(fake_vs_real).mean())
    generator = 0.5 * (F.softplus(real_vs_fake).mean() + F.softplus(-fake_vs_real).mean())
    assert relativistic_loss(real, fake, for_generator=False).item() == pytest.approx(discriminator.item())
    assert relativistic_loss(real, fake, for_generator=True).item() == pytest.approx(generator.item())
    assert generator.item() > 2.0 > 0.2 > discriminator.item()  # the discriminator is winning


def test_relativistic_generator_loss_treats_real_logits_as_constants() -> None:
    real = torch.randn(4, 1, requires_grad=True)
    fake = torch.randn(4, 1, requires_grad=True)
    relativistic_loss(real, fake, for_generator=True).backward()
    assert real.grad is None
    assert fake.grad is not None and fake.grad.abs().sum() > 0


# --------------------------------------------------------------------------------------------
# perceptual loss


def test_vgg19_layer_names_follow_torchvision_indices() -> None:
    assert len(losses.VGG19_LAYERS) == 37
    assert losses.VGG19_LAYERS.index("conv1_2") == 2
    assert losses.VGG19_LAYERS.index("conv3_4") == 16
    assert losses.VGG19_LAYERS.index("conv5_4") == 34
    assert losses.VGG19_LAYERS[-1] == "pool5"


def test_perceptual_loss_keeps_vgg_only_up_to_the_last_needed_layer(random_vgg19: dict) -> None:
    shallow = PerceptualLoss(layer_weights={"conv2_2": 1.0}, state_dict=random_vgg19)
    full = PerceptualLoss(state_dict=random_vgg19)  # Real-ESRGAN's layers, up to conv5_4
    assert len(shallow.features) == 8
    assert len(full.features) == 35
    assert full.layer_weights == {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}
    assert torch.equal(shallow.features[7].weight, random_vgg19["features.7.weight"])


def test_perceptual_features_have_vgg_shapes_and_are_taken_before_the_relu(
    random_vgg19: dict, images: tuple[torch.Tensor, torch.Tensor]
) -> None:
    loss = PerceptualLoss(state_dict=random_vgg19)
    features = loss.extract(images[0])
    shapes = {name: tuple(value.shape) for name, value in features.items()}
    assert shapes == {
        "conv1_2": (2, 64, 32, 32), "conv2_2": (2, 128, 16, 16), "conv3_4": (2, 256, 8, 8),
        "conv4_4": (2, 512, 4, 4), "conv5_4": (2, 512, 2, 2),
    }
    assert features["conv1_2"].min() < 0  # pre-activation: negatives survive


def test_perceptual_loss_normalises_with_imagenet_statistics(random_vgg19: dict) -> None:
    loss = PerceptualLoss(layer_weights={"conv1_1": 1.0}, state_dict=random_vgg19)
    grey = torch.full((1, 3, 8, 8), 0.5)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = F.conv2d((grey - mean) / std, random_vgg19["features.0.weight"],
                        random_vgg19["features.0.bias"], padding=1)
    torch.testing.assert_close(loss.extract(grey)["conv1_1"], expected)


def test_perceptual_loss_is_zero_for_identical_images_and_positive_otherwise(
    random_vgg19: dict, images: tuple[torch.Tensor, torch.Tensor]
) -> None:
    loss = PerceptualLoss(state_dict=random_vgg19)
    first, second = images
    assert loss(first, first.clone()).item() == 0.0
    assert loss(first, second).item() > 0.0


def test_perceptual_loss_sends_gradients_to_the_prediction_only(
    random_vgg19: dict, images: tuple[torch.Tensor, torch.Tensor]
) -> None:
    loss = PerceptualLoss(state_dict=random_vgg19)
    prediction = images[0].clone().requires_grad_(True)
    target = images[1].clone().requires_grad_(True)
    loss(prediction, target).backward()
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0
    assert target.grad is None
    assert all(not parameter.requires_grad and parameter.grad is None for parameter in loss.parameters())


def test_perceptual_vgg_stays_frozen_in_eval_mode(random_vgg19: dict) -> None:
    loss = PerceptualLoss(layer_weights={"conv1_2": 1.0}, state_dict=random_vgg19)
    loss.train()
    assert loss.training and not loss.features.training
    assert not any(parameter.requires_grad for parameter in loss.parameters())
    assert sorted(loss.state_dict()) == [
        "features.0.bias", "features.0.weight", "features.2.bias", "features.2.weight",
    ]


def test_perceptual_loss_rejects_unknown_layers(random_vgg19: dict) -> None:
    with pytest.raises(UsageError, match="conv6_1: use VGG19 layer names"):
        PerceptualLoss(layer_weights={"conv6_1": 1.0}, state_dict=random_vgg19)


def test_perceptual_loss_rejects_weights_of_another_network(random_vgg19: dict) -> None:
    wrong = dict(random_vgg19)
    wrong["features.2.weight"] = torch.zeros(64, 64, 1, 1)
    with pytest.raises(ModelError, match="do not fit torchvision's vgg19"):
        PerceptualLoss(layer_weights={"conv1_2": 1.0}, state_dict=wrong)


def test_offline_without_cached_vgg_says_how_to_train_without_it(
    imgan_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMGAN_OFFLINE", "1")
    with pytest.raises(OfflineError) as caught:
        PerceptualLoss()
    message = str(caught.value)
    assert "vgg19-dcbb9e9d.pth" in message
    assert message.endswith("; to train without it pass --perceptual 0")


def test_failed_vgg_download_says_how_to_train_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from imgan import hub

    def fail(spec: hub.WeightSpec, **_: object) -> Path:
        raise DownloadError(f"could not download model '{spec.name}' (HTTP 503)")

    monkeypatch.setattr(hub, "fetch", fail)
    with pytest.raises(DownloadError, match=r"HTTP 503\); to train without it pass --perceptual 0$"):
        PerceptualLoss()


def test_cached_vgg_loads_through_the_hub(
    imgan_home: Path, monkeypatch: pytest.MonkeyPatch, random_vgg19: dict,
    images: tuple[torch.Tensor, torch.Tensor],
) -> None:
    from imgan import hub

    spec = hub.get_spec("vgg19-imagenet")
    path = hub.cached_path(spec)
    path.parent.mkdir(parents=True)
    torch.save(random_vgg19, path)
    monkeypatch.setattr(hub, "_cached_problem", lambda *_: None)  # the real file is 575 MB
    monkeypatch.setenv("IMGAN_OFFLINE", "1")

    loss = PerceptualLoss(layer_weights={"conv2_2": 1.0})
    reference = PerceptualLoss(layer_weights={"conv2_2": 1.0}, state_dict=random_vgg19)
    assert loss(*images).item() == pytest.approx(reference(*images).item())
