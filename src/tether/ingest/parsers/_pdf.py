"""PDF parser: pypdf page text, one paragraph block per blank-line-separated run; tables as pipe rows."""

from __future__ import annotations

import io
import re
from pathlib import Path

from pypdf import PdfReader

from tether.contracts import BlockKind, ParsedDocument
from tether.errors import IngestError
from tether.ingest.parsers._common import BlockList
from tether.ingest.parsers._pdf_tables import with_tables

_PARAGRAPH_BREAK_RE = re.compile(r"\n[ \t\r\f\v]*\n")
_PAGE_SEP = "\n\n"
_PLACEHOLDER_TITLES = frozenset({"untitled", "untitled document", "title", "document"})


def parse_pdf(data: bytes, path: Path) -> ParsedDocument:
    """Extract the text of a PDF.

    The canonical text is each page's extracted text (trimmed), pages joined by a blank line;
    pages without text are left out. Blocks are the blank-line-separated paragraphs of each page,
    with section ``["Page n"]`` (1-based). Hard-wrapped lines are kept as extracted.

    Args:
        data: The raw PDF bytes.
        path: The file path (its stem is the fallback title).

    Returns:
        The parsed document; the title is the metadata ``/Title`` (unless a placeholder such as
        ``untitled``), else the file stem.

    Raises:
        IngestError: The PDF is empty, encrypted, corrupt, or has no extractable text.
    """
    if not data.strip():
        raise IngestError("empty file")
    try:
        reader = PdfReader(io.BytesIO(data))
        _decrypt(reader)
        title = _title(reader)
        pages = [with_tables(page.extract_text() or "", page) for page in reader.pages]
    except IngestError:
        raise
    except Exception as exc:  # pypdf raises many types on damaged files
        raise IngestError(f"corrupt PDF: {_short(exc)}") from None
    parts: list[str] = []
    page_spans: list[tuple[int, int, int]] = []
    pos = 0
    for number, page_text in enumerate(pages, start=1):
        page_text = page_text.strip()
        if not page_text:
            continue
        if parts:
            parts.append(_PAGE_SEP)
            pos += len(_PAGE_SEP)
        parts.append(page_text)
        page_spans.append((number, pos, pos + len(page_text)))
        pos += len(page_text)
    if not parts:
        raise IngestError("PDF has no extractable text (scanned image?)")
    text = "".join(parts)
    blocks = BlockList(text)
    for number, start, end in page_spans:
        para_start = start
        for brk in _PARAGRAPH_BREAK_RE.finditer(text, start, end):
            blocks.add(para_start, brk.start(), _kind(text, para_start), [f"Page {number}"])
            para_start = brk.end()
        blocks.add(para_start, end, _kind(text, para_start), [f"Page {number}"])
    return ParsedDocument(text=text, title=title or path.stem, blocks=blocks.blocks)


def _kind(text: str, start: int) -> BlockKind:
    """A paragraph that starts with a pipe row is a table recovered from the layout (see _pdf_tables)."""
    return "table" if text.startswith("| ", start) else "paragraph"


def _decrypt(reader: PdfReader) -> None:
    """Open an encrypted PDF with the empty password, or fail."""
    if not reader.is_encrypted:
        return
    try:
        opened = bool(reader.decrypt(""))
    except Exception:
        opened = False
    if not opened:
        raise IngestError("encrypted PDF; decrypt it first")


def _title(reader: PdfReader) -> str:
    """The document-information title, or an empty string."""
    try:
        meta = reader.metadata
        raw = meta.title if meta is not None else None
    except Exception:
        return ""
    title = " ".join(str(raw).split()) if raw else ""
    return "" if title.lower() in _PLACEHOLDER_TITLES else title


def _short(exc: Exception) -> str:
    """A one-line, bounded description of an exception."""
    lines = str(exc).strip().splitlines()
    message = lines[0] if lines else type(exc).__name__
    return message[:120]
