"""Pipe-table rows read with their header: a row is an answer only together with its column names.

Parsers render every table (Markdown, HTML, CSV/TSV, PDF) as Markdown pipe lines, one row a line, so a row is
a span of the canonical text that a citation can quote exactly. What the row *says* needs its header:
``| Private car | 0.32 EUR per km |`` answers "the rate for a private car" only once it reads
``Item: Private car; Rate: 0.32 EUR per km``. This module finds a row's table and header in a text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SEPARATOR_CELL = re.compile(r"^\s*:?-{2,}:?\s*$")
_SPLIT = re.compile(r"(?<!\\)\|")


def is_table_line(line: str) -> bool:
    """A pipe-table line: starts with ``|`` after optional indentation."""
    return line.lstrip(" \t").startswith("|")


def cells(line: str) -> list[str]:
    """The cells of one pipe-table line, stripped, with ``\\|`` unescaped."""
    s = line.strip()
    if s.startswith("|"):
        s = s[1:]
    if s.endswith("|") and not s.endswith("\\|"):
        s = s[:-1]
    return [c.strip().replace("\\|", "|") for c in _SPLIT.split(s)]


def is_separator(line: str) -> bool:
    """The ``|---|:--:|`` line under a Markdown table's header."""
    cs = cells(line)
    return bool(cs) and all(_SEPARATOR_CELL.match(c) for c in cs)


@dataclass(frozen=True)
class RowContext:
    """A table row located in a text: its cells, its table's header cells, and its role."""

    header: list[str]
    row: list[str]
    is_header: bool
    is_separator: bool

    def reading(self) -> str:
        """The row as a reader takes it in: ``Column: value; ...`` (values under an empty column name alone)."""
        parts = []
        for i, value in enumerate(self.row):
            if not value:
                continue
            name = self.header[i] if i < len(self.header) else ""
            parts.append(f"{name}: {value}" if name and name != value else value)
        return "; ".join(parts)


def _line_bounds(text: str, pos: int) -> tuple[int, int]:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return start, len(text) if end < 0 else end


def table_start(text: str, pos: int) -> int:
    """Offset of the first line of the table block holding offset ``pos`` (contiguous pipe lines)."""
    start, _ = _line_bounds(text, pos)
    while start > 0:
        prev_start, prev_end = _line_bounds(text, start - 1)
        if not is_table_line(text[prev_start:prev_end]):
            break
        start = prev_start
    return start


def row_context(text: str, pos: int) -> RowContext | None:
    """The row at offset ``pos`` of ``text`` with its table's header, or None when that line is not a table row.

    The header is the block's first line when the second is a ``|---|`` separator, and also when there is no
    separator (tables pasted without one usually still start with their column names).
    """
    line_start, line_end = _line_bounds(text, pos)
    line = text[line_start:line_end]
    if not is_table_line(line):
        return None
    first = table_start(text, line_start)
    h_start, h_end = _line_bounds(text, first)
    header = cells(text[h_start:h_end])
    return RowContext(
        header=header,
        row=cells(line),
        is_header=first == line_start,
        is_separator=is_separator(line),
    )
