"""The captioned digits-and-clothes world of imgan's text2img default: classes, colours, caption templates.

Shared by ``prepare_data.py`` (the training folder), ``evaluate.py`` (the classifier and the
measurements) and ``figure.py`` (the README grid), so all three colour glyphs the same way.
A glyph is a 28x28 grey image in [0,1] (an MNIST digit or a Fashion-MNIST item); its grey level is
used as the opacity of the foreground colour over the background colour, after a 2 px border of
background brings it to 32x32.
"""

from __future__ import annotations

import re

import numpy as np

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FASHION_NAMES = ("t-shirt", "trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                 "ankle boot")
# Words a caption may use for each Fashion-MNIST class (the first is the class name above).
FASHION_WORDS = (
    ("t-shirt", "tee", "top"),
    ("trousers", "pants", "jeans"),
    ("pullover", "sweater", "jumper"),
    ("dress",),
    ("coat", "jacket"),
    ("sandal", "sandals"),
    ("shirt",),
    ("sneaker", "sneakers", "trainer"),
    ("bag", "handbag", "purse"),
    ("ankle boot", "boot", "boots"),
)
CLASSES = tuple(str(d) for d in range(10)) + FASHION_NAMES  # 0-9 digits, 10-19 clothes

COLOURS = {  # foreground colours, RGB in [0,1]
    "red": (0.90, 0.10, 0.10),
    "orange": (1.00, 0.55, 0.00),
    "yellow": (0.95, 0.90, 0.10),
    "green": (0.10, 0.75, 0.20),
    "cyan": (0.10, 0.80, 0.90),
    "blue": (0.15, 0.30, 0.95),
    "purple": (0.60, 0.20, 0.80),
    "pink": (1.00, 0.45, 0.70),
}
BACKGROUNDS = {"black": (0.0, 0.0, 0.0), "white": (1.0, 1.0, 1.0), "grey": (0.5, 0.5, 0.5)}
JITTER = 0.05  # colours vary by up to this much per channel, so the model learns a range, not one value


def colourise(glyph: np.ndarray, foreground: str, background: str, rng: np.random.Generator) -> np.ndarray:
    """A 28x28 grey glyph in [0,1] as a 32x32x3 float image: foreground over background, opacity = grey level."""
    fg = np.clip(np.array(COLOURS[foreground]) + rng.uniform(-JITTER, JITTER, 3), 0, 1)
    bg = np.clip(np.array(BACKGROUNDS[background]) + rng.uniform(-JITTER, JITTER, 3), 0, 1)
    alpha = np.pad(np.clip(glyph * 1.3, 0.0, 1.0), 2)[:, :, None]
    return (bg * (1 - alpha) + fg * alpha).astype(np.float32)


def class_words(label: int, rng: np.random.Generator) -> str:
    """How a caption names class ``label``: '7' or 'seven' for digits, a synonym for clothes."""
    if label < 10:
        return str(label) if rng.random() < 0.5 else DIGIT_WORDS[label]
    words = FASHION_WORDS[label - 10]
    return words[0] if rng.random() < 0.6 else words[int(rng.integers(len(words)))]


def caption(label: int, foreground: str | None, background: str | None, rng: np.random.Generator) -> str:
    """A caption for a glyph of ``label`` in ``foreground`` on ``background`` (None: not said)."""
    name = class_words(label, rng)
    fg, bg = foreground, background
    if label < 10:
        templates = [
            ("a handwritten {name}", "a {fg} handwritten {name}", "a handwritten {name} on {bg}",
             "a handwritten {name} in {fg} on {bg}"),
            ("the digit {name}", "the digit {name} in {fg}", "the digit {name} on a {bg} background",
             "the digit {name} in {fg} on a {bg} background"),
            ("number {name}", "a {fg} number {name}", "number {name} on {bg}", "a {fg} number {name} on {bg}"),
            ("{name}", "a {fg} {name}", "a {name} on {bg}", "a {fg} {name} on a {bg} background"),
        ]
    else:
        templates = [
            ("a {name}", "a {fg} {name}", "a {name} on {bg}", "a {fg} {name} on {bg}"),
            ("a picture of a {name}", "a {name} in {fg}", "a {name} on a {bg} background",
             "a {name} in {fg} on a {bg} background"),
        ]
    forms = templates[int(rng.integers(len(templates)))]
    form = forms[(fg is not None) + 2 * (bg is not None)]
    return re.sub(r"\ba (?=[aeiou])", "an ", form.format(name=name, fg=fg, bg=bg))


def pick_colours(rng: np.random.Generator) -> tuple[str, str]:
    """A random (foreground, background) pair."""
    return (list(COLOURS)[int(rng.integers(len(COLOURS)))], list(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))])
