"""``key=value`` options on a command line (evaluate's method specs, convert's ``--recon-option``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["parse_options", "parse_value"]


def parse_value(text: str) -> Any:
    """int, float, ``true``/``false``, ``none``/``null`` (any case) -> that value; anything else stays text."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_options(items: Iterable[str], what: str, value: Callable[[str], Any] = parse_value) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (keys and values stripped, empty items skipped).

    ``value`` turns each value's text into its value; raises ``ValueError("<what> '<item>' is not
    key=value")`` for an item without ``=`` or without a key.
    """
    options: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in items)):
        key, eq, text = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"{what} {item!r} is not key=value")
        options[key.strip()] = value(text.strip())
    return options
