"""Network families: exact published key layouts, detection from keys/shapes, forward shapes."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from imgan.archs import build_model, detect_arch
from imgan.archs.rrdbnet import RRDBNet
from imgan.archs.srresnet import SRResNet
from imgan.archs.srvgg import SRVGGNetCompact
from imgan.errors import ModelError

SHARED = Path(__file__).resolve().parents[2] / "shared"
COMPAT = SHARED / "compat"
REAL_WEIGHTS = SHARED / "weights" / "realesr-animevideov3.pth"

# Published layouts (listing file -> family and the hyperparameters it was derived from).
LISTINGS = {
    "rrdbnet_x4": ("rrdbnet", {"num_features": 64, "num_blocks": 23, "num_grow": 32, "scale": 4}),
    "rrdbnet_x2": ("rrdbnet", {"num_features": 64, "num_blocks": 23, "num_grow": 32, "scale": 2}),
    "rrdbnet_x4_6b": ("rrdbnet", {"num_features": 64, "num_blocks": 6, "num_grow": 32, "scale": 4}),
    "srvgg_x4_conv32": ("srvgg", {"num_features": 64, "num_conv": 32, "scale": 4, "act": "prelu"}),
    "srvgg_x4_conv16": ("srvgg", {"num_features": 64, "num_conv": 16, "scale": 4, "act": "prelu"}),
    "realesr-animevideov3": (
        "srvgg",
        {"num_features": 64, "num_conv": 16, "scale": 4, "act": "prelu"},
    ),
}
RGB = {"in_channels": 3, "out_channels": 3}


def read_listing(path: Path) -> dict[str, tuple[int, ...]]:
    """``key<TAB>(shape)<TAB>dtype`` lines -> {key: shape}, skipping '#' lines and the
    ``params.`` / ``params_ema.`` wrapper prefix some listings of whole files carry."""
    shapes = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, shape = line.split("\t")[:2]
        for prefix in ("params_ema.", "params."):
            key = key.removeprefix(prefix)
        shapes[key] = tuple(ast.literal_eval(shape))
    return shapes


def fake_state_dict(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    # Zero-strided views: the full 16M-parameter layouts cost no memory.
    return {key: torch.zeros(()).expand(shape) for key, shape in shapes.items()}


def state_shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


@pytest.fixture(scope="module", params=sorted(LISTINGS))
def listing(request: pytest.FixtureRequest) -> tuple[str, dict[str, tuple[int, ...]]]:
    path = COMPAT / f"{request.param}.keys.txt"
    if not path.is_file():
        pytest.skip(f"{path} not available (needs ../shared/compat)")
    return request.param, read_listing(path)


def test_listing_is_detected_with_its_published_hyperparameters(listing) -> None:
    name, shapes = listing
    arch, params = detect_arch(fake_state_dict(shapes))
    assert (arch, params) == (LISTINGS[name][0], {**RGB, **LISTINGS[name][1]})


def test_every_upscaler_listing_in_compat_is_covered() -> None:
    if not COMPAT.is_dir():
        pytest.skip(f"{COMPAT} not available")
    patterns = ("rrdbnet_*.keys.txt", "srvgg_*.keys.txt", "realesr*.keys.txt")
    found = {path.name.removesuffix(".keys.txt") for p in patterns for path in COMPAT.glob(p)}
    assert found <= set(LISTINGS)


def test_model_built_from_detection_has_exactly_the_published_keys_and_shapes(listing) -> None:
    _, shapes = listing
    model = build_model(*detect_arch(fake_state_dict(shapes)))
    assert state_shapes(model) == shapes
    model.load_state_dict(fake_state_dict(shapes), strict=True)


# --- the real published checkpoint ---------------------------------------------------------


@pytest.fixture(scope="module")
def animevideov3() -> dict[str, torch.Tensor]:
    if not REAL_WEIGHTS.is_file():
        pytest.skip(f"{REAL_WEIGHTS} not available (needs ../shared/weights)")
    return torch.load(REAL_WEIGHTS, map_location="cpu", weights_only=True)["params"]


def test_real_animevideov3_loads_strictly_and_is_detected(animevideov3) -> None:
    arch, params = detect_arch(animevideov3)
    assert arch == "srvgg"
    assert (params["num_conv"], params["scale"], params["act"]) == (16, 4, "prelu")
    SRVGGNetCompact(num_conv=16).load_state_dict(animevideov3, strict=True)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / F.mse_loss(a.clamp(0, 1), b).item())


def mean_gradient(images: torch.Tensor) -> float:
    """Mean absolute difference between neighbouring pixels: a crude sharpness figure."""
    rows = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    cols = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    return (rows + cols).item()


def test_real_animevideov3_is_a_trained_upscaler(animevideov3) -> None:
    from skimage import data

    photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float().div(255)[None]
    high = photo[:, :, 0:256, 128:384]  # head and shoulders
    low = F.avg_pool2d(high, 4)  # the 64x64 input
    model = SRVGGNetCompact(num_conv=16)
    model.load_state_dict(animevideov3, strict=True)
    with torch.no_grad():
        upscaled = model.eval()(low)
    nearest = F.interpolate(low, scale_factor=4, mode="nearest")

    assert upscaled.shape == (1, 3, 256, 256)
    # Faithful to its input once area-downscaled again (measured: 30.6 dB) ...
    assert psnr(F.avg_pool2d(upscaled, 4), low) > 28
    # ... sharper than nearest-neighbour blocks (measured: 1.5x) ...
    assert mean_gradient(upscaled) > 1.2 * mean_gradient(nearest)
    # ... and closer to the real photo (measured: +0.8 dB; random weights score -0.9 dB).
    assert psnr(upscaled, high) > psnr(nearest, high) + 0.4


# --- tiny random networks (every family's forward shapes: tests/test_arch_registry.py) ---------

TINY_CONFIGS = {
    "rrdbnet": ({"num_features": 8, "num_blocks": 1, "num_grow": 4}, (1, 2, 4)),
    "srresnet": ({"num_features": 8, "num_blocks": 1}, (2, 3, 4)),
    "srvgg": ({"num_features": 8, "num_conv": 1}, (2, 4)),
}
TINY = [
    pytest.param(arch, {**params, "scale": scale}, id=f"{arch}-x{scale}")
    for arch, (params, scales) in TINY_CONFIGS.items()
    for scale in scales
]


def test_srvgg_learns_a_residual_over_nearest_upsampling() -> None:
    model = SRVGGNetCompact(num_features=8, num_conv=1, scale=4)
    torch.nn.init.zeros_(model.body[-1].weight)
    torch.nn.init.zeros_(model.body[-1].bias)
    images = torch.rand(1, 3, 5, 7)
    with torch.no_grad():
        out = model(images)
    assert torch.equal(out, F.interpolate(images, scale_factor=4, mode="nearest"))


def test_srresnet_learns_a_residual_over_bilinear_upsampling() -> None:
    model = SRResNet(num_features=8, num_blocks=1, scale=3)
    torch.nn.init.zeros_(model.conv_last.weight)
    torch.nn.init.zeros_(model.conv_last.bias)
    images = torch.rand(1, 3, 5, 7)
    with torch.no_grad():
        out = model(images)
    expected = F.interpolate(images, scale_factor=3, mode="bilinear", align_corners=False)
    assert torch.allclose(out, expected)


def test_models_do_not_clamp_their_output() -> None:
    model = SRVGGNetCompact(num_features=8, num_conv=1, scale=2)
    with torch.no_grad():
        out = model(torch.full((1, 3, 4, 4), 5.0))
    assert out.max() > 1


@pytest.mark.parametrize(("scale", "multiple"), [(1, 4), (2, 2), (4, 1)])
def test_rrdbnet_size_multiple_follows_its_pixel_unshuffle(scale: int, multiple: int) -> None:
    assert RRDBNet(num_features=8, num_blocks=1, num_grow=4, scale=scale).size_multiple == multiple


def test_srvgg_and_srresnet_take_any_size() -> None:
    assert SRVGGNetCompact(num_features=8, num_conv=1).size_multiple == 1
    assert SRResNet(num_features=8, num_blocks=1).size_multiple == 1


@pytest.mark.parametrize("act", ["prelu", "relu", "lrelu"])
def test_srvgg_activation_choice_only_prelu_has_weights(act: str) -> None:
    model = SRVGGNetCompact(num_features=8, num_conv=2, act=act)
    assert ("body.1.weight" in model.state_dict()) == (act == "prelu")
    biases = [key for key in model.state_dict() if key.endswith(".bias")]
    assert biases == [f"body.{i}.bias" for i in (0, 2, 4, 6)]


@pytest.mark.parametrize(
    ("scale", "keys"), [(2, {"upconv1"}), (3, {"upconv1"}), (4, {"upconv1", "upconv2"})]
)
def test_srresnet_upsampling_convs_per_scale(scale: int, keys: set[str]) -> None:
    model = SRResNet(num_features=8, num_blocks=2, scale=scale)
    assert {k.split(".")[0] for k in model.state_dict() if k.startswith("upconv")} == keys
    assert model.upconv1.out_channels == 8 * (4 if scale == 4 else scale**2)


# --- detection round trips and refusals -----------------------------------------------------


@pytest.mark.parametrize(("arch", "params"), TINY)
def test_detection_reads_back_the_params_a_model_was_built_with(arch: str, params: dict) -> None:
    state = build_model(arch, params).state_dict()
    expected = {**RGB, **params, **({"act": "prelu"} if arch == "srvgg" else {})}
    assert detect_arch(state) == (arch, expected)


def test_unrelated_keys_are_not_recognised() -> None:
    state = {
        "model.1.weight": torch.rand(8, 3, 7, 7),
        "model.1.bias": torch.rand(8),
        "fc.weight": torch.rand(4, 4),
    }
    with pytest.raises(ModelError, match="not a checkpoint imgan recognises.*rrdbnet, srvgg"):
        detect_arch(state)


def test_a_still_wrapped_checkpoint_is_not_recognised() -> None:
    state = {"params": SRVGGNetCompact(num_features=8, num_conv=1).state_dict()}
    with pytest.raises(ModelError, match="first keys: params"):
        detect_arch(state)


def test_rrdbnet_with_an_extra_upsampling_stage_is_refused() -> None:
    state = RRDBNet(num_features=8, num_blocks=1, num_grow=4).state_dict()
    state["conv_up3.weight"] = torch.zeros(8, 8, 3, 3)
    with pytest.raises(ModelError):
        detect_arch(state)


def test_srvgg_without_prelu_weights_is_not_guessed() -> None:
    state = SRVGGNetCompact(num_features=8, num_conv=1, act="lrelu").state_dict()
    with pytest.raises(ModelError):
        detect_arch(state)


# --- build_model errors ---------------------------------------------------------------------


def test_unknown_arch_is_a_model_error_listing_known_ones() -> None:
    with pytest.raises(ModelError, match="unknown architecture 'esrgan'.*rrdbnet, srvgg"):
        build_model("esrgan", {})


def test_unknown_param_is_a_model_error_naming_it() -> None:
    with pytest.raises(ModelError, match="num_feat .*rrdbnet"):
        build_model("rrdbnet", {"num_feat": 64})


@pytest.mark.parametrize(
    ("arch", "params"),
    [
        ("rrdbnet", {"scale": 3}),
        ("srresnet", {"scale": 1}),
        ("srvgg", {"act": "gelu"}),
        ("srvgg", {"in_channels": 1, "out_channels": 3}),
        ("rrdbnet", {"num_blocks": 0}),
    ],
)
def test_unsupported_values_are_model_errors(arch: str, params: dict) -> None:
    with pytest.raises(ModelError, match=f"cannot build '{arch}'"):
        build_model(arch, params)
