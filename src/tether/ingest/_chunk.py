"""Structural chunking: pack blocks into token-bounded chunks, split only where needed."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator

from tether.contracts import Block, BlockKind, Chunk, ParsedDocument
from tether.text import split_sentences
from tether.text._tokens import SpanTokens

_WORD_SPAN_RE = re.compile(r"\S+")
_LINE_SPAN_RE = re.compile(r"[^\n]+")
_OVERLAP_CHARS_PER_TOKEN = 12  # how far back to look for overlap sentences


def chunk_document(doc: ParsedDocument, max_tokens: int, overlap_tokens: int) -> list[Chunk]:
    """Cut a parsed document into chunks of at most ``max_tokens`` estimated tokens.

    Consecutive blocks are packed until the budget would be exceeded. A heading starts a new
    chunk (consecutive headings stay together) and is kept with the text after it; a change of
    top-level section always starts a new chunk. A block that fits the budget on its own is never
    split; a table larger than the budget is split between rows, code between lines, other blocks
    between sentences, and a sentence or line larger than the budget between words. A single word
    larger than the budget is the only way a chunk exceeds it.

    With ``overlap_tokens > 0`` a chunk that continues the previous chunk's section (one that does
    not start at a heading or a new top-level section) starts earlier, at a sentence boundary in
    the previous chunk's tail, so that it repeats at most ``overlap_tokens``; the repeated text
    counts towards ``max_tokens``.

    Args:
        doc: The parsed document.
        max_tokens: Token budget per chunk (as counted by :func:`tether.text.estimate_tokens`).
        overlap_tokens: Upper bound of tokens repeated from the previous chunk (0: no overlap).

    Returns:
        Chunks in document order, ``ord`` 0..n-1, each with ``text == doc.text[start:end]``.

    Raises:
        ValueError: ``max_tokens`` is not positive or ``overlap_tokens`` is negative.
    """
    if max_tokens <= 0:
        raise ValueError("max_tokens must be positive")
    if overlap_tokens < 0:
        raise ValueError("overlap_tokens must not be negative")
    packer = _Packer(doc.text, max_tokens, overlap_tokens)
    for block in doc.blocks:
        packer.add_block(block)
    packer.flush(continued=False)
    return _make_chunks(doc, packer.spans)


class _Packer:
    """Greedy packer of block spans into chunk spans."""

    def __init__(self, text: str, max_tokens: int, overlap_tokens: int) -> None:
        self.text = text
        self._count = SpanTokens(text).count  # estimate_tokens(text[a:b]), without a pass over the span each time
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens
        self.spans: list[tuple[int, int]] = []
        self._start = -1  # start of the current chunk (overlap included); -1: empty
        self._end = -1
        self._tokens = 0
        self._has_body = False  # the current chunk holds more than headings/overlap
        self._top: str | None = None
        self._continued = False  # the next chunk continues the previous chunk's section

    def add_block(self, block: Block) -> None:
        """Add one block, splitting it only if it alone exceeds the budget."""
        heading = block.kind == "heading"
        top = block.section[0] if block.section else None
        if self._start >= 0 and ((heading and self._has_body) or top != self._top):
            self.flush(continued=False)
        if self._start < 0:
            self._top = top
        tokens = self._count(block.start, block.end)
        if self._fits(block.start, tokens):
            self._add(block.start, block.end, tokens, heading)
        elif tokens <= self.max_tokens and (self._has_body or block.kind == "table"):
            self.flush(continued=True)
            self._add(block.start, block.end, tokens, heading)
        else:
            for start, end in _split_block(self.text, block.start, block.end, block.kind):
                self._add_piece(start, end, 1, heading)

    def _add_piece(self, start: int, end: int, level: int, heading: bool) -> None:
        """Add part of a split block; ``level`` 1 = sentence/row/line, 2 = word."""
        tokens = self._count(start, end)
        if self._fits(start, tokens):
            self._add(start, end, tokens, heading)
        elif level == 1 and (tokens > self.max_tokens or not self._has_body):
            for word_start, word_end in _spans(_WORD_SPAN_RE, self.text, start, end):
                self._add_piece(word_start, word_end, 2, heading)
        else:
            self.flush(continued=True)
            self._add(start, end, tokens, heading)

    def _fits(self, start: int, tokens: int) -> bool:
        if self._start < 0:
            return tokens <= self.max_tokens
        return self._tokens + self._gap(start) + tokens <= self.max_tokens

    def _gap(self, start: int) -> int:
        """Tokens of whatever lies between the current chunk's end and ``start``."""
        if self._end >= start:
            return 0
        return self._count(self._end, start)

    def _add(self, start: int, end: int, tokens: int, heading: bool) -> None:
        if self._start < 0:
            self._start, self._end, self._tokens = start, start, 0
            if self._continued and self.overlap_tokens and self.spans:
                self._overlap(start, tokens)
        self._tokens += self._gap(start) + tokens
        self._end = end
        self._has_body = self._has_body or not heading

    def _overlap(self, start: int, tokens: int) -> None:
        """Start the new chunk (first piece at ``start``) back in the previous chunk's tail."""
        prev_start, prev_end = self.spans[-1]
        gap = self._count(prev_end, start)
        limit = min(self.overlap_tokens, self.max_tokens - tokens - gap)
        if limit <= 0:
            return
        window = max(prev_start, prev_end - limit * _OVERLAP_CHARS_PER_TOKEN)
        sentences = split_sentences(self.text[window:prev_end], window)
        if window > prev_start:
            sentences = sentences[1:]  # the first may be cut off by the window
        total = 0
        best = prev_end
        for sent_start, _ in reversed(sentences):
            if sent_start <= prev_start:
                break
            total += self._count(sent_start, best)
            if total > limit:
                break
            best = sent_start
        if best < prev_end:
            self._start, self._end = best, prev_end
            self._tokens = self._count(best, prev_end)

    def flush(self, continued: bool) -> None:
        """Close the current chunk; ``continued`` says whether the next one continues it."""
        if self._start >= 0:
            self.spans.append((self._start, self._end))
        self._start = self._end = -1
        self._tokens = 0
        self._has_body = False
        self._continued = continued


