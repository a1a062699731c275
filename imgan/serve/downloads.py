"""Model downloads started from the page: the hub's verified fetch in a thread, its byte progress kept for polling."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from imgan import catalog, hub
from imgan.errors import ImganError
from imgan.serve.commands import is_installed
from imgan.serve.uploads import ApiError

log = logging.getLogger(__name__)


@dataclass
class Download:
    """Where one model's download stands."""

    name: str
    state: str = "idle"  # idle | running | done | failed
    done: int = 0
    total: int | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "done": self.done, "total": self.total, "error": self.error}


def model_record(spec: hub.WeightSpec) -> dict[str, Any]:
    """One row of the page's model list."""
    return {"name": spec.name, "task": spec.task, "description": spec.description, "installed": is_installed(spec),
            "embedded": spec.builtin or spec.embedded is not None, "size_bytes": spec.size,
            "downloadable": _downloadable(spec)}


def model_records() -> list[dict[str, Any]]:
    return [model_record(spec) for spec in catalog.listed_specs()]


def _downloadable(spec: hub.WeightSpec) -> bool:
    return not spec.builtin and spec.embedded is None and spec.local is None and bool(spec.urls)


def _listed_spec(name: str) -> hub.WeightSpec:
    """The registry entry ``name`` as the model list shows it; 404 for any other name."""
    for spec in catalog.listed_specs():
        if spec.name == name:
            return spec
    raise ApiError(404, f"no model called {name[:60]!r}; see the model list")


class Downloads:
    """Downloads by model name; one at a time per model, any number of models at once."""

    def __init__(self) -> None:
        self._downloads: dict[str, Download] = {}
        self._lock = threading.Lock()

    def status(self, name: str) -> dict[str, Any]:
        spec = _listed_spec(name)
        with self._lock:
            download = self._downloads.get(name)
            if download is not None:
                return download.as_json()
        return Download(name, state="done" if is_installed(spec) else "idle").as_json()

    def start(self, name: str) -> dict[str, Any]:
        """Start downloading ``name`` (nothing to do when it is there or already coming)."""
        spec = _listed_spec(name)
        if not _downloadable(spec):
            raise ApiError(422, f"{name} comes with imgan; there is nothing to download")
        with self._lock:
            download = self._downloads.get(name)
            if download is not None and download.state == "running":
                return download.as_json()
            download = self._downloads[name] = Download(name, state="running")
        threading.Thread(target=self._fetch, args=(spec, download), daemon=True, name=f"imgan-download-{name}").start()
        return download.as_json()

    def _fetch(self, spec: hub.WeightSpec, download: Download) -> None:
        def progress(done: int, total: int | None) -> None:
            with self._lock:
                download.done, download.total = done, total

        try:
            path = hub.fetch(spec, progress=progress)
        except ImganError as error:
            state, message = "failed", str(error).strip().splitlines()[0]
        except Exception as error:  # noqa: BLE001 - reported on the page, the server goes on
            log.exception("downloading %s failed", spec.name)
            state, message = "failed", f"{type(error).__name__}: {error}"
        else:
            state, message = "done", None
            size = path.stat().st_size
            with self._lock:
                download.done, download.total = size, size
        with self._lock:
            download.state, download.error = state, message
