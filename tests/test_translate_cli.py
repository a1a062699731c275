"""The translation commands as a user meets them: stylize, sketch2photo, age."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from imgan.archs import build_model
from imgan.archs.srvgg import SRVGGNetCompact
from imgan.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def style_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight CycleGAN generator saved as upstream saves it (a plain state dict)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "my_style.pth"
    torch.save(build_model("cyclegan", {"num_features": 8, "num_blocks": 1}).state_dict(), path)
    return path


def photo(path: Path, size: tuple[int, int] = (37, 29), mode: str = "RGB") -> Path:
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    rgb = np.stack([x * 255 // max(1, size[0] - 1), y * 255 // max(1, size[1] - 1), (x + y) % 256], -1)
    if mode == "RGBA":
        rgb = np.concatenate([rgb, (x * 7 % 256)[..., None]], -1)
    Image.fromarray(rgb.astype(np.uint8), mode).save(path)
    return path


def invoke(*args: str | Path):  # noqa: ANN201 - click Result
    return runner.invoke(app, [str(a) for a in args])


def test_stylize_keeps_the_full_odd_resolution_and_names_the_output_by_style(
        tmp_path: Path, style_file: Path) -> None:
    source = photo(tmp_path / "street.png")
    result = invoke("stylize", source, "--style", style_file, "--quiet")
    assert result.exit_code == 0, result.output
    target = tmp_path / "street_my_style.png"
    assert result.stdout.strip() == str(target)
    with Image.open(target) as image, Image.open(source) as original:
        assert image.size == (37, 29) and image.mode == "RGB"
        assert np.abs(np.asarray(image, float) - np.asarray(original, float)).mean() > 5  # it did change


def test_strength_zero_returns_the_photo_and_half_blends(tmp_path: Path, style_file: Path) -> None:
    source = photo(tmp_path / "p.png")
    for strength in ("0", "0.5", "1"):
        result = invoke("stylize", source, "--style", style_file, "--strength", strength, "-o",
                        tmp_path / f"s{strength}.png", "-q")
        assert result.exit_code == 0, result.output
    original, zero, half, full = (np.asarray(Image.open(tmp_path / name), float)
                                  for name in ("p.png", "s0.png", "s0.5.png", "s1.png"))
    assert np.array_equal(zero, original)
    assert np.abs(half - (original + full) / 2).max() <= 1.0  # rounding of the two 8-bit images


def test_alpha_and_16_bit_depth_are_kept(tmp_path: Path, style_file: Path) -> None:
    source = photo(tmp_path / "a.png", mode="RGBA")
    assert invoke("stylize", source, "--style", style_file, "-o", tmp_path / "a_out.png", "-q").exit_code == 0
    with Image.open(tmp_path / "a_out.png") as image, Image.open(source) as original:
        assert image.mode == "RGBA"
        assert np.array_equal(np.asarray(image)[..., 3], np.asarray(original)[..., 3])
    import cv2

    deep = tmp_path / "deep.png"
    cv2.imwrite(str(deep), (np.random.default_rng(0).random((21, 30, 3)) * 65535).astype(np.uint16))
    assert invoke("stylize", deep, "--style", style_file, "-o", tmp_path / "deep_out.png", "-q").exit_code == 0
    written = cv2.imread(str(tmp_path / "deep_out.png"), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16 and written.shape == (21, 30, 3)


def test_tiled_stylize_matches_the_untiled_result(tmp_path: Path, style_file: Path) -> None:
    source = photo(tmp_path / "big.png", size=(300, 260))
    for tile in ("0", "128"):
        result = invoke("stylize", source, "--style", style_file, "--tile", tile, "-o", tmp_path / f"t{tile}.png",
                        "-q")
        assert result.exit_code == 0, result.output
    whole, tiled = (np.asarray(Image.open(tmp_path / f"t{tile}.png"), float) for tile in ("0", "128"))
    assert whole.shape == tiled.shape == (260, 300, 3)
    assert np.abs(whole - tiled).mean() < 8  # statistics from a 132x116 copy: a small, smooth shift


def test_json_reports_each_output(tmp_path: Path, style_file: Path) -> None:
    sources = [photo(tmp_path / f"{name}.png") for name in ("one", "two")]
    result = invoke("stylize", *sources, "--style", style_file, "--json", "-q")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(record["output"] for record in records) == [str(tmp_path / "one_my_style.png"),
                                                             str(tmp_path / "two_my_style.png")]
    assert all(record["status"] == "ok" and record["width"] == 37 for record in records)


def test_an_upscaler_is_not_a_style(tmp_path: Path) -> None:
    model = tmp_path / "sr.pth"
    torch.save({"params": SRVGGNetCompact(num_features=8, num_conv=1, scale=2).state_dict()}, model)
    result = invoke("stylize", photo(tmp_path / "p.png"), "--style", model)
    assert result.exit_code == 1
    assert "srvgg checkpoint for imgan upscale, not stylize" in result.output


def test_unknown_style_suggests_close_names(tmp_path: Path) -> None:
    result = invoke("stylize", photo(tmp_path / "p.png"), "--style", "cyclegan-monnet")
    assert result.exit_code == 2
    assert "did you mean 'cyclegan-monet'" in result.output


def test_an_unknown_style_is_a_usage_error_listing_the_styles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGAN_OFFLINE", "1")
    result = invoke("stylize", photo(tmp_path / "p.png"), photo(tmp_path / "q.png"), "--style", "picasso")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "monet, vangogh, cezanne, ukiyoe" in result.stderr and "realesr" not in result.stderr


def test_offline_published_style_names_its_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGAN_OFFLINE", "1")
    result = invoke("stylize", photo(tmp_path / "p.png"), "--style", "vangogh")
    assert result.exit_code == 1
    assert "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/style_vangogh.pth" in result.output
    assert not (tmp_path / "p_vangogh.png").exists()


def test_a_bad_input_fails_alone(tmp_path: Path, style_file: Path) -> None:
    good = photo(tmp_path / "good.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    result = invoke("stylize", good, bad, "--style", style_file, "-q")
    assert result.exit_code == 1
    assert (tmp_path / "good_my_style.png").exists() and not (tmp_path / "bad_my_style.png").exists()
    assert "bad.png" in result.output and "Traceback" not in result.output


# --------------------------------------------------------------------------------------------
# sketch2photo


@pytest.fixture(scope="module")
def pix2pix_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "shoes.pth"
    torch.save(build_model("pix2pix", {"num_features": 8, "num_downs": 8}).state_dict(), path)
    return path


def test_sketch2photo_returns_the_inputs_size_and_saves_the_sketch(tmp_path: Path, pix2pix_file: Path) -> None:
    source = photo(tmp_path / "boot.png", size=(301, 157))
    result = invoke("sketch2photo", source, "--model", pix2pix_file, "--from-photo", "--save-sketch", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["output"] == str(tmp_path / "boot_photo.png")
    assert record["sketch"] == str(tmp_path / "boot_photo_sketch.png")
    with Image.open(record["output"]) as image, Image.open(record["sketch"]) as sketch:
        assert image.size == sketch.size == (301, 157)
        assert image.mode == "RGB" and sketch.mode == "L"
        ink = np.asarray(sketch) < 128
        assert 0.001 < ink.mean() < 0.3  # lines on white paper


def test_sketch2photo_batchnorm_modes_differ_and_running_is_deterministic(tmp_path: Path, pix2pix_file: Path) -> None:
    source = photo(tmp_path / "s.png", size=(64, 64))
    outputs = {}
    for mode in ("image", "running"):
        target = tmp_path / f"{mode}.png"
        assert invoke("sketch2photo", source, "--model", pix2pix_file, "--batchnorm", mode, "-o", target,
                      "-q").exit_code == 0
        outputs[mode] = np.asarray(Image.open(target), float)
    assert np.abs(outputs["image"] - outputs["running"]).mean() > 1
    result = invoke("sketch2photo", source, "--model", pix2pix_file, "--batchnorm", "bogus")
    assert result.exit_code == 2 and "--batchnorm 'bogus'" in result.output
    result = invoke("sketch2photo", source, "--model", pix2pix_file, "--size", "100")
    assert result.exit_code == 2 and "--size 100: use 0" in result.output
    assert not (tmp_path / "s_photo.png").exists()


def test_sketch2photo_refuses_a_sketch_onto_stdout_or_an_input(tmp_path: Path, pix2pix_file: Path) -> None:
    source = photo(tmp_path / "s.png")
    result = invoke("sketch2photo", source, "--model", pix2pix_file, "--from-photo", "--save-sketch", "-o", "-")
    assert result.exit_code == 2 and "stdout" in result.output
    taken = photo(tmp_path / "s_photo_sketch.png")  # an input where the sketch would go
    result = invoke("sketch2photo", source, taken, "--model", pix2pix_file, "--from-photo", "--save-sketch",
                    "--overwrite", "-q")
    assert result.exit_code == 1 and "imgan never overwrites inputs" in result.output
    assert np.array_equal(np.asarray(Image.open(taken)), np.asarray(Image.open(photo(tmp_path / "x.png"))))


# --------------------------------------------------------------------------------------------
# age


@pytest.fixture(scope="module")
def aging_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "older.pth"
    torch.save(build_model("aginggan", {"num_features": 8, "num_blocks": 1}).state_dict(), path)
    return path


def test_age_changes_the_face_only_and_fails_alone_without_one(tmp_path: Path, aging_file: Path) -> None:
    from skimage import data

    Image.fromarray(data.astronaut()).save(tmp_path / "astronaut.png")
    flat = photo(tmp_path / "wall.png", size=(200, 150))
    result = invoke("age", tmp_path / "astronaut.png", flat, "--model", aging_file, "--json")
    assert result.exit_code == 1
    records = {Path(record["input"]).name: record for record in map(json.loads, result.stdout.splitlines())}
    assert records["astronaut.png"]["status"] == "ok"
    assert records["wall.png"]["status"] == "failed"
    assert records["wall.png"]["error"] == f"{flat}: no face found; give one with --face x,y,w,h"
    before, after = np.asarray(data.astronaut(), int), np.asarray(Image.open(tmp_path / "astronaut_aged.png"), int)
    changed = np.argwhere(np.abs(after - before).max(-1) > 0)
    assert len(changed) > 5000  # the face region
    (top, left), (bottom, right) = changed.min(0), changed.max(0)
    assert 0 < top and 0 < left and right < 511 and bottom < 511  # pixels far from the face are untouched
    assert not (tmp_path / "wall_aged.png").exists()


def test_age_with_a_face_given_by_hand(tmp_path: Path, aging_file: Path) -> None:
    flat = photo(tmp_path / "wall.png", size=(200, 150))
    result = invoke("age", flat, "--model", aging_file, "--face", "80,50,40,40", "-q")
    assert result.exit_code == 0, result.output
    after = np.asarray(Image.open(tmp_path / "wall_aged.png"), int)
    before = np.asarray(Image.open(flat), int)
    assert np.array_equal(after[:, :15], before[:, :15]) and not np.array_equal(after, before)
    bad = invoke("age", flat, "--model", aging_file, "--face", "80,50,0,40")
    assert bad.exit_code == 2 and "--face '80,50,0,40'" in bad.output
