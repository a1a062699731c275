"""Rich consoles: stdout carries results only; progress, logs and errors go to stderr."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.markup import escape

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)

_LEVEL_STYLES = {logging.WARNING: "yellow", logging.ERROR: "red", logging.CRITICAL: "red"}


class _ConsoleHandler(logging.Handler):
    """One line per record on stderr: 'warning: ...' in colour, info as plain text."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = escape(record.getMessage())
            style = _LEVEL_STYLES.get(record.levelno)
            if style:
                message = f"[{style}]{record.levelname.lower()}:[/] {message}"
            elif record.levelno < logging.INFO:
                message = f"[dim]{record.name}: {message}[/]"
            err.print(message, markup=True, highlight=False)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def setup_logging(*, quiet: bool = False, debug: bool = False) -> None:
    """Route library logging to stderr; quiet keeps warnings and errors only."""
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    root = logging.getLogger("imgan")
    root.handlers[:] = [_ConsoleHandler()]
    root.setLevel(level)
    root.propagate = False
