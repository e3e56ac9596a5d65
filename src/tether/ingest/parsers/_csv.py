"""CSV and TSV parser: the table rendered as a Markdown pipe table, one row a line, the header kept on top.

The canonical text is that rendering (as HTML's is a Markdown rendering), so a citation quotes one row
exactly, and the answerer reads it with its header (:mod:`tether.text._tables`).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from tether.contracts import Block, ParsedDocument
from tether.errors import IngestError

csv.field_size_limit(1 << 24)  # one cell may be long; the file as a whole is capped by ingest.max_file_mb


def _cell(value: str) -> str:
    return " ".join(value.split()).replace("|", "\\|")


def parse_csv(text: str, path: Path) -> ParsedDocument:
    """Parse comma- (``.csv``) or tab-separated (``.tsv``, ``.tab``) text; the first row is the header.

    Quoted fields may hold delimiters and newlines (whitespace inside a cell is collapsed to one space).
    Short rows are padded, so every line has the header's width; empty rows are dropped.

    Raises:
        IngestError: the text is not parseable as CSV (the message names the line), or it has no rows.
    """
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    try:
        rows = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if any(c.strip() for c in r)]
    except csv.Error as e:
        raise IngestError(f"not valid CSV: {e}") from None
    if not rows:
        raise IngestError("no text content found")
    width = max(len(r) for r in rows)
    lines = []
    for i, row in enumerate(rows):
        padded = [_cell(c) for c in row] + [""] * (width - len(row))
        lines.append("| " + " | ".join(padded) + " |")
        if i == 0:
            lines.append("|" + "|".join(["---"] * width) + "|")
    title = path.stem.replace("_", " ").replace("-", " ").strip() or path.name
    body = "\n".join(lines)
    canonical = f"# {title}\n\n{body}\n"
    heading_end = len(f"# {title}")
    body_start = heading_end + 2
    return ParsedDocument(
        text=canonical,
        title=title,
        blocks=[
            Block(start=0, end=heading_end, kind="heading", section=[title]),
            Block(start=body_start, end=body_start + len(body), kind="table", section=[title]),
        ],
    )
