"""Every image command on a generated fuzz corpus: broken files fail alone, one line each, and nothing else.

The corpus (``tests/fuzzcorpus.py``, made at test time) holds valid images in every layout as
controls, and truncated, corrupted, mislabelled, bomb-header and odd-mode files, directories
named like images and symlink loops. One batch per command must: exit 1 without a traceback,
write every control at its size, write nothing for what cannot be decoded, leave no temporary
file, and leave every input as it was. ``benchmarks/fuzz_full.py`` runs a corpus of 1,000+
files the same way.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imgan.cli import app
from imgan.tasks import age as age_module
from tests.fuzzcorpus import Corpus, check_batch, command_line, make_corpus, snapshot, tiny_models

runner = CliRunner()

@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture
def corpus(tmp_path: Path) -> Corpus:
    return make_corpus(tmp_path / "corpus")


def test_the_corpus_covers_what_the_issue_lists(corpus: Corpus) -> None:
    counts = corpus.counts()
    assert len(corpus.entries) >= 300
    assert counts["valid"] >= 50 and counts["mislabelled"] >= 50
    assert counts["truncated"] >= 100 and counts["byte flips"] >= 100
    assert counts["broken"] >= 30 and counts["directory"] == 2 and counts["symlink"] >= 4
    assert sum(entry.kind == "broken" and "bomb" in entry.path.name for entry in corpus.entries) >= 8


def test_upscale_as_the_installed_command(corpus: Corpus, models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = snapshot(corpus.folder)
    result = subprocess.run([sys.executable, "-m", "imgan", *command_line("upscale", corpus, models["upscale"], out)],
                            capture_output=True, text=True, timeout=300)
    with warnings.catch_warnings(record=True):  # reading outputs back: see test_translation_commands
        warnings.simplefilter("always")
        problems = check_batch(corpus, "upscale", out, exit_code=result.returncode, stdout=result.stdout,
                               stderr=result.stderr, before=before)
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)


@pytest.mark.parametrize("command", ["stylize", "sketch2photo", "age"])
def test_translation_commands(command: str, corpus: Corpus, models: dict[str, Path], tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    # Framing, decoding and writing are what is fuzzed: the aging model sees 64 px, not 512, to stay fast.
    monkeypatch.setattr(age_module, "MODEL_SIDE", 64)
    out = tmp_path / "out"
    before = snapshot(corpus.folder)
    # Pillow's UserWarnings about damaged TIFF and EXIF tags (of inputs, and of damaged EXIF carried
    # into outputs) reach a terminal as raw two-line Python warnings: the CLI does not route warnings
    # through its logging yet. Here they are recorded, not printed.
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        result = runner.invoke(app, command_line(command, corpus, models[command], out))
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        problems = check_batch(corpus, command, out, exit_code=result.exit_code, stdout=result.stdout,
                               stderr=result.stderr, before=before, own_stderr=True)
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)


@pytest.mark.parametrize("command", ["upscale", "stylize", "sketch2photo", "age"])
@pytest.mark.parametrize("size", [(1, 1), (3, 2), (4, 4), (9, 1)])  # width, height
def test_a_tiny_picture_comes_back_at_its_size(command: str, size: tuple[int, int], models: dict[str, Path],
                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # CycleGAN's residual blocks work at a quarter of the resolution: a side of 4 px or less used to fail there.
    from PIL import Image

    monkeypatch.setattr(age_module, "MODEL_SIDE", 64)

    Image.new("RGB", size, (200, 100, 50)).save(tmp_path / "tiny.png")
    option = {"stylize": "--style"}.get(command, "--model")
    extra = {"age": ["--face", "0,0,1,1"], "sketch2photo": ["--size", "64"]}.get(command, [])
    result = runner.invoke(app, [command, str(tmp_path / "tiny.png"), option, str(models[command]), *extra,
                                 "--out", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 0, result.output
    (written,) = (tmp_path / "out").iterdir()
    scale = 2 if command == "upscale" else 1
    assert Image.open(written).size == (size[0] * scale, size[1] * scale)


@pytest.mark.parametrize("model", ["imgan-inpaint", "telea"])
@pytest.mark.parametrize("size", [(1, 1), (3, 2)])  # width, height
def test_inpainting_a_tiny_picture_fills_it_at_its_size(model: str, size: tuple[int, int], tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", size, (200, 100, 50)).save(tmp_path / "tiny.png")
    result = runner.invoke(app, ["inpaint", str(tmp_path / "tiny.png"), "--box", "0,0,1,1", "--model", model,
                                 "--out", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 0, result.output
    (written,) = (tmp_path / "out").iterdir()
    assert Image.open(written).size == size
