"""Captions to word indices: DF-GAN's tokeniser, vocabularies, and reading DF-GAN's vocabulary pickle safely.

The tokeniser is DF-GAN's (``code/lib/utils.py: tokenize``, the nltk ``RegexpTokenizer(r'\\w+')``
it calls being ``re.findall``): replace the "\\ufffd\\ufffd" pair by a space, lower-case, find
``\\w+`` runs (Unicode word characters), drop every non-ASCII character of each run, and drop runs
left empty. DF-GAN then silently drops every word its vocabulary lacks; imgan reports them
(``Encoded.unknown``), and reads at most ``max_words`` known words (DF-GAN trains on 18).

DF-GAN's vocabulary ships as ``captions_DAMSM.pickle``, ``[train_captions, test_captions,
ixtoword, wordtoix]``. Unpickling can run any code a file names, so ``read_vocabulary_pickle``
uses an unpickler that names nothing: it builds lists, tuples, dicts, strings and numbers, and
refuses every global (class, function) and persistent id. ``imgan models add`` converts it to JSON
once (``vocabulary_json``), and imgan never reads the pickle again.

Pure Python: nothing here imports torch.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from imgan.errors import ModelError

__all__ = [
    "MAX_WORDS",
    "Encoded",
    "Vocabulary",
    "read_vocabulary_pickle",
    "tokenize",
    "vocabulary_from_json",
    "vocabulary_json",
]

MAX_WORDS = 18
"""DF-GAN's ``WORDS_NUM``: the longest caption its text encoder was trained on."""
MAX_PICKLE_BYTES = 1 << 30
"""DF-GAN's COCO pickle (every training caption as indices) is about 100 MB; refuse far more."""
MAX_VOCABULARY = 200_000

_WORD = re.compile(r"\w+")


def tokenize(caption: str) -> list[tuple[str, str]]:
    """(word as written, lower-cased; word DF-GAN looks up) for every ``\\w+`` run of ``caption``.

    The second item is the first with its non-ASCII characters removed, and may be empty
    (DF-GAN drops such a word: imgan reports it as unknown).
    """
    runs = _WORD.findall(caption.replace("\ufffd\ufffd", " ").lower())
    return [(run, run.encode("ascii", "ignore").decode("ascii")) for run in runs]


@dataclass(frozen=True)
class Encoded:
    """A caption as the model reads it, and what it does not read."""

    caption: str
    indices: tuple[int, ...]
    """Vocabulary indices of the known words, in order, at most ``max_words``."""
    words: tuple[str, ...]
    """The words read, as looked up."""
    unknown: tuple[str, ...]
    """Words the vocabulary lacks (as written, lower-cased), in order, repeats kept once."""
    dropped: tuple[str, ...]
    """Known words past ``max_words``, which the model does not read."""


@dataclass(frozen=True)
class Vocabulary:
    """Word -> index, as a model was trained with it."""

    word_to_index: Mapping[str, int]
    max_words: int = MAX_WORDS

    def __post_init__(self) -> None:
        problems = _vocabulary_problems(self.word_to_index)
        if problems:
            raise ModelError(f"vocabulary: {problems}")
        if self.max_words < 1:
            raise ModelError(f"vocabulary: max_words {self.max_words} is not positive")

    def __len__(self) -> int:
        return len(self.word_to_index)

    @property
    def size(self) -> int:
        """Rows the embedding table needs: one more than the largest index."""
        return max(self.word_to_index.values(), default=-1) + 1

    def encode(self, caption: str) -> Encoded:
        """The caption's known words as indices, and the words left out (see ``Encoded``)."""
        indices: list[int] = []
        words: list[str] = []
        unknown: list[str] = []
        dropped: list[str] = []
        for written, looked_up in tokenize(caption):
            index = self.word_to_index.get(looked_up) if looked_up else None
            if index is None:
                if written not in unknown:
                    unknown.append(written)
            elif len(indices) < self.max_words:
                indices.append(index)
                words.append(looked_up)
            else:
                dropped.append(looked_up)
        return Encoded(caption=caption, indices=tuple(indices), words=tuple(words), unknown=tuple(unknown),
                       dropped=tuple(dropped))


