"""Input expansion, output naming and companion lookup."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imgan.errors import InputError, OutputError
from imgan.paths import Source, check_target, expand_inputs, render_output, resolve_companion


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folders_are_searched_recursively_without_hidden_files_or_other_suffixes(tmp_path: Path) -> None:
    a, b = touch(tmp_path / "in" / "a.png"), touch(tmp_path / "in" / "deep" / "b.JPG")
    touch(tmp_path / "in" / ".hidden" / "c.png"), touch(tmp_path / "in" / "notes.txt")
    sources, unmatched = expand_inputs([str(tmp_path / "in")])
    assert [s.path for s in sources] == [a, b] and unmatched == []
    assert [s.relpath for s in sources] == ["", "deep"]


def test_globs_keep_their_base_and_a_pattern_matching_nothing_is_reported(tmp_path: Path) -> None:
    touch(tmp_path / "p" / "x" / "a.png")
    sources, unmatched = expand_inputs([f"{tmp_path}/p/**/*.png", f"{tmp_path}/none/*.png"])
    assert [s.relpath for s in sources] == ["x"]
    assert [s.name for s in unmatched] == [f"{tmp_path}/none/*.png"]


def test_duplicates_are_dropped_and_stdin_is_a_source(tmp_path: Path) -> None:
    a = touch(tmp_path / "a.png")
    sources, _ = expand_inputs([str(a), str(tmp_path), "-"])
    assert [s.name for s in sources] == [str(a), "<stdin>"]


def test_a_symlink_loop_is_one_input_that_fails_later_not_a_crash(tmp_path: Path) -> None:
    loop = tmp_path / "loop.png"
    os.symlink(loop, loop)
    good = touch(tmp_path / "good.png")
    sources, _ = expand_inputs([str(loop), str(good)])
    assert [s.path for s in sources] == [loop, good]
    check_target(Source(good), tmp_path / "out.png", overwrite=False, inputs={loop})


def test_output_templates(tmp_path: Path) -> None:
    source = Source(tmp_path / "sub" / "cat.jpg", root=tmp_path)
    assert render_output(source, None, ext="png", scale=4, model="m") == tmp_path / "sub" / "cat_x4.png"
    assert render_output(source, None, ext="png", scale=2.5, model="m", suffix="aged") == (
        tmp_path / "sub" / "cat_aged.png")
    assert render_output(source, str(tmp_path / "out") + "/", ext="jpg", scale=4, model="m") == (
        tmp_path / "out" / "sub" / "cat_x4.jpg")
    assert render_output(source, "{model}-{stem}.{ext}", ext="webp", scale=4, model="esr") == Path("esr-cat.webp")
    assert render_output(Source(None), None, ext="png", scale=4, model="m") is None
    with pytest.raises(OutputError, match=r"unknown field 'foo'"):
        render_output(source, "{foo}.png", ext="png", scale=4, model="m")


def test_companion_lookup_is_ambiguous_when_two_files_share_the_stem(tmp_path: Path) -> None:
    touch(tmp_path / "masks" / "a.png"), touch(tmp_path / "masks" / "a.jpg")
    with pytest.raises(InputError, match="a.jpg, a.png all match"):
        resolve_companion(str(tmp_path / "masks"), Source(tmp_path / "a.png"), name="mask")


def test_a_companion_folder_never_pairs_an_image_with_itself(tmp_path: Path) -> None:
    image = touch(tmp_path / "a.png")
    with pytest.raises(InputError, match=r"no image named a\.\*"):
        resolve_companion(str(tmp_path), Source(image), name="mask")


def test_a_companion_template_with_an_unknown_field_says_which(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"--mask '\{scale\}.png': unknown field 'scale'"):
        resolve_companion("{scale}.png", Source(tmp_path / "a.png"), name="mask")


def test_targets_never_replace_inputs_or_existing_files_without_overwrite(tmp_path: Path) -> None:
    a, b = touch(tmp_path / "a.png"), touch(tmp_path / "b.png")
    with pytest.raises(OutputError, match="never overwrites inputs"):
        check_target(Source(a), b, overwrite=True, inputs={a.resolve(), b.resolve()})
    with pytest.raises(OutputError, match="already exists"):
        check_target(Source(a), b, overwrite=False, inputs={a.resolve()})
    check_target(Source(a), b, overwrite=True, inputs={a.resolve()})
