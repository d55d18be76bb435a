"""Markdown tables, the one way every report and results file of the project writes them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["markdown_row", "markdown_table"]


def markdown_row(cells: Iterable[object]) -> str:
    """``| a | b | c |``: one table line, each cell through ``str`` with ``|`` replaced by ``/``."""
    return "| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |"


def markdown_table(header: Sequence[object], rows: Iterable[Iterable[object]]) -> list[str]:
    """The lines of a GitHub-flavoured table: column names, the ``|---|`` rule, one line per row.

    A row may be shorter than the header (e.g. one cell saying why a measurement failed)."""
    return [markdown_row(header), "|" + "---|" * len(header), *(markdown_row(r) for r in rows)]