def _vocabulary_problems(mapping: object) -> str:
    if not isinstance(mapping, Mapping):
        return f"is a {type(mapping).__name__}, not a mapping of words to indices"
    if not mapping:
        return "is empty"
    if len(mapping) > MAX_VOCABULARY:
        return f"has {len(mapping):,} words, more than the {MAX_VOCABULARY:,} imgan accepts"
    for word, index in mapping.items():
        if not isinstance(word, str) or not isinstance(index, int) or isinstance(index, bool):
            return f"maps {word!r} to {index!r}; it must map words to whole numbers"
        if not 0 <= index < MAX_VOCABULARY:
            return f"maps {word!r} to {index}, outside 0 to {MAX_VOCABULARY - 1}"
    if len(set(mapping.values())) != len(mapping):
        return "maps two words to the same index"
    return ""


# --------------------------------------------------------------------------------------------
# DF-GAN's vocabulary pickle, read without running anything


class _PlainUnpickler(pickle.Unpickler):
    """Builds only what pickle's own opcodes make (containers, strings, numbers); names nothing."""

    def find_class(self, module: str, name: str) -> object:  # noqa: ARG002 - refuses every global
        raise pickle.UnpicklingError(f"it names {module}.{name}; a vocabulary holds only words and numbers")

    def persistent_load(self, pid: object) -> object:
        raise pickle.UnpicklingError("it refers to external objects; a vocabulary holds only words and numbers")


def read_vocabulary_pickle(path: str | os.PathLike[str], *, max_words: int = MAX_WORDS) -> Vocabulary:
    """The ``wordtoix`` of a DF-GAN/AttnGAN ``captions*.pickle`` (or a pickled word -> index dict).

    Read with an unpickler that refuses every class and function, so a malicious file raises a
    ModelError instead of running code.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_PICKLE_BYTES:
            raise ModelError(f"{path}: {size:,} bytes is too large for a vocabulary pickle")
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
    try:
        loaded = _PlainUnpickler(io.BytesIO(data), encoding="utf-8").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            UnicodeDecodeError, MemoryError, RecursionError, OverflowError) as exc:
        raise ModelError(f"{path}: not a vocabulary imgan can read safely ({exc}); use DF-GAN's "
                         "captions_DAMSM.pickle or a JSON vocabulary") from exc
    mapping = _word_to_index(loaded)
    if mapping is None:
        raise ModelError(f"{path}: holds no word -> index table (expected DF-GAN's [train, test, ixtoword, "
                         "wordtoix] list or a dict of words to indices)")
    return Vocabulary(mapping, max_words=max_words)


def _word_to_index(loaded: object) -> dict[str, int] | None:
    """``wordtoix`` from DF-GAN's 4-item list, or the object itself when it is such a dict."""
    candidates = [loaded]
    if isinstance(loaded, (list, tuple)) and len(loaded) == 4:
        candidates.insert(0, loaded[3])
    for candidate in candidates:
        if isinstance(candidate, dict) and not _vocabulary_problems(candidate):
            return dict(candidate)
    return None


# --------------------------------------------------------------------------------------------
# JSON, the form imgan keeps


def vocabulary_json(vocabulary: Vocabulary) -> str:
    """The vocabulary as compact JSON: ``{"max_words": 18, "words": {"a": 1, ...}}``."""
    return json.dumps({"max_words": vocabulary.max_words, "words": dict(vocabulary.word_to_index)},
                      ensure_ascii=True, separators=(",", ":"))


def vocabulary_from_json(text: str, *, source: str = "vocabulary") -> Vocabulary:
    """Read ``vocabulary_json``'s form (or a bare word -> index object)."""
    try:
        loaded = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ModelError(f"{source}: not JSON ({exc})") from exc
    if isinstance(loaded, dict) and "words" in loaded:
        max_words = loaded.get("max_words", MAX_WORDS)
        if not isinstance(max_words, int) or isinstance(max_words, bool):
            raise ModelError(f"{source}: max_words {max_words!r} is not a whole number")
        try:
            return Vocabulary(loaded["words"], max_words=max_words)
        except ModelError as exc:
            raise ModelError(f"{source}: {exc}") from exc
    try:
        return Vocabulary(loaded)
    except ModelError as exc:
        raise ModelError(f"{source}: {exc}") from exc
