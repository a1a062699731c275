"""Fixtures shared by every test module."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def imgan_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point IMGAN_HOME at a fresh temp dir and clear IMGAN_OFFLINE: no test sees the real cache."""
    home = tmp_path / "imgan-home"
    monkeypatch.setenv("IMGAN_HOME", str(home))
    monkeypatch.delenv("IMGAN_OFFLINE", raising=False)
    return home
