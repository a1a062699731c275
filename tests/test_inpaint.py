"""imgan inpaint as a user meets it: masks and their pairing, what changes and what stays bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from imgan.archs import build_model
from imgan.cli import app
from imgan.engine import Engine
from imgan.io import read_picture
from imgan.models import load_model
from imgan.tasks.inpaint import inpaint_picture

runner = CliRunner()
SIZE = (48, 40)  # width, height


def invoke(*args: str | Path):  # noqa: ANN201 - click Result
    return runner.invoke(app, [str(a) for a in args])


def photo(path: Path, *, size: tuple[int, int] = SIZE, mode: str = "RGB", seed: int = 0) -> Path:
    """A textured 8-bit photo stand-in (noise on gradients), RGBA with a varied alpha."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    rgb = np.stack([x * 5, y * 6, (x + y) * 3], -1) % 256 + rng.integers(0, 40, (size[1], size[0], 3))
    pixels = np.clip(rgb, 0, 255).astype(np.uint8)
    if mode == "RGBA":
        pixels = np.concatenate([pixels, rng.integers(1, 256, (size[1], size[0], 1)).astype(np.uint8)], -1)
    Image.fromarray(pixels, mode).save(path)
    return path


def mask(path: Path, boxes: list[tuple[int, int, int, int]], *, size: tuple[int, int] = SIZE) -> Path:
    """White rectangles (x, y, w, h) on black."""
    pixels = np.zeros((size[1], size[0]), np.uint8)
    for x, y, w, h in boxes:
        pixels[y : y + h, x : x + w] = 255
    Image.fromarray(pixels).save(path)
    return path


def pixels(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.int64)


def changed(before: Path, after: Path) -> np.ndarray:
    """(H,W) bool: where any channel differs."""
    difference = pixels(before) != pixels(after)
    return difference.any(-1) if difference.ndim == 3 else difference


def box_area(boxes: list[tuple[int, int, int, int]], *, size: tuple[int, int] = SIZE) -> np.ndarray:
    area = np.zeros((size[1], size[0]), bool)
    for x, y, w, h in boxes:
        area[y : y + h, x : x + w] = True
    return area


@pytest.fixture(scope="module")
def ffc_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight imgan inpainter saved as a plain state dict."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "my_inpainter.pth"
    torch.save(build_model("inpaint_ffc", {"num_features": 4, "num_blocks": 1}).state_dict(), path)
    return path


# --------------------------------------------------------------------------------------------
# what changes, what stays


@pytest.mark.parametrize("model", ["telea", "ffc"])
def test_only_the_hole_changes_and_everything_else_is_bit_identical(tmp_path: Path, model: str,
                                                                   ffc_file: Path) -> None:
    source, boxes = photo(tmp_path / "p.png"), [(10, 8, 12, 9), (30, 25, 6, 10)]
    result = invoke("inpaint", source, "--mask", mask(tmp_path / "m.png", boxes),
                    "-m", "telea" if model == "telea" else ffc_file, "-q")
    assert result.exit_code == 0, result.output
    target = tmp_path / "p_inpainted.png"
    assert result.stdout.strip() == str(target)
    difference = changed(source, target)
    assert not difference[~box_area(boxes)].any()
    assert difference[box_area(boxes)].mean() > 0.5  # the hole was filled with something else


