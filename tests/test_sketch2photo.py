"""sketch2photo's library half: the photo-to-sketch edge detector and the framing around pix2pix."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
import torch

from imgan.archs import build_model
from imgan.archs.pix2pix import set_batchnorm_mode
from imgan.descriptor import ModelDescriptor
from imgan.edges import sketch_from_photo
from imgan.engine import Engine
from imgan.errors import UsageError
from imgan.io import Picture
from imgan.tasks.sketch2photo import WORK_SIZE, prepare_sketch, sketch2photo_picture


def disc(height: int, width: int, *, noise: float = 0.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A white disc on black (1,3,H,W), and each pixel's distance to the disc's true boundary."""
    yy, xx = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    radius = 0.3 * min(height, width)
    centre_distance = ((yy - height / 2) ** 2 + (xx - width / 2) ** 2).sqrt()
    image = (centre_distance < radius).float().expand(1, 3, height, width)
    if noise:
        generator = torch.Generator().manual_seed(seed)
        image = image + noise * torch.randn(image.shape, generator=generator)
    return image.clamp(0.0, 1.0), (centre_distance - radius).abs()


def check_sketch(sketch: torch.Tensor, height: int, width: int) -> None:
    assert sketch.shape == (1, 3, height, width)
    assert sketch.dtype == torch.float32
    assert float(sketch.min()) >= 0.0 and float(sketch.max()) <= 1.0
    assert torch.equal(sketch[:, 0], sketch[:, 1]) and torch.equal(sketch[:, 0], sketch[:, 2])


# --------------------------------------------------------------------------------------------
# sketch_from_photo


@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_disc_gives_a_thin_line_on_its_boundary(noise: float) -> None:
    image, boundary = disc(256, 256, noise=noise)
    sketch = sketch_from_photo(image)
    check_sketch(sketch, 256, 256)
    dark = sketch[0, 0] < 0.5
    circumference = 2 * torch.pi * 0.3 * 256
    # One closed line about 1-2 px wide, all of it on the boundary, the rest white.
    assert 0.8 * circumference < int(dark.sum()) < 3.0 * circumference
    assert float(boundary[dark].max()) <= 2.0
    assert bool((sketch[0, 0][boundary > 4.0] > 0.99).all())
    # The whole boundary is drawn: every boundary pixel has ink within 2 px.
    on_boundary = boundary < 0.5
    near_ink = torch.nn.functional.max_pool2d(dark[None, None].float(), 5, stride=1, padding=2)[0, 0] > 0
    assert float(near_ink[on_boundary].float().mean()) > 0.97


def test_rectangle_edges_and_colour_boundary() -> None:
    image = torch.zeros(1, 3, 200, 300)
    image[:, 0] = 0.8  # red background
    image[:, 1, 50:150, 100:200] = 0.5  # a rectangle of about the same brightness, different colour
    image[:, 0, 50:150, 100:200] = 0.35
    sketch = sketch_from_photo(image)
    check_sketch(sketch, 200, 300)
    dark = sketch[0, 0] < 0.5
    rows, cols = torch.nonzero(dark, as_tuple=True)
    assert len(rows) > 300
    to_top = (rows - 50).abs().minimum((rows - 150).abs())
    to_side = (cols - 100).abs().minimum((cols - 200).abs())
    assert bool((to_top.minimum(to_side) <= 2).all())


def test_noisy_flat_image_gives_few_edges() -> None:
    generator = torch.Generator().manual_seed(3)
    image = (0.5 + 0.08 * torch.randn(1, 3, 240, 320, generator=generator)).clamp(0, 1)
    sketch = sketch_from_photo(image)
    check_sketch(sketch, 240, 320)
    assert float((sketch < 0.5).float().mean()) < 0.005
    assert bool((sketch_from_photo(torch.full((1, 3, 64, 64), 0.3)) == 1.0).all())


def test_deterministic() -> None:
    image, _ = disc(181, 243, noise=0.05)
    assert torch.equal(sketch_from_photo(image), sketch_from_photo(image.clone()))


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (7, 300), (40, 40), (33, 17), (157, 301), (1000, 250)])
def test_any_size(size: tuple[int, int]) -> None:
    height, width = size
    image, boundary = disc(height, width)
    sketch = sketch_from_photo(image)
    check_sketch(sketch, height, width)
    if min(height, width) >= 17:
        dark = sketch[0, 0] < 0.5
        assert bool(dark.any())
        # Lines scale with the image: within 2 px of the boundary at a 256 px frame.
        assert float(boundary[dark].max()) <= 2.0 * max(1.0, max(height, width) / 256)


def test_input_is_not_modified_and_grey_input_is_accepted() -> None:
    image, _ = disc(64, 64)
    before = image.clone()
    sketch_from_photo(image)
    assert torch.equal(image, before)
    assert torch.equal(sketch_from_photo(image[:, :1]), sketch_from_photo(image))


# --------------------------------------------------------------------------------------------
# sketch2photo_picture


@pytest.fixture(scope="module")
def engine() -> Engine:
    torch.manual_seed(0)
    module = build_model("pix2pix", {"num_features": 8, "num_downs": 8})
    descriptor = ModelDescriptor(module=module, name="t", arch="pix2pix", task="sketch2photo", scale=1,
                                 size_multiple=256, value_range=(-1.0, 1.0), tileable=False)
    engine = Engine(descriptor, torch.device("cpu"), tile_size=0)
    set_batchnorm_mode(module, per_image=True)  # upstream test behaviour
    return engine


