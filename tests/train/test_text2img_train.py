"""imgan train text2img / gan: tiny CPU runs, exact resume, a frozen DAMSM encoder, DDP, export to text2img."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from typer.testing import CliRunner

from imgan.archs.dfgan import DAMSMTextEncoder
from imgan.cli import app
from imgan.train.checkpoint import load_checkpoint
from tests.train.test_sr_training import resume, weights

runner = CliRunner()
TINY = ("--size", "32", "--features", "4", "--noise-dim", "8", "--batch-size", "2", "--encoder-steps", "1",
        "--workers", "0", "--log-every", "1", "--sample-every", "2", "--save-every", "2", "--device", "cpu", "--quiet")
CAPTIONS = ("a red square\nred block", "a blue circle", "a green square", "a blue square", "a red circle",
            "a green circle")


def _picture(path: Path, colour: tuple[int, int, int], round_: bool) -> None:
    yy, xx = np.mgrid[0:32, 0:32]
    inside = ((xx - 16) ** 2 + (yy - 16) ** 2 < 100) if round_ else ((abs(xx - 16) < 9) & (abs(yy - 16) < 9))
    pixels = np.zeros((32, 32, 3), np.uint8)
    pixels[inside] = colour
    Image.fromarray(pixels).save(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """captioned/ (IMAGE.png + IMAGE.txt), classes/{circle,square}/, flat/."""
    root = tmp_path_factory.mktemp("text2img")
    colours = {"red": (220, 20, 20), "blue": (20, 40, 220), "green": (20, 200, 40)}
    for folder in ("captioned", "classes/circle", "classes/square", "flat"):
        (root / folder).mkdir(parents=True)
    for index, text in enumerate(CAPTIONS):
        colour, round_ = colours[text.split()[1]], "circle" in text
        _picture(root / "captioned" / f"{index}.png", colour, round_)
        (root / "captioned" / f"{index}.txt").write_text(text + "\n")
        _picture(root / "classes" / ("circle" if round_ else "square") / f"{index}.png", colour, round_)
        _picture(root / "flat" / f"{index}.png", colour, round_)
    return root


def train(family: str, out: Path, *extra: str):  # noqa: ANN201 - click Result
    return runner.invoke(app, ["train", family, "--out", str(out), *TINY, *extra])


def test_text2img_trains_exports_and_draws_with_its_vocabulary(data: Path, tmp_path: Path) -> None:
    result = train("text2img", tmp_path / "run", "--data", str(data / "captioned"), "--steps", "2", "--cond-dim", "8",
                   "--embedding-dim", "8")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "samples" / "step_0000002.png").is_file()
    exported = runner.invoke(app, ["train", "export", str(tmp_path / "run"), "--out", str(tmp_path / "m.safetensors")])
    assert exported.exit_code == 0, exported.output
    with safe_open(str(tmp_path / "m.safetensors"), "pt") as file:
        metadata = file.metadata()
    words = json.loads(metadata["vocabulary"])["words"]
    assert metadata["task"] == "text2img" and {"red", "blue", "green", "square", "circle", "block"} <= set(words)
    made = runner.invoke(app, ["text2img", "a green circle", "-m", str(tmp_path / "m.safetensors"), "--n", "2",
                               "--seed", "0", "-o", str(tmp_path / "out"), "--quiet"])
    assert made.exit_code == 0, made.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a-green-circle_0.png", "a-green-circle_1.png"]


def test_text2img_resume_continues_exactly_like_an_uninterrupted_run(data: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from imgan.train.text2img import Text2ImgTrainer

    extra = ("--data", str(data / "captioned"), "--steps", "4", "--cond-dim", "8", "--embedding-dim", "8",
             "--gp-every", "2", "--ema", "0.9", "--encoder-steps", "2")
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train("text2img", straight, *extra).exit_code == 0
    original = Text2ImgTrainer.train_step

    def interrupted_at_step_2(self: Text2ImgTrainer, batch: list, step: int) -> dict[str, float]:
        if step == 2:
            raise KeyboardInterrupt
        return original(self, batch, step)

    monkeypatch.setattr(Text2ImgTrainer, "train_step", interrupted_at_step_2)
    assert "interrupted at step 2" in train("text2img", split, *extra).stderr
    monkeypatch.setattr(Text2ImgTrainer, "train_step", original)
    assert resume(split).exit_code == 0
    expected, resumed = weights(straight), weights(split)
    assert set(expected) == {"generator", "discriminator", "matcher", "image_encoder", "generator_ema"}
    for module in expected:
        for key, tensor in expected[module].items():
            assert torch.equal(resumed[module][key], tensor), f"{module}.{key}"
    assert load_checkpoint(split)["step"] == 4


def test_a_given_damsm_encoder_stays_frozen(data: Path, tmp_path: Path) -> None:
    words = {"<end>": 0, "a": 1, "red": 2, "blue": 3, "green": 4, "square": 5, "circle": 6}
    torch.manual_seed(0)
    encoder = DAMSMTextEncoder(vocab_size=7, embedding_dim=6, cond_dim=8)
    torch.save(encoder.state_dict(), tmp_path / "text_encoder.pth")
    (tmp_path / "captions.pickle").write_bytes(pickle.dumps([[], [], {}, words], protocol=2))
    result = train("text2img", tmp_path / "run", "--data", str(data / "captioned"), "--steps", "2",
                   "--text-encoder", str(tmp_path / "text_encoder.pth"),
                   "--vocabulary", str(tmp_path / "captions.pickle"))
    assert result.exit_code == 0, result.output
    trained = weights(tmp_path / "run")["generator"]
    for key, tensor in encoder.state_dict().items():
        assert torch.equal(trained[f"text_encoder.{key}"], tensor), key


def test_gan_on_class_folders_draws_the_class_its_caption_names(data: Path, tmp_path: Path) -> None:
    result = train("gan", tmp_path / "run", "--data", str(data / "classes"), "--steps", "2", "--cond-dim", "8")
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["train", "export", str(tmp_path / "run")]).exit_code == 0
    with safe_open(str(tmp_path / "run" / "model.safetensors"), "pt") as file:
        assert json.loads(file.metadata()["vocabulary"])["words"] == {"circle": 0, "square": 1}
    made = runner.invoke(app, ["text2img", "square", "-m", str(tmp_path / "run" / "model.safetensors"), "--n", "1",
                               "--seed", "0", "-o", str(tmp_path / "out")])
    assert made.exit_code == 0, made.output


def test_an_unconditional_gan_trains_with_hinge_and_ma_gp(data: Path, tmp_path: Path) -> None:
    result = train("gan", tmp_path / "run", "--data", str(data / "flat"), "--steps", "2", "--gan", "hinge")
    assert result.exit_code == 0, result.output
    assert weights(tmp_path / "run")["generator"].keys() == {
        key for key in weights(tmp_path / "run")["generator_ema"]}
    assert not any(key.startswith("text_encoder.") for key in weights(tmp_path / "run")["generator"])


@pytest.mark.parametrize(("args", "flag"), [
    (("--size", "48"), "--size"),
    (("--text-encoder", "x.pth"), "--vocabulary"),
    (("--cond-dim", "7"), "--cond-dim"),
])
def test_options_that_cannot_work_exit_2_naming_the_flag(data: Path, tmp_path: Path, args: tuple[str, ...],
                                                          flag: str) -> None:
    result = train("text2img", tmp_path / "run", "--data", str(data / "captioned"), *args)
    assert result.exit_code == 2 and flag in result.stderr


def test_the_commands_leave_out_options_that_mean_nothing_to_them() -> None:
    for family in ("text2img", "gan"):
        text = runner.invoke(app, ["train", family, "--help"], terminal_width=200).stdout
        assert "--size" in text and "--lambda-gp" in text
        assert "--crop" not in text and "--gan-weight" not in text and "--val-every" not in text


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_text2img_trains_under_torchrun_with_the_gradient_penalty(data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "imgan",
               "train", "text2img", "--out", str(run_dir), *TINY, "--data", str(data / "captioned"), "--steps", "2",
               "--accum", "2", "--cond-dim", "8", "--embedding-dim", "8"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=240,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert load_checkpoint(run_dir)["step"] == 2  # the loop checked that both ranks' generators agree
