"""Rich consoles: stdout carries results only; progress, logs and errors go to stderr."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


def setup_logging(*, quiet: bool = False, debug: bool = False) -> None:
    """Route library logging to stderr through Rich; quiet keeps warnings and errors only."""
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    handler = RichHandler(console=err, show_time=False, show_path=debug, markup=False,
                          rich_tracebacks=debug)
    root = logging.getLogger("imgan")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
