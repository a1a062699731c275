"""Captions to word indices: DF-GAN's tokeniser, the vocabulary and its unknown words, and reading
DF-GAN's vocabulary pickle without ever running code from it."""

from __future__ import annotations

import json
import pickle
import pickletools
from pathlib import Path

import pytest

from imgan.errors import ModelError
from imgan.text import Vocabulary, read_vocabulary_pickle, tokenize, vocabulary_from_json, vocabulary_json

BIRD_WORDS = {"<end>": 0, "this": 1, "bird": 2, "has": 3, "a": 4, "red": 5, "belly": 6, "and": 7, "white": 8,
              "wings": 9, "small": 10}


def test_tokenize_is_dfgans_lower_case_word_runs_with_non_ascii_removed() -> None:
    # DF-GAN: RegexpTokenizer(r'\w+').tokenize(sent.lower()), then t.encode('ascii', 'ignore').
    assert [looked for _, looked in tokenize("A Red-Bellied bird, 2 wings!")] == ["a", "red", "bellied", "bird",
                                                                                   "2", "wings"]
    assert tokenize("Café crème") == [("café", "caf"), ("crème", "crme")]
    assert tokenize("日本") == [("日本", "")]  # a word of \w characters that leaves nothing in ASCII
    assert tokenize("snake_case\ufffd\ufffdword") == [("snake_case", "snake_case"), ("word", "word")]
    assert tokenize("  ...  ") == []


def test_encode_reads_known_words_and_reports_the_unknown_ones_once() -> None:
    encoded = Vocabulary(BIRD_WORDS).encode("This bird has a purple belly and purple wings")
    assert encoded.indices == (1, 2, 3, 4, 6, 7, 9)
    assert encoded.words == ("this", "bird", "has", "a", "belly", "and", "wings")
    assert encoded.unknown == ("purple",)
    assert encoded.dropped == ()


def test_a_word_that_is_empty_in_ascii_is_unknown_not_silently_dropped() -> None:
    assert Vocabulary(BIRD_WORDS).encode("a bird 日本").unknown == ("日本",)


def test_only_the_first_max_words_known_words_are_read() -> None:
    encoded = Vocabulary(BIRD_WORDS, max_words=3).encode("this bird has a red belly")
    assert encoded.words == ("this", "bird", "has")
    assert encoded.dropped == ("a", "red", "belly")


def test_dfgans_vocabulary_pickle_is_read(tmp_path: Path) -> None:
    # captions_DAMSM.pickle: [train_captions, test_captions, ixtoword, wordtoix], protocol 2
    path = tmp_path / "captions_DAMSM.pickle"
    ixtoword = {index: word for word, index in BIRD_WORDS.items()}
    path.write_bytes(pickle.dumps([[[1, 2, 3]], [[2, 5]], ixtoword, BIRD_WORDS], protocol=2))
    vocabulary = read_vocabulary_pickle(path)
    assert dict(vocabulary.word_to_index) == BIRD_WORDS and vocabulary.size == 11 and vocabulary.max_words == 18


class Payload:
    def __reduce__(self) -> tuple:
        return (Path.touch, (Path("/nonexistent/imgan-pwned"),))  # would create a file if run


def test_a_pickle_that_names_code_is_refused_without_running_it(tmp_path: Path) -> None:
    path = tmp_path / "captions.pickle"
    path.write_bytes(pickle.dumps([[], [], {}, {"a": 1, "x": Payload()}], protocol=2))
    assert any(op.name in ("GLOBAL", "STACK_GLOBAL") for op, _, _ in pickletools.genops(path.read_bytes()))
    with pytest.raises(ModelError, match="it names .*; a vocabulary holds only words and numbers"):
        read_vocabulary_pickle(path)


def test_every_way_of_naming_a_callable_is_refused(tmp_path: Path) -> None:
    # GLOBAL 'os system', then REDUCE: the classic payload, written by hand in protocol 0.
    path = tmp_path / "evil.pickle"
    path.write_bytes(b"cos\nsystem\n(S'touch /tmp/imgan-pwned'\ntR.")
    with pytest.raises(ModelError, match="names os.system"):
        read_vocabulary_pickle(path)
    path.write_bytes(b"\x80\x02cbuiltins\neval\nq\x00X\x04\x00\x00\x001+1;q\x01\x85q\x02Rq\x03.")
    with pytest.raises(ModelError, match="names builtins.eval"):
        read_vocabulary_pickle(path)


def test_a_pickle_without_a_word_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "numbers.pickle"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ModelError, match="no word -> index table"):
        read_vocabulary_pickle(path)
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(ModelError, match="not a vocabulary imgan can read safely"):
        read_vocabulary_pickle(path)


def test_json_round_trip_keeps_words_indices_and_the_word_limit() -> None:
    vocabulary = Vocabulary(BIRD_WORDS, max_words=7)
    text = vocabulary_json(vocabulary)
    assert json.loads(text) == {"max_words": 7, "words": BIRD_WORDS}
    assert vocabulary_from_json(text) == vocabulary
    assert dict(vocabulary_from_json(json.dumps(BIRD_WORDS)).word_to_index) == BIRD_WORDS  # a bare table too


@pytest.mark.parametrize("table", [{}, {"a": "1"}, {"a": 1, "b": 1}, {"a": -1}, [1, 2], {"a": True}])
def test_a_malformed_table_is_refused(table: object) -> None:
    with pytest.raises(ModelError):
        vocabulary_from_json(json.dumps(table))
