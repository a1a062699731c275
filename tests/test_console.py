"""What the console shows on stderr while files are processed: tile bars for a long file, on a terminal only."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from imgan import console
from imgan.batch import Job, Outcome
from imgan.console import TileBars, report_outcomes, tile_bars
from imgan.paths import Source


def stderr(monkeypatch: pytest.MonkeyPatch, *, terminal: bool) -> io.StringIO:
    """Capture the console's stderr, as a terminal or as a pipe."""
    buffer = io.StringIO()
    monkeypatch.setattr(console, "err", Console(file=buffer, force_terminal=terminal, width=100))
    return buffer


def one_file_in_tiles(tiles: TileBars, name: str, count: int) -> Iterator[Outcome]:
    """The outcomes of one file whose model run went through ``count`` tiles."""
    for done in range(count + 1):
        tiles(name, done, count)
    yield Outcome(Job(Source(Path(name)), None, "png"), "ok")


class Clock:
    """Seconds that pass only when a test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_file_running_longer_than_the_delay_gets_a_bar_of_its_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = stderr(monkeypatch, terminal=True)
    clock = Clock()
    tiles = TileBars(delay=1.5, clock=clock)

    def slow_file() -> Iterator[Outcome]:
        tiles("photo.png", 0, 12)
        clock.now = 1.0
        tiles("photo.png", 1, 12)
        assert "tiles" not in shown.getvalue()  # a second in: still nothing
        clock.now = 2.0
        tiles("photo.png", 2, 12)
        assert "photo.png: tiles" in shown.getvalue() and "2/12" in shown.getvalue()
        yield Outcome(Job(Source(Path("photo.png")), None, "png"), "ok")

    assert report_outcomes(slow_file(), total=1, as_json=False, quiet=False, debug=False, tiles=tiles) == 0


def test_a_quick_file_shows_no_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = stderr(monkeypatch, terminal=True)
    tiles = TileBars(delay=1.5, clock=Clock())
    report_outcomes(one_file_in_tiles(tiles, "photo.png", 12), total=1, as_json=False, quiet=False, debug=False,
                    tiles=tiles)
    assert "tiles" not in shown.getvalue()


@pytest.mark.parametrize(("terminal", "quiet", "as_json"), [(False, False, False), (True, True, False),
                                                            (True, False, True)])
def test_no_tile_bar_off_a_terminal_or_with_quiet_or_json(monkeypatch: pytest.MonkeyPatch, terminal: bool,
                                                          quiet: bool, as_json: bool) -> None:
    shown = stderr(monkeypatch, terminal=terminal)
    tiles = TileBars(delay=0.0)  # would show at once
    report_outcomes(one_file_in_tiles(tiles, "photo.png", 12), total=1, as_json=as_json, quiet=quiet, debug=False,
                    tiles=tiles)
    assert "tiles" not in shown.getvalue()
    assert tile_bars(quiet=quiet, as_json=as_json) is None


def test_tile_bars_are_made_for_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr(monkeypatch, terminal=True)
    assert isinstance(tile_bars(quiet=False, as_json=False), TileBars)
