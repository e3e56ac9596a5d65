"""HTML parser: a Markdown-like canonical text (headings, paragraphs, lists, code, pipe tables)."""

from __future__ import annotations

from pathlib import Path

from selectolax.lexbor import LexborHTMLParser, LexborNode

from tether.contracts import Block, BlockKind, ParsedDocument
from tether.errors import IngestError
from tether.ingest.parsers._common import SectionPath

_DROPPED = [
    "script", "style", "noscript", "nav", "footer", "header", "aside", "form", "svg",
    "template", "iframe", "canvas", "object", "embed",
]  # fmt: skip
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_INLINE_TEXT = (
    "a abbr acronym b bdi bdo big cite code data del dfn em font i img ins kbd label mark q rp rt ruby "
    "s samp small span strike strong sub sup time tt u var wbr"
)
_INLINE = frozenset(_INLINE_TEXT.split())
_BLOCK_SELECTOR = "p,div,h1,h2,h3,h4,h5,h6,ul,ol,table,pre,blockquote,section,article,li,dl"


def parse_html(text: str, path: Path) -> ParsedDocument:
    """Parse HTML into Markdown-like canonical text.

    Headings become ``# Title`` lines, list items ``- item`` (``1. item`` in ordered lists, nested
    items indented by two spaces per level), ``<pre>`` a code block and tables Markdown pipe
    tables (first row as header, cells whitespace-collapsed, ``|`` escaped). Blocks are separated
    by a blank line, list items of one list by a newline; each top-level list item is a ``list``
    block. ``script``, ``style``, ``nav``, ``header``, ``footer``, ``aside``, ``form``, ``svg`` and
    similar are dropped.

    Args:
        text: The decoded HTML.
        path: The file path (its stem is the fallback title).

    Returns:
        The parsed document; the title is ``<title>``, else the first ``<h1>``, else the stem.

    Raises:
        IngestError: The page is nested too deeply to walk.
    """
    tree = LexborHTMLParser(text)
    tree.strip_tags(_DROPPED)
    builder = _Builder()
    if tree.body is not None:
        try:
            builder.walk(tree.body)
        except RecursionError:
            raise IngestError("HTML is nested too deeply to parse") from None
        builder.flush()
    title_node = tree.css_first("title")
    title = _collapse(title_node.text()) if title_node is not None else ""
    return ParsedDocument(text=builder.text(), title=title or builder.first_h1 or path.stem, blocks=builder.blocks)


def _collapse(text: str) -> str:
    """Collapse runs of whitespace into single spaces and trim."""
    return " ".join(text.split())


def _inline_text(node: LexborNode) -> str:
    """All text under ``node`` (``<br>`` counts as a space), not collapsed."""
    parts: list[str] = []
    for child in node.traverse(include_text=True):
        if child.tag == "-text":
            parts.append(child.text_content or "")
        elif child.tag == "br":
            parts.append(" ")
    return "".join(parts)


