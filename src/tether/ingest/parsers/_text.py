"""Plain-text and reStructuredText parser: paragraphs, headings and indented code blocks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tether.contracts import Block, BlockKind, ParsedDocument
from tether.ingest.parsers._common import BlockList, SectionPath

_LINE_RE = re.compile(r"[^\n]*\n|[^\n]+")
_ADORNMENT_RE = re.compile(r"([=\-~*^#\"'`+:._])\1*")
_ATX_RE = re.compile(r"(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*")
_BULLET_RE = re.compile(r"[ \t]*(?:[-*+•]|\d{1,3}[.)])[ \t]+\S")
_CODE_INDENT = 3


@dataclass(frozen=True)
class _Line:
    start: int
    end: int  # end of the content, before the line break
    content: str

    @property
    def blank(self) -> bool:
        return not self.content.strip()

    @property
    def indent(self) -> int:
        expanded = self.content.expandtabs(8)
        return len(expanded) - len(expanded.lstrip())


def parse_text(text: str, path: Path) -> ParsedDocument:
    """Parse plain text or reStructuredText.

    Paragraphs are separated by blank lines. A reST title (a line with an underline of one
    repeated punctuation character at least as long as it, optionally with a matching overline,
    after a blank line) or a Markdown ``#`` line is a heading: reST levels follow the order in
    which adornment styles first appear, Markdown levels the number of ``#``. A heading block
    covers its title line only. An indented run (3+ columns) after a paragraph is a code block;
    a paragraph whose lines all start with ``+`` or ``|`` is a table, one that starts with a
    bullet or number a list.

    Args:
        text: The decoded text.
        path: The file path (its stem is the fallback title).

    Returns:
        The parsed document; the title is the first heading, else the file stem.
    """
    lines = [
        _Line(m.start(), m.start() + len(m.group().rstrip("\r\n")), m.group().rstrip("\r\n"))
        for m in _LINE_RE.finditer(text)
    ]
    return _Parser(text, lines).run(path)


class _Parser:
    def __init__(self, text: str, lines: list[_Line]) -> None:
        self.lines = lines
        self.blocks = BlockList(text)
        self.sections = SectionPath()
        self.styles: dict[tuple[str, bool], int] = {}
        self.title = ""

    def run(self, path: Path) -> ParsedDocument:
        lines = self.lines
        i = 0
        boundary = True  # at the start, after a blank line or after a heading
        while i < len(lines):
            line = lines[i]
            if line.blank:
                i += 1
                boundary = True
                continue
            consumed = self._heading(i) if boundary else 0
            if consumed:
                i += consumed
                boundary = True
                continue
            if boundary and line.indent >= _CODE_INDENT and self._last_kind() in ("paragraph", "list", "code"):
                i = self._code(i)
            else:
                i = self._paragraph(i)
            boundary = False
        return ParsedDocument(text=self.blocks.text, title=self.title or path.stem, blocks=self.blocks.blocks)

    def _last_kind(self) -> BlockKind | None:
        blocks: list[Block] = self.blocks.blocks
        return blocks[-1].kind if blocks else None

    def _heading(self, i: int) -> int:
        """Emit a heading starting at line ``i``; return the number of lines it used (0: none)."""
        lines = self.lines
        line = lines[i]
        atx = _ATX_RE.fullmatch(line.content)
        if atx and atx.group(2).strip():
            self._emit_heading(line, len(atx.group(1)), atx.group(2).strip())
            return 1
        if i + 1 >= len(lines) or lines[i + 1].blank:
            return 0
        over = _adornment(line.content)
        if over and i + 2 < len(lines) and not lines[i + 1].blank:
            under = _adornment(lines[i + 2].content)
            title = lines[i + 1].content.strip()
            if under == over and len(lines[i + 2].content.rstrip()) >= len(title) and not _adornment(title):
                self._emit_heading(lines[i + 1], self._level((over, True)), title)
                return 3
        if over or line.indent:
            return 0
        under = _adornment(lines[i + 1].content)
        title = line.content.strip()
        if under and len(lines[i + 1].content.rstrip()) >= max(len(title), 2):
            self._emit_heading(line, self._level((under, False)), title)
            return 2
        return 0

    def _level(self, style: tuple[str, bool]) -> int:
        if style not in self.styles:
            self.styles[style] = len(self.styles) + 1
        return self.styles[style]

    def _emit_heading(self, line: _Line, level: int, title: str) -> None:
        self.blocks.add(line.start, line.end, "heading", self.sections.enter(level, title))
        if not self.title:
            self.title = title

    def _code(self, i: int) -> int:
        """Emit the indented code run starting at line ``i``; return the next line index."""
        lines = self.lines
        last = i
        j = i
        while j < len(lines) and (lines[j].blank or lines[j].indent >= _CODE_INDENT):
            if not lines[j].blank:
                last = j
            j += 1
        self.blocks.add(lines[i].start, lines[last].end, "code", self.sections.path)
        return last + 1

    def _paragraph(self, i: int) -> int:
        """Emit the paragraph starting at line ``i``; return the next line index."""
        lines = self.lines
        j = i + 1
        while j < len(lines) and not lines[j].blank and not _ATX_RE.fullmatch(lines[j].content):
            j += 1
        kind: BlockKind = "paragraph"
        if all(lines[k].content.lstrip().startswith(("+", "|")) for k in range(i, j)) and j - i > 1:
            kind = "table"  # a reST grid table or a pipe table
        elif _BULLET_RE.match(lines[i].content):
            kind = "list"
        self.blocks.add(lines[i].start, lines[j - 1].end, kind, self.sections.path)
        return j


def _adornment(content: str) -> str:
    """The adornment character if ``content`` is one repeated punctuation run, else ``""``."""
    match = _ADORNMENT_RE.fullmatch(content.rstrip())
    return match.group(1) if match else ""