def test_sixteen_bit_values_outside_the_hole_come_back_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    source = tmp_path / "deep.png"
    cv2.imwrite(str(source), rng.integers(0, 65536, (40, 48, 3)).astype(np.uint16))
    result = invoke("inpaint", source, "--box", "5,5,10,10", "-m", "telea", "-q")
    assert result.exit_code == 0, result.output
    written = cv2.imread(str(tmp_path / "deep_inpainted.png"), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16
    outside = ~box_area([(5, 5, 10, 10)])
    assert np.array_equal(written[outside], cv2.imread(str(source), cv2.IMREAD_UNCHANGED)[outside])


def test_rgba_keeps_its_alpha_and_its_colours_outside_the_grown_feathered_hole(tmp_path: Path) -> None:
    source = photo(tmp_path / "a.png", mode="RGBA")
    result = invoke("inpaint", source, "--box", "20,15,6,6", "--dilate", "2", "--feather", "3", "-m", "telea", "-q")
    assert result.exit_code == 0, result.output
    before, after = pixels(source), pixels(tmp_path / "a_inpainted.png")
    assert after.shape == (40, 48, 4) and np.array_equal(before[..., 3], after[..., 3])
    y, x = np.mgrid[0:40, 0:48]
    dx, dy = np.maximum(0, np.maximum(20 - x, x - 25)), np.maximum(0, np.maximum(15 - y, y - 20))
    reach = np.hypot(dx, dy) <= 2 + 3  # 5 px from the box: grown 2, feathered 3
    assert np.array_equal(before[~reach], after[~reach])
    assert (before[reach] != after[reach]).any(-1).mean() > 0.5


def test_the_feather_blends_between_fill_and_photo(tmp_path: Path) -> None:
    hole = torch.zeros(1, 1, 40, 48, dtype=torch.bool)
    hole[..., 15:25, 15:25] = True
    source = photo(tmp_path / "p.png")
    picture = read_picture(source)
    telea = Engine(load_model("telea", task="inpaint"), torch.device("cpu"), tile_size=0)
    hard = inpaint_picture(read_picture(source), hole, telea)
    soft = inpaint_picture(read_picture(source), hole, telea, feather=4)
    band = (soft.rgb - picture.rgb).abs().sum(1)[0, 13, 15:25]  # 2 px above the hole: in the band
    assert torch.equal(hard.rgb[..., 13, :], picture.rgb[..., 13, :]) and bool((band > 0).any())


# --------------------------------------------------------------------------------------------
# what marks the hole


def test_invert_mask_fills_the_black(tmp_path: Path) -> None:
    source = photo(tmp_path / "p.png")
    black_hole = tmp_path / "m.png"
    Image.fromarray(np.where(box_area([(4, 4, 8, 8)]), 0, 255).astype(np.uint8)).save(black_hole)
    assert invoke("inpaint", source, "--mask", black_hole, "--invert-mask", "-m", "telea", "-q").exit_code == 0
    difference = changed(source, tmp_path / "p_inpainted.png")
    assert not difference[~box_area([(4, 4, 8, 8)])].any() and difference[box_area([(4, 4, 8, 8)])].any()


def test_mask_alpha_fills_the_transparent_pixels_and_makes_them_opaque(tmp_path: Path) -> None:
    rgba = np.asarray(Image.open(photo(tmp_path / "p.png"))).copy()
    alpha = np.where(box_area([(10, 10, 8, 8)]), 0, 255).astype(np.uint8)
    rgba[box_area([(10, 10, 8, 8)])] = 0  # what image editors leave under cut-out pixels
    Image.fromarray(np.dstack([rgba, alpha]), "RGBA").save(tmp_path / "cut.png")
    result = invoke("inpaint", tmp_path / "cut.png", "--mask", "alpha", "-m", "telea", "-q")
    assert result.exit_code == 0, result.output
    written = np.asarray(Image.open(tmp_path / "cut_inpainted.png"))
    assert (written[..., 3] == 255).all()
    assert written[box_area([(10, 10, 8, 8)])][:, :3].mean() > 30  # filled from the neighbours, not black
    no_alpha = invoke("inpaint", photo(tmp_path / "q.png"), "--mask", "alpha", "-m", "telea")
    assert no_alpha.exit_code == 1 and "q.png: has no alpha channel" in no_alpha.stderr


def test_an_empty_mask_gives_the_input_back_with_a_warning(tmp_path: Path) -> None:
    source = photo(tmp_path / "p.png")
    result = invoke("inpaint", source, "--mask", mask(tmp_path / "m.png", []), "-m", "telea")
    assert result.exit_code == 0
    assert "marks nothing to fill" in result.stderr
    assert np.array_equal(pixels(source), pixels(tmp_path / "p_inpainted.png"))


def test_a_mask_of_another_size_is_an_error_naming_both_sizes_unless_resized(tmp_path: Path) -> None:
    source, small = photo(tmp_path / "p.png"), mask(tmp_path / "m.png", [(0, 0, 12, 10)], size=(24, 20))
    refused = invoke("inpaint", source, "--mask", small, "-m", "telea")
    assert refused.exit_code == 1
    assert f"its mask {small} is 24x20 but the image is 48x40" in refused.stderr and "--resize-mask" in refused.stderr
    resized = invoke("inpaint", source, "--mask", small, "--resize-mask", "-m", "telea", "-q")
    assert resized.exit_code == 0, resized.output
    difference = changed(source, tmp_path / "p_inpainted.png")
    assert not difference[~box_area([(0, 0, 24, 20)])].any() and difference[:20, :24].mean() > 0.5


# --------------------------------------------------------------------------------------------
# pairing masks with images in a batch


def test_one_mask_serves_every_input(tmp_path: Path) -> None:
    sources = [photo(tmp_path / f"{name}.png", seed=index) for index, name in enumerate("ab")]
    (tmp_path / "shared").mkdir()
    shared = mask(tmp_path / "shared" / "m.png", [(1, 1, 5, 5)])
    result = invoke("inpaint", *sources, "--mask", shared, "-m", "telea", "--json", "-q")
    assert result.exit_code == 0, result.output
    records = sorted((json.loads(line) for line in result.stdout.splitlines()), key=lambda r: r["input"])
    assert [record["mask"] for record in records] == [str(tmp_path / "shared" / "m.png")] * 2
    assert all(record["status"] == "ok" for record in records)


def test_a_mask_folder_is_matched_by_stem(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "masks").mkdir()
    cat, dog = photo(tmp_path / "photos" / "cat.png"), photo(tmp_path / "photos" / "dog.png", seed=1)
    mask(tmp_path / "masks" / "cat.png", [(0, 0, 10, 10)])
    mask(tmp_path / "masks" / "dog.png", [(30, 20, 10, 10)])
    result = invoke("inpaint", tmp_path / "photos", "--mask", tmp_path / "masks", "-o", tmp_path / "out", "-m",
                    "telea", "-q")
    assert result.exit_code == 0, result.output
    assert changed(cat, tmp_path / "out" / "cat_inpainted.png")[:10, :10].any()
    assert not changed(dog, tmp_path / "out" / "dog_inpainted.png")[:10, :10].any()
    assert changed(dog, tmp_path / "out" / "dog_inpainted.png")[20:30, 30:40].any()


def test_a_template_finds_each_mask_beside_its_image_and_a_missing_one_fails_that_image_alone(
        tmp_path: Path) -> None:
    first, second = photo(tmp_path / "one.png"), photo(tmp_path / "two.png", seed=1)
    mask(tmp_path / "one_mask.png", [(2, 2, 8, 8)])  # two.png has no mask
    result = invoke("inpaint", tmp_path, "--mask", "{stem}_mask.png", "-m", "telea")
    assert result.exit_code == 1
    assert (tmp_path / "one_inpainted.png").is_file() and not (tmp_path / "two_inpainted.png").exists()
    assert "two_mask.png" in result.stderr and "no such file" in result.stderr
    assert not (tmp_path / "one_mask_inpainted.png").exists()  # a mask beside its photo is not an input
    assert first.exists() and second.exists()


def test_boxes_need_no_mask_and_add_to_one(tmp_path: Path) -> None:
    source = photo(tmp_path / "p.png")
    result = invoke("inpaint", source, "--mask", mask(tmp_path / "m.png", [(0, 0, 6, 6)]), "--box", "40,30,5,5",
                    "-m", "telea", "-q")
    assert result.exit_code == 0, result.output
    difference = changed(source, tmp_path / "p_inpainted.png")
    assert not difference[~box_area([(0, 0, 6, 6), (40, 30, 5, 5)])].any()
    assert difference[:6, :6].any() and difference[30:35, 40:45].any()


@pytest.mark.parametrize(("args", "problem"), [
    ([], "say what to fill"),
    (["--box", "1,2,3"], "give four integers"),
    (["--box", "1,1,2,2", "--strategy", "tiles"], "--strategy 'tiles'"),
    (["--mask", "alpha", "--invert-mask"], "apply to a mask file"),
])
def test_usage_errors_exit_2_before_any_work(tmp_path: Path, args: list[str], problem: str) -> None:
    result = invoke("inpaint", photo(tmp_path / "p.png"), "-m", "telea", *args)
    assert result.exit_code == 2 and problem in result.stderr
    assert not (tmp_path / "p_inpainted.png").exists()


# --------------------------------------------------------------------------------------------
# strategies


class Recorder(torch.nn.Module):
    """A stand-in inpainter that fills with grey and records the size of every input it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[tuple[int, int]] = []
        self.scale, self.in_channels, self.out_channels, self.size_multiple = 1, 4, 3, 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(tuple(x.shape[-2:]))
        return x[:, :3] * (1 - x[:, 3:]) + 0.5 * x[:, 3:]


def recording_engine(working_size: int) -> tuple[Engine, Recorder]:
    from imgan.descriptor import ModelDescriptor

    recorder = Recorder()
    descriptor = ModelDescriptor(module=recorder, name="recorder", arch="test", task="inpaint", scale=1,
                                 in_channels=4, tileable=False, working_size=working_size)
    return Engine(descriptor, torch.device("cpu"), tile_size=0), recorder


def big_picture(height: int, width: int) -> object:
    from imgan.io import Picture

    return Picture(rgb=torch.rand(1, 3, height, width), alpha=None, bit_depth=8, grayscale=False, icc_profile=None,
                   exif=None, source_format="png", name="big.png")


def test_crop_runs_the_model_on_a_crop_around_each_hole_only() -> None:
    picture = big_picture(2000, 3000)
    original = picture.rgb.clone()
    hole = torch.zeros(1, 1, 2000, 3000, dtype=torch.bool)
    hole[..., 100:140, 200:260] = True
    hole[..., 1500:1520, 2500:2520] = True
    engine, recorder = recording_engine(512)
    result = inpaint_picture(picture, hole, engine, strategy="crop")
    assert sorted(recorder.sizes) == [(84, 84), (104, 124)]  # 20x20 and 40x60 holes, 32 px margins
    assert bool((result.rgb[hole.expand(-1, 3, -1, -1)] == 0.5).all())
    assert torch.equal(result.rgb[~hole.expand(-1, 3, -1, -1)], original[~hole.expand(-1, 3, -1, -1)])


def test_a_crop_larger_than_the_working_size_is_shrunk_to_it() -> None:
    hole = torch.zeros(1, 1, 1200, 1200, dtype=torch.bool)
    hole[..., 300:900, 300:900] = True  # 600 px: a 1200 px crop
    engine, recorder = recording_engine(512)
    inpaint_picture(big_picture(1200, 1200), hole, engine, strategy="crop")
    assert recorder.sizes == [(512, 512)]


def test_resize_runs_the_whole_image_shrunk_and_full_runs_it_as_it_is() -> None:
    hole = torch.zeros(1, 1, 600, 900, dtype=torch.bool)
    hole[..., 10:20, 10:20] = True
    for strategy, expected in (("resize", (341, 512)), ("full", (600, 900))):
        engine, recorder = recording_engine(512)
        result = inpaint_picture(big_picture(600, 900), hole, engine, strategy=strategy)
        assert recorder.sizes == [expected]
        assert result.rgb.shape == (1, 3, 600, 900)