class _Builder:
    """Walks the DOM and writes the canonical text and its blocks."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._pos = 0
        self._buffer: list[str] = []
        self._sections = SectionPath()
        self.blocks: list[Block] = []
        self.first_h1 = ""

    def text(self) -> str:
        """The canonical text written so far."""
        return "".join(self._parts)

    def emit(self, content: str, kind: BlockKind, section: list[str], sep: str = "\n\n") -> None:
        """Append ``content`` (trimmed; nothing if it is blank) as one block."""
        content = content.strip()
        if not content:
            return
        if self._parts:
            self._parts.append(sep)
            self._pos += len(sep)
        start = self._pos
        self._parts.append(content)
        self._pos += len(content)
        self.blocks.append(Block(start=start, end=self._pos, kind=kind, section=section))

    def flush(self) -> None:
        """Emit the pending inline text as a paragraph."""
        content = _collapse("".join(self._buffer))
        self._buffer.clear()
        if content:
            self.emit(content, "paragraph", self._sections.path)

    def walk(self, node: LexborNode) -> None:
        """Visit the children of a container element."""
        for child in node.iter(include_text=True):
            tag = child.tag or ""
            if tag == "-text":
                self._buffer.append(child.text_content or "")
            elif tag == "br":
                self._buffer.append(" ")
            elif tag.startswith("-"):
                continue  # comments, doctype
            elif tag in _INLINE and child.css_first(_BLOCK_SELECTOR) is None:
                self._buffer.append(_inline_text(child))
            else:
                self.flush()
                self._block(child, tag)
                self.flush()

    def _block(self, node: LexborNode, tag: str) -> None:
        """Emit a block-level element."""
        if tag in _HEADINGS:
            title = _collapse(_inline_text(node))
            if title:
                level = _HEADINGS[tag]
                self.emit("#" * level + " " + title, "heading", self._sections.enter(level, title))
                if level == 1 and not self.first_h1:
                    self.first_h1 = title
        elif tag in ("ul", "ol"):
            for i, item in enumerate(_list_items(node, 0)):
                self.emit(item, "list", self._sections.path, sep="\n" if i else "\n\n")
        elif tag == "pre":
            code = node.text(deep=True, separator="").strip()
            if code:
                self.emit(code, "code", self._sections.path)
        elif tag == "table":
            self._table(node)
        elif tag != "hr":
            self.walk(node)

    def _table(self, node: LexborNode) -> None:
        """Emit a table as a Markdown pipe table (its caption as a paragraph before it)."""
        trs: list[LexborNode] = []
        for child in node.iter():
            if child.tag == "caption":
                self._buffer.append(_inline_text(child))
                self.flush()
            elif child.tag == "tr":
                trs.append(child)
            elif child.tag in ("thead", "tbody", "tfoot"):
                trs.extend(row for row in child.iter() if row.tag == "tr")
        rows = [row for row in _grid(trs) if any(row)]
        if not rows:
            return
        width = max(len(row) for row in rows)
        lines = [_row_line(row + [""] * (width - len(row))) for row in rows]
        lines.insert(1, _row_line(["---"] * width))
        self.emit("\n".join(lines), "table", self._sections.path)


_MAX_SPAN = 100  # a colspan/rowspan beyond this is taken as this (a hostile page cannot blow up a table)


def _span(cell: LexborNode, name: str) -> int:
    try:
        return max(1, min(_MAX_SPAN, int(str(cell.attributes.get(name) or "1").strip())))
    except ValueError:
        return 1


def _grid(rows: list[LexborNode]) -> list[list[str]]:
    """The rows' cell texts laid out on a grid: a cell with ``colspan`` fills its columns, one with ``rowspan``
    repeats in the rows below, so every row of the rendered table reads whole with its header."""
    grid: list[list[str]] = []
    carried: dict[int, tuple[str, int]] = {}  # column -> (text, rows still to fill)
    for tr in rows:
        out: list[str] = []
        for cell in tr.iter():
            if cell.tag not in ("td", "th"):
                continue
            _fill_carried(out, carried)
            text = _collapse(_inline_text(cell)).replace("|", "\\|")
            down = _span(cell, "rowspan")
            for _ in range(_span(cell, "colspan")):
                if down > 1:
                    carried[len(out)] = (text, down - 1)
                out.append(text)
        _fill_carried(out, carried)
        grid.append(out)
    return grid


def _fill_carried(out: list[str], carried: dict[int, tuple[str, int]]) -> None:
    """Append the cells that rowspans from rows above hold at the next columns of ``out``."""
    while len(out) in carried:
        col = len(out)
        text, left = carried[col]
        out.append(text)
        if left <= 1:
            del carried[col]
        else:
            carried[col] = (text, left - 1)


def _row_line(cells: list[str]) -> str:
    """One pipe-table line."""
    return "| " + " | ".join(cells) + " |"


def _list_items(node: LexborNode, depth: int) -> list[str]:
    """One string per item of the list ``node``; nested lists stay inside their item."""
    items: list[str] = []
    number = 0
    for item in node.iter():
        if item.tag != "li":
            continue
        number += 1
        marker = f"{number}. " if node.tag == "ol" else "- "
        parts: list[str] = []
        nested: list[str] = []
        for child in item.iter(include_text=True):
            if child.tag in ("ul", "ol"):
                nested.extend(_list_items(child, depth + 1))
            elif child.tag == "-text":
                parts.append(child.text_content or "")
            elif child.tag and not child.tag.startswith("-"):
                pad = "" if child.tag in _INLINE else " "
                parts.append(pad + _inline_text(child) + pad)
        content = _collapse("".join(parts))
        lines = ["  " * depth + marker + content] if content else []
        lines.extend(nested)
        if lines:
            items.append("\n".join(lines))
    return items
