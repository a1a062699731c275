"""Every image command on a generated fuzz corpus: broken files fail alone, one line each, and nothing else.

The corpus (``tests/fuzzcorpus.py``, made at test time) holds valid images in every layout as
controls, and truncated, corrupted, mislabelled, bomb-header and odd-mode files, directories
named like images and symlink loops. One batch per command must: exit 1 without a traceback,
write every control at its size, write nothing for what cannot be decoded, leave no temporary
file, and leave every input as it was. ``benchmarks/fuzz_full.py`` runs a corpus of 1,000+
files the same way.
"""

from __future__ import annotations

import re
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

# A known bug outside the code this test guards, tolerated (and only it) until fixed:
# imgan/engine.py pads a picture to the model's multiple (4 for CycleGAN) and no further, so a
# picture with a side of 4 px or less reaches CycleGAN's 1/4-scale blocks as 1 px, too small
# for ReflectionPad2d(1) and InstanceNorm. test_stylize_of_a_tiny_picture says when it is fixed.
KNOWN_BUGS = {"stylize": re.compile(r"Padding size should be less than|Expected more than 1 spatial element")}


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
    known = KNOWN_BUGS.get(command)
    problems = [problem for problem in problems if known is None or not known.search(problem)]
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)


@pytest.mark.xfail(strict=True, reason="imgan/engine.py: CycleGAN on a side of 4 px or less (see KNOWN_BUGS)")
def test_stylize_of_a_tiny_picture(models: dict[str, Path], tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (4, 4), (200, 100, 50)).save(tmp_path / "tiny.png")
    result = runner.invoke(app, ["stylize", str(tmp_path / "tiny.png"), "--style", str(models["stylize"]), "-q"])
    assert result.exit_code == 0, result.output
