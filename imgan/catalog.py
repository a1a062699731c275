"""The registry as people read it: records for ``imgan models info``, tables for ``models list``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imgan import hub

if TYPE_CHECKING:
    from rich.table import Table

    from imgan.hub import WeightSpec

COLUMNS = ("name", "task", "arch", "scale", "size", "licence")


def human_size(size: int | None, *, builtin: bool = False) -> str:
    """Bytes as megabytes for a table ('?' when unknown, '-' when there is no file)."""
    if builtin:
        return "-"
    return f"{size / 1e6:.1f} MB" if size else "?"


def listed_specs(task: str | None = None) -> list[WeightSpec]:
    """The models a user picks from (hidden helpers left out; added ones last), of one task or all."""
    return [spec for spec in hub.all_specs().values() if not spec.hidden and (task is None or spec.task == task)]


def spec_record(spec: WeightSpec) -> dict[str, Any]:
    """Everything the registry and the cache know about one model, as JSON-ready values."""
    path = None if spec.builtin else hub.cached_path(spec)
    record: dict[str, Any] = {
        "name": spec.name, "task": spec.task, "arch": spec.arch, "params": dict(spec.params),
        "scale": spec.scale, "urls": list(spec.urls), "digest": spec.digest, "size": spec.size,
        "format": spec.format, "key": spec.key, "value_range": list(spec.value_range),
        "license": spec.license, "source": spec.source, "paper": spec.paper,
        "description": spec.description, "denoise_companion": spec.denoise_companion,
        "path": None if path is None else str(path), "cached": path is None or path.exists(),
    }
    # For weights upstream publishes no digest for: what imgan recorded on the first download.
    pin = hub.read_pin(path) if path is not None and spec.digest == hub.UNPUBLISHED else None
    if pin is not None:
        record.update(recorded_sha256=pin[0], recorded_size=pin[1])
    return record


def _cells(spec: WeightSpec) -> tuple[str, ...]:
    return (spec.name, spec.task, spec.arch, f"x{spec.scale}", human_size(spec.size, builtin=spec.builtin),
            spec.license)


def markdown_table(specs: list[WeightSpec]) -> str:
    """The model table of the README."""
    lines = ["| model | task | arch | scale | size | licence | description |", "|---|---|---|---|---|---|---|"]
    for spec in specs:
        name, *rest = _cells(spec)
        lines.append(f"| `{name}` | {' | '.join(rest)} | {spec.description} |")
    return "\n".join(lines)


def rich_table(specs: list[WeightSpec]) -> Table:
    """The terminal table of ``imgan models list``, with whether each file is cached."""
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in (*COLUMNS, "cached"):
        table.add_column(column, no_wrap=True)
    table.add_column("description", min_width=20)
    for spec in specs:
        cached = "built in" if spec.builtin else "yes" if hub.cached_path(spec).exists() else ""
        table.add_row(*_cells(spec), cached, spec.description)
    return table
