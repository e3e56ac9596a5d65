"""Markdown parser: blocks found with markdown-it-py's token line maps over the unchanged source."""

from __future__ import annotations

import re
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token

from tether.contracts import BlockKind, ParsedDocument
from tether.ingest.parsers._common import BlockList, SectionPath

_FRONT_MATTER_RE = re.compile(r"\A---[ \t]*\r?\n(?:.*?\r?\n)?(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_OPENERS: dict[str, BlockKind] = {
    "paragraph_open": "paragraph",
    "table_open": "table",
    "blockquote_open": "paragraph",
    "html_block": "paragraph",
    "fence": "code",
    "code_block": "code",
}
_md = MarkdownIt("commonmark").enable("table")


def parse_markdown(text: str, path: Path) -> ParsedDocument:
    """Parse Markdown; the canonical text is the source itself, so quotes are verbatim.

    Blocks: one per heading (its source line(s), without a setext underline), paragraph, block
    quote or HTML block (kind ``paragraph``), table, code block, and one ``list`` block per
    top-level list item (nested lists stay inside their item). Thematic breaks and YAML front
    matter are not blocks.

    Args:
        text: The decoded Markdown source.
        path: The file path (its stem is the fallback title).

    Returns:
        The parsed document; the title is the first level-1 heading, else the file stem.
    """
    front = _FRONT_MATTER_RE.match(text)
    source = text
    if front:  # blank the front matter out, keeping line numbers and offsets
        source = re.sub(r"[^\r\n]", " ", front.group()) + text[front.end() :]
    line_starts = _line_starts(text)
    tokens = _md.parse(source)
    blocks = BlockList(text)
    sections = SectionPath()
    title = ""
    top = len(line_starts) - 1
    for i, token in enumerate(tokens):
        if token.map is None:
            continue
        first, last = min(token.map[0], top), min(token.map[1], top)
        if token.type == "heading_open" and token.level == 0:
            heading = _inline_text(tokens, i)
            level = int(token.tag[1:])
            if token.markup in ("=", "-"):  # setext: skip the underline
                last = max(first + 1, last - 1)
            blocks.add(line_starts[first], line_starts[last], "heading", sections.enter(level, heading))
            if level == 1 and not title:
                title = heading
        elif token.level == 0 and token.type in _OPENERS:
            blocks.add(line_starts[first], line_starts[last], _OPENERS[token.type], sections.path)
        elif token.type == "list_item_open" and token.level == 1:
            blocks.add(line_starts[first], line_starts[last], "list", sections.path)
    return ParsedDocument(text=text, title=title or path.stem, blocks=blocks.blocks)


def _line_starts(text: str) -> list[int]:
    """Offsets of every line start, plus ``len(text)`` for the end of the last line."""
    starts = [0]
    pos = text.find("\n")
    while pos >= 0:
        starts.append(pos + 1)
        pos = text.find("\n", pos + 1)
    if starts[-1] != len(text):
        starts.append(len(text))
    return starts


def _inline_text(tokens: list[Token], index: int) -> str:
    """The plain text of the inline token that follows ``tokens[index]``."""
    if index + 1 < len(tokens) and tokens[index + 1].type == "inline":
        children = tokens[index + 1].children or []
        text = "".join(
            " " if child.type in ("softbreak", "hardbreak") else child.content
            for child in children
            if child.type in ("text", "code_inline", "softbreak", "hardbreak")
        )
        return " ".join(text.split()) or tokens[index + 1].content.strip()
    return ""