def _split_block(text: str, start: int, end: int, kind: BlockKind) -> list[tuple[int, int]]:
    """Split an over-budget block: tables into rows, code into lines, the rest into sentences."""
    if kind in ("table", "code"):
        return list(_spans(_LINE_SPAN_RE, text, start, end))
    return split_sentences(text[start:end], start)


def _spans(pattern: re.Pattern[str], text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Trimmed, non-empty spans of ``pattern`` matches in ``text[start:end]``."""
    for match in pattern.finditer(text, start, end):
        piece = match.group()
        lead = len(piece) - len(piece.lstrip())
        trail = len(piece.rstrip())
        if trail > lead:
            yield match.start() + lead, match.start() + trail


def _make_chunks(doc: ParsedDocument, spans: list[tuple[int, int]]) -> list[Chunk]:
    """Build chunk records, with the kinds and section of the blocks each span covers."""
    ends = [block.end for block in doc.blocks]
    chunks: list[Chunk] = []
    for ord_, (start, end) in enumerate(spans):
        kinds: list[BlockKind] = []
        section: list[str] | None = None
        index = bisect.bisect_right(ends, start)
        first = doc.blocks[index].section if index < len(doc.blocks) else []
        while index < len(doc.blocks) and doc.blocks[index].start < end:
            block = doc.blocks[index]
            if block.kind not in kinds:
                kinds.append(block.kind)
            if section is None and block.kind != "heading":
                section = block.section
            index += 1
        chunks.append(
            Chunk(
                ord=ord_,
                start=start,
                end=end,
                text=doc.text[start:end],
                section=list(section if section is not None else first),
                kinds=kinds,
            )
        )
    return chunks
