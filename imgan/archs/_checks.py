"""Argument checks shared by the network constructors."""

from __future__ import annotations

from collections.abc import Mapping


def require_positive(network: str, values: Mapping[str, object]) -> None:
    """ValueError naming the first of ``values`` that is not a positive integer."""
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{network} {name} must be a positive integer, not {value!r}")
