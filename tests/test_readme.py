"""The README stays true: its model table is the registry's, its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from imgan.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"


def test_model_table_is_generated_from_the_registry() -> None:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- models:start -->\n(.*?)\n<!-- models:end -->", text, re.S)
    assert match, "README.md lost its <!-- models:start/end --> markers"
    generated = CliRunner().invoke(app, ["models", "list", "--markdown"]).stdout.strip()
    assert match.group(1).strip() == generated, "run: imgan models list --markdown, and paste it"


def test_install_and_test_commands_match_ci() -> None:
    text = README.read_text(encoding="utf-8")
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert 'pip install -e ".[test]"' in text and 'pip install -e ".[test]"' in ci
    assert "pytest -q" in text and "pytest -q" in ci
