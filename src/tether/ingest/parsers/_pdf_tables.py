"""Tables in PDFs: rows recovered from the page layout, so a row reads (and is cited) as one line.

pypdf's plain extraction flattens a table into one cell per line (or one row run together), so no line holds
a row. Its layout mode keeps the page's columns as runs of spaces. Where the plain text of a page looks like
a flattened table (a run of short lines), the layout text is searched for tables: consecutive lines of two or
more cells whose starts line up with the first line's columns. Each table found is put back into the plain
text in place of its flattened cells, as Markdown pipe rows under its header, so the rest of the page stays
exactly as pypdf extracts it. Where the cells cannot be found in order in the plain text, nothing changes.
"""

from __future__ import annotations

import re
from typing import Any

_CELL = re.compile(r"\S(?:.*?\S)?(?=\s{2,}|\s*$)")
_SHORT_LINE = 40  # characters: a flattened table is a run of lines at most this long
_MIN_SHORT_RUN = 6  # such lines in a row before the layout is read at all
_ALIGN = 3  # characters a cell may start off its column


def _cells(line: str) -> list[tuple[int, str]]:
    """(start column, text) of each cell: text runs separated by two or more spaces."""
    return [(m.start(), m.group()) for m in _CELL.finditer(line)]


def _looks_flattened(text: str) -> bool:
    run = 0
    for line in text.splitlines():
        s = line.strip()
        run = run + 1 if s and len(s) <= _SHORT_LINE else 0
        if run >= _MIN_SHORT_RUN:
            return True
    return False


def _column(starts: list[int], x: int) -> int | None:
    """Index of the column starting at or just before ``x`` (within the alignment slack), or None."""
    best = None
    for i, s in enumerate(starts):
        if s - _ALIGN <= x:
            best = i
    if best is None:
        return None
    nxt = starts[best + 1] if best + 1 < len(starts) else None
    if nxt is not None and x >= nxt - _ALIGN:
        return None
    return best


def tables_in_layout(layout: str) -> list[list[list[str]]]:
    """Tables found in a page's layout text: each a list of rows (header first), each a list of cells."""
    tables: list[list[list[str]]] = []
    lines = layout.splitlines()
    i = 0
    while i < len(lines):
        head = _cells(lines[i])
        if len(head) < 2:
            i += 1
            continue
        starts = [x for x, _ in head]
        rows = [[c for _, c in head]]
        j = i + 1
        while j < len(lines):
            cells = _cells(lines[j])
            if len(cells) < 2:
                break
            row = [""] * len(starts)
            ok = True
            for x, c in cells:
                col = _column(starts, x)
                if col is None or row[col]:
                    ok = False
                    break
                row[col] = c
            if not ok:
                break
            rows.append(row)
            j += 1
        if len(rows) >= 3:  # a header and two rows at least: two lines of two phrases are often just prose
            tables.append(rows)
            i = j
        else:
            i += 1
    return tables


def _render(rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(rows[0]), "|" + "|".join(["---"] * len(rows[0])) + "|", *map(line, rows[1:])])


def put_back(plain: str, tables: list[list[list[str]]]) -> str:
    """``plain`` with each table's flattened cells (in row order, whitespace between them) replaced by pipe rows."""
    out = plain
    for rows in tables:
        cells = [c for row in rows for c in row if c]
        pattern = r"\s+".join(re.escape(c) for c in cells)
        m = re.search(pattern, out)
        if m is None:
            continue  # the plain text orders the cells otherwise: leave it as extracted
        before, after = out[: m.start()].rstrip(), out[m.end() :].lstrip()
        # a paragraph of its own: blank lines around it make it its own block (kind "table")
        out = (before + "\n\n" if before else "") + _render(rows) + ("\n\n" + after if after else "")
    return out


def with_tables(plain: str, page: Any) -> str:
    """The page's plain text with the tables its layout shows as pipe rows (unchanged when it shows none)."""
    if not _looks_flattened(plain):
        return plain
    try:
        layout = page.extract_text(extraction_mode="layout") or ""
    except Exception:  # layout mode is a refinement: a page it cannot read keeps its plain text
        return plain
    tables = tables_in_layout(layout)
    return put_back(plain, tables) if tables else plain
