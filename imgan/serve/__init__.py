"""``imgan serve``: one local web page for every command, on FastAPI + uvicorn (the ``serve`` extra).

Importing this package loads neither FastAPI nor torch: ``create_app``, ``serve`` and
``serve_in_thread`` (``imgan.serve.app``) load them on first use.
"""

from __future__ import annotations

from typing import Any

from imgan.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app", "serve", "serve_in_thread"]


def __getattr__(name: str) -> Any:
    if name in ("create_app", "serve", "serve_in_thread"):
        from imgan.serve import app

        return getattr(app, name)
    raise AttributeError(f"module 'imgan.serve' has no attribute {name!r}")
