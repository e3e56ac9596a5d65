"""File parsers: bytes of one file -> :class:`~tether.contracts.ParsedDocument`."""

from __future__ import annotations

from pathlib import Path

from tether.contracts import ParsedDocument
from tether.errors import IngestError
from tether.ingest.parsers._common import decode_text
from tether.ingest.parsers._csv import parse_csv
from tether.ingest.parsers._html import parse_html
from tether.ingest.parsers._markdown import parse_markdown
from tether.ingest.parsers._pdf import parse_pdf
from tether.ingest.parsers._text import parse_text

_TEXT_PARSERS = {
    ".md": parse_markdown,
    ".markdown": parse_markdown,
    ".html": parse_html,
    ".htm": parse_html,
    ".txt": parse_text,
    ".text": parse_text,
    ".rst": parse_text,
    ".csv": parse_csv,
    ".tsv": parse_csv,
    ".tab": parse_csv,
}
SUPPORTED_SUFFIXES: frozenset[str] = frozenset({*_TEXT_PARSERS, ".pdf"})


def parse_file(path: Path, data: bytes) -> ParsedDocument:
    """Parse one file, choosing the parser by its lower-cased suffix.

    Args:
        path: The file path (only its suffix and stem are used).
        data: The file content.

    Returns:
        The canonical text, title and blocks of the file.

    Raises:
        IngestError: The type is unsupported, or the file is empty, binary, not UTF-8, a damaged
            or encrypted PDF, or has no text; the message is a one-line reason.
    """
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return _require_text(parse_pdf(data, path))
    parser = _TEXT_PARSERS.get(suffix)
    if parser is None:
        raise IngestError(f"unsupported file type '{suffix or path.name}'")
    return _require_text(parser(decode_text(data), path))


def _require_text(doc: ParsedDocument) -> ParsedDocument:
    if not doc.blocks:
        raise IngestError("no text content found")
    return doc


__all__ = ["SUPPORTED_SUFFIXES", "parse_file"]