@pytest.fixture
def seen(engine: Engine) -> Iterator[list[torch.Tensor]]:
    """The inputs the model is called with, in its own [-1,1] range."""
    inputs: list[torch.Tensor] = []
    handle = engine.descriptor.module.register_forward_hook(lambda _m, args, _out: inputs.append(args[0].clone()))
    yield inputs
    handle.remove()


def picture(height: int, width: int, *, alpha: bool = False, dark_background: bool = False) -> Picture:
    rgb = torch.ones(1, 3, height, width)
    rgb[..., height // 4: height // 2, width // 4: width // 2] = 0.0  # a dark square "line"
    if dark_background:
        rgb = 1.0 - rgb
    return Picture(rgb=rgb, alpha=torch.ones(1, 1, height, width) if alpha else None, bit_depth=8,
                   grayscale=True, icc_profile=None, exif=None, source_format="png", name="t.png")


@pytest.mark.parametrize(("height", "width"), [(157, 301), (250, 1000), (40, 40)])
def test_output_has_input_size_and_model_sees_size(engine: Engine, seen: list[torch.Tensor],
                                                    height: int, width: int) -> None:
    photo, sketch = sketch2photo_picture(picture(height, width), engine)
    assert sketch is None
    assert photo.rgb.shape == (1, 3, height, width)
    assert photo.rgb.dtype == torch.float32
    assert float(photo.rgb.min()) >= 0.0 and float(photo.rgb.max()) <= 1.0
    assert photo.grayscale is False and photo.name == "t.png"
    assert len(seen) == 1
    assert tuple(seen[0].shape[-2:]) == (WORK_SIZE, WORK_SIZE)


def test_white_padding_is_centred(engine: Engine, seen: list[torch.Tensor]) -> None:
    sketch2photo_picture(picture(100, 200), engine, size=256)
    model_input = seen[0]
    assert model_input.shape == (1, 3, 256, 256)
    # 100x200 -> 128x256, padded with 64 rows of white (+1 in the model's range) above and below.
    assert bool((model_input[..., :64, :] == 1.0).all()) and bool((model_input[..., 192:, :] == 1.0).all())
    assert float(model_input[..., 64:192, :].min()) < 0.0  # the sketch's black line is in the middle


def test_native_size_is_padded_not_resized(engine: Engine, seen: list[torch.Tensor]) -> None:
    photo, _ = sketch2photo_picture(picture(157, 301), engine, size=0)
    assert photo.rgb.shape == (1, 3, 157, 301)
    assert tuple(seen[0].shape[-2:]) == (256, 512)
    # 301 -> 512: 105 columns left, 106 right; 157 -> 256: 49 rows above, 50 below.
    assert bool((seen[0][..., :, :105] == 1.0).all()) and bool((seen[0][..., :, 406:] == 1.0).all())
    assert bool((seen[0][..., :49, :] == 1.0).all()) and bool((seen[0][..., 206:, :] == 1.0).all())
    assert float(seen[0][..., 49:206, 105:406].min()) == -1.0


def test_larger_size(engine: Engine, seen: list[torch.Tensor]) -> None:
    photo, _ = sketch2photo_picture(picture(300, 200), engine, size=320)
    assert photo.rgb.shape == (1, 3, 300, 200)
    assert tuple(seen[0].shape[-2:]) == (512, 256)


def test_white_on_black_sketch_is_inverted(engine: Engine, seen: list[torch.Tensor]) -> None:
    sketch2photo_picture(picture(256, 256, dark_background=True), engine)
    assert float(seen[0].mean()) > 0.0  # mostly white again
    inverted = prepare_sketch(picture(64, 64, dark_background=True).rgb)
    assert torch.equal(inverted, picture(64, 64).rgb)


def test_alpha_is_kept_and_transparent_is_white(engine: Engine, seen: list[torch.Tensor]) -> None:
    source = picture(64, 64, alpha=True)
    source = dataclasses.replace(source, rgb=torch.zeros(1, 3, 64, 64),
                                 alpha=torch.zeros(1, 1, 64, 64))  # black, fully transparent
    photo, _ = sketch2photo_picture(source, engine)
    assert photo.alpha is source.alpha
    assert bool((seen[0] == 1.0).all())  # transparent black is blank paper, not a black sketch


def test_from_photo_returns_the_sketch(engine: Engine, seen: list[torch.Tensor]) -> None:
    image, _ = disc(157, 301)
    source = dataclasses.replace(picture(157, 301), rgb=image, grayscale=False)
    photo, sketch = sketch2photo_picture(source, engine, from_photo=True)
    assert photo.rgb.shape == (1, 3, 157, 301)
    assert sketch is not None and sketch.grayscale and sketch.alpha is None
    check_sketch(sketch.rgb, 157, 301)
    assert torch.equal(sketch.rgb, sketch_from_photo(image))
    assert 0.0 < float((sketch.rgb < 0.5).float().mean()) < 0.1
    assert tuple(seen[0].shape[-2:]) == (256, 256)


@pytest.mark.parametrize("size", [-1, 1, 32, 63, 100, 255])
def test_bad_size_is_a_usage_error(engine: Engine, size: int) -> None:
    with pytest.raises(UsageError, match="--size"):
        sketch2photo_picture(picture(64, 64), engine, size=size)
