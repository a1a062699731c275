"""The embedded text2img default: ships in the package, works offline, and draws the colours its captions say.

The pinned accuracies are measured by the glyph classifier that ships beside it
(``imgan-text2img-classifier``), trained on held-out real digits and clothes the GAN never saw
(``recipes/text2img_digits/evaluate.py``). Random weights of the same shape score at chance.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from imgan import hub
from imgan.archs.classifier import GlyphClassifier
from imgan.cli import app
from imgan.tasks.text2img import generate, load_text_model

DEFAULT, CLASSIFIER = "imgan-text2img", "imgan-text2img-classifier"
CLASSES = [str(digit) for digit in range(10)] + ["t-shirt", "trousers", "pullover", "dress", "coat", "sandal",
                                                 "shirt", "sneaker", "bag", "ankle boot"]
COLOURS = ["red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink"]
BACKGROUNDS = ["black", "white", "grey"]
# caption, class, foreground colour (None: not said), background (None: not said)
CASES = [
    ("a handwritten 3 in yellow on black", "3", "yellow", "black"),
    ("the digit seven", "7", None, None),
    ("a red number 0 on white", "0", "red", "white"),
    ("a blue sneaker", "sneaker", "blue", None),
    ("a green bag on grey", "bag", "green", "grey"),
    ("trousers in pink on a black background", "trousers", "pink", "black"),
]
PER_CAPTION = 16


@pytest.fixture(scope="module")
def judge() -> GlyphClassifier:
    state, _ = hub.load_state_dict(hub.fetch(hub.get_spec(CLASSIFIER)))
    classifier = GlyphClassifier()
    classifier.load_state_dict({key: value.float() for key, value in state.items()})
    return classifier.eval()


def test_the_default_and_its_classifier_ship_inside_the_package_and_match_their_digests() -> None:
    specs = [hub.get_spec(DEFAULT), hub.get_spec(CLASSIFIER)]
    assert all(spec.embedded for spec in specs)
    assert [(name, ok) for name, _, ok, _ in hub.verify_cache(specs=specs)] == [(DEFAULT, True), (CLASSIFIER, True)]


def test_text2img_uses_the_default_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGAN_OFFLINE", "1")
    result = CliRunner().invoke(app, ["text2img", "a blue sneaker", "the digit seven", "--n", "2", "--seed", "0",
                                      "-o", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.output
    written = sorted(path.name for path in (tmp_path / "out").iterdir())
    assert written == ["a-blue-sneaker_0.png", "a-blue-sneaker_1.png", "the-digit-seven_0.png", "the-digit-seven_1.png"]


@torch.no_grad()
def test_the_pictures_show_the_class_and_colours_their_captions_name(judge: GlyphClassifier) -> None:
    model = load_text_model(DEFAULT)
    right = {"class": [0, 0], "colour": [0, 0], "background": [0, 0]}
    for caption, label, colour, background in CASES:
        images = generate(model, model.vocabulary.encode(caption), list(range(PER_CAPTION)), truncation=1.0,
                          device=torch.device("cpu"), dtype=torch.float32)
        classes, colours, backgrounds = (logits.argmax(1) for logits in judge(images))
        for key, predicted, expected in (("class", classes, CLASSES.index(label)),
                                         ("colour", colours, COLOURS.index(colour) if colour else None),
                                         ("background", backgrounds, BACKGROUNDS.index(background) if background
                                          else None)):
            if expected is not None:
                right[key][0] += int((predicted == expected).sum())
                right[key][1] += len(predicted)
    accuracy = {key: hits / total for key, (hits, total) in right.items()}
    # Measured on these 96 pictures: class 1.00, colour 1.00, background 1.00; random weights of the same
    # shape: 0.01, 0.05, 0.25 (README: 97.7% over all 20 classes, the 90% aimed at).
    assert accuracy["class"] >= 0.9, accuracy
    assert accuracy["colour"] >= 0.95, accuracy
    assert accuracy["background"] >= 0.95, accuracy
