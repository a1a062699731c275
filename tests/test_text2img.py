"""imgan text2img on a tiny random-weight model: seeds, names, grids, JSON, unknown words, exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from imgan.archs.dfgan import TextToImage
from imgan.cli import app
from imgan.tasks.text2img import noise, slug
from imgan.text import Vocabulary, vocabulary_json

runner = CliRunner()
WORDS = {"<end>": 0, "a": 1, "red": 2, "seven": 3, "blue": 4, "sneaker": 5, "the": 6, "digit": 7}
PARAMS = {"image_size": 32, "num_features": 4, "noise_dim": 8, "cond_dim": 8, "out_channels": 3,
          "text_encoder": "gru", "vocab_size": 8, "embedding_dim": 8}


@pytest.fixture
def model(tmp_path: Path) -> str:
    torch.manual_seed(0)
    path = tmp_path / "tiny.safetensors"
    save_file(TextToImage(**PARAMS).state_dict(), str(path), metadata={
        "arch": "dfgan", "task": "text2img", "params": json.dumps(PARAMS), "value_range": "[-1.0, 1.0]",
        "vocabulary": vocabulary_json(Vocabulary(WORDS))})
    return str(path)


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def invoke(*args: str, stdin: str | None = None) -> object:
    return runner.invoke(app, ["text2img", *args], input=stdin)


def test_separate_files_are_named_by_slug_and_seed(model: str, tmp_path: Path) -> None:
    result = invoke("a red seven", "The Blue sneaker!", "-m", model, "--n", "3", "--seed", "10",
                    "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    names = sorted(path.name for path in (tmp_path / "out").iterdir())
    assert names == [f"a-red-seven_{s}.png" for s in (10, 11, 12)] + [f"the-blue-sneaker_{s}.png" for s in (10, 11, 12)]
    assert result.stdout.split() == [str(tmp_path / "out" / name) for name in
                                     [f"a-red-seven_{s}.png" for s in (10, 11, 12)] +
                                     [f"the-blue-sneaker_{s}.png" for s in (10, 11, 12)]]
    assert pixels(tmp_path / "out" / "a-red-seven_10.png").shape == (32, 32, 3)


def test_the_same_seed_gives_the_same_pictures_and_picture_k_is_seed_plus_k(model: str, tmp_path: Path) -> None:
    for folder, seed, count in (("first", "5", "3"), ("again", "5", "3"), ("alone", "7", "1")):
        assert invoke("a red seven", "-m", model, "--seed", seed, "--n", count,
                      "-o", str(tmp_path / folder)).exit_code == 0
    first, again, alone = (tmp_path / "first", tmp_path / "again", tmp_path / "alone")
    assert np.array_equal(pixels(first / "a-red-seven_5.png"), pixels(again / "a-red-seven_5.png"))
    assert np.array_equal(pixels(first / "a-red-seven_7.png"), pixels(alone / "a-red-seven_7.png"))
    assert not np.array_equal(pixels(first / "a-red-seven_5.png"), pixels(first / "a-red-seven_6.png"))


def test_noise_depends_on_the_seed_alone_and_stays_within_the_truncation() -> None:
    torch.manual_seed(123)
    first = noise(42, 4096, truncation=0.5)
    torch.manual_seed(456)
    assert torch.equal(noise(42, 4096, truncation=0.5), first)
    assert first.abs().max() <= 1.0 and first.std() > 0.3
    assert not torch.equal(noise(43, 4096, truncation=0.5), first)
    assert torch.equal(noise(42, 16, truncation=0.0), torch.zeros(16))


def test_truncation_zero_draws_one_picture_per_caption(model: str, tmp_path: Path) -> None:
    assert invoke("a red seven", "-m", model, "--n", "2", "--seed", "1", "--truncation", "0",
                  "-o", str(tmp_path)).exit_code == 0
    assert np.array_equal(pixels(tmp_path / "a-red-seven_1.png"), pixels(tmp_path / "a-red-seven_2.png"))


def test_grid_is_one_sheet_per_caption_with_json_records_per_picture(model: str, tmp_path: Path) -> None:
    result = invoke("a red seven", "the digit seven", "-m", model, "--n", "4", "--seed", "0", "--grid", "--json",
                    "-o", str(tmp_path / "{index}-{slug}.png"))
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["index"], r["seed"], r["cell"]) for r in records] == [(i, s, s + 1) for i in (1, 2) for s in range(4)]
    assert {r["file"] for r in records} == {str(tmp_path / "1-a-red-seven.png"),
                                            str(tmp_path / "2-the-digit-seven.png")}
    sheet = pixels(tmp_path / "1-a-red-seven.png")
    assert sheet.shape[1] >= 256 and sheet.shape[0] > sheet.shape[1]  # 2x2 cells enlarged, the caption under them


def test_unknown_words_are_listed_per_caption_and_strict_fails_only_that_caption(model: str, tmp_path: Path) -> None:
    result = invoke("a purple seven", "a red seven", "-m", model, "--n", "1", "--seed", "0", "-o", str(tmp_path))
    assert result.exit_code == 0
    assert "caption 1 'a purple seven'" in result.stderr and "purple" in result.stderr
    assert "caption 2" not in result.stderr

    strict = invoke("a purple seven", "a red seven", "-m", model, "--n", "1", "--seed", "0", "--strict",
                    "-o", str(tmp_path / "strict"))
    assert strict.exit_code == 1
    assert "purple" in strict.stderr and "--strict" in strict.stderr
    assert [path.name for path in (tmp_path / "strict").iterdir()] == ["a-red-seven_0.png"]


def test_a_caption_without_a_known_word_fails_alone(model: str, tmp_path: Path) -> None:
    result = invoke("zebra crossing", "a blue sneaker", "-m", model, "--n", "1", "--seed", "0", "-o", str(tmp_path))
    assert result.exit_code == 1
    assert "knows none of its words" in result.stderr
    assert [path.name for path in tmp_path.iterdir() if path.suffix == ".png"] == ["a-blue-sneaker_0.png"]


def test_captions_come_from_stdin_and_from_a_file(model: str, tmp_path: Path) -> None:
    listing = tmp_path / "captions.txt"
    listing.write_text("a red seven\n\n  a blue sneaker  \n")
    assert invoke("--captions", str(listing), "-m", model, "--n", "1", "--seed", "3",
                  "-o", str(tmp_path / "file")).exit_code == 0
    assert invoke("-", "-m", model, "--n", "1", "--seed", "3", "-o", str(tmp_path / "stdin"),
                  stdin="a red seven\na blue sneaker\n").exit_code == 0
    for folder in ("file", "stdin"):
        assert sorted(p.name for p in (tmp_path / folder).iterdir()) == ["a-blue-sneaker_3.png", "a-red-seven_3.png"]


def test_one_picture_goes_to_stdout_with_out_dash(model: str) -> None:
    result = runner.invoke(app, ["text2img", "a red seven", "-m", model, "--n", "1", "--seed", "0", "-o", "-"])
    assert result.exit_code == 0
    with Image.open(io.BytesIO(result.stdout_bytes)) as image:
        assert image.size == (32, 32)


def test_size_resizes_the_pictures(model: str, tmp_path: Path) -> None:
    result = invoke("a red seven", "-m", model, "--n", "1", "--seed", "0", "--size", "48", "-o", str(tmp_path))
    assert result.exit_code == 0
    assert pixels(tmp_path / "a-red-seven_0.png").shape == (48, 48, 3)


def test_an_existing_output_needs_overwrite(model: str, tmp_path: Path) -> None:
    args = ["a red seven", "-m", model, "--n", "1", "--seed", "0", "-o", str(tmp_path)]
    assert invoke(*args).exit_code == 0
    second = invoke(*args)
    assert second.exit_code == 1 and "--overwrite" in second.stderr
    assert invoke(*args, "--overwrite").exit_code == 0


@pytest.mark.parametrize("args", [
    [],                                                  # no caption
    ["a red seven", "-o", "{stem}.png"],                 # unknown template field
    ["a red seven", "--n", "2", "-o", "one.png"],        # one file name for two pictures
    ["a red seven", "--n", "2", "-o", "-"],              # two pictures to stdout
    ["a red seven", "--json", "-o", "-"],                # JSON and a picture on stdout
])
def test_usage_errors_exit_2_before_anything_is_made(model: str, tmp_path: Path, args: list[str]) -> None:
    assert invoke(*args, "-m", model).exit_code == 2


def test_a_model_of_another_task_is_a_usage_error() -> None:
    result = invoke("a red seven", "-m", "imgan-sr-x4")
    assert result.exit_code == 2 and "not text2img" in result.stderr


def test_dfgan_before_it_is_added_says_where_to_download_it() -> None:
    result = invoke("this bird is red", "-m", "dfgan-bird")
    assert result.exit_code == 2
    assert "drive.google.com" in result.stderr and "imgan models add dfgan-bird" in result.stderr


def test_slug_keeps_ascii_words_within_the_limit() -> None:
    assert slug("A Handwritten 3, in Yellow — on black!") == "a-handwritten-3-in-yellow-on-black"
    assert slug("日本") == "caption"
    assert len(slug("word " * 40)) <= 60
