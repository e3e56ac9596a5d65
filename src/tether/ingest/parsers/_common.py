"""Helpers every parser shares: text decoding, trimmed spans and heading paths."""

from __future__ import annotations

from tether.contracts import Block, BlockKind
from tether.errors import IngestError


def decode_text(data: bytes) -> str:
    """Decode file bytes as UTF-8 text (a UTF-8 byte-order mark is allowed and dropped).

    Args:
        data: The raw file content.

    Returns:
        The decoded text.

    Raises:
        IngestError: The file is empty or whitespace-only, binary, or not UTF-8.
    """
    if not data:
        raise IngestError("empty file")
    if b"\x00" in data:
        raise IngestError("binary file (NUL bytes), not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        where = f"invalid byte 0x{data[exc.start]:02x} at offset {exc.start}"
        raise IngestError(f"not UTF-8 text ({where}); convert it to UTF-8") from None
    if not text.strip():
        raise IngestError("empty file")
    return text


def trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Shrink ``[start, end)`` so that ``text[start:end]`` has no surrounding whitespace.

    Args:
        text: The full text.
        start: Span start.
        end: Span end.

    Returns:
        The trimmed span, or None when the span holds only whitespace.
    """
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


class SectionPath:
    """Tracks the heading path while blocks are visited in document order."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []

    @property
    def path(self) -> list[str]:
        """The current heading path, outermost first."""
        return [title for _, title in self._stack]

    def enter(self, level: int, title: str) -> list[str]:
        """Open a heading of ``level`` (1 = top) and return the path that includes it."""
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, title))
        return self.path


class BlockList:
    """Collects trimmed, ordered, non-overlapping blocks over one canonical text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.blocks: list[Block] = []

    def add(self, start: int, end: int, kind: BlockKind, section: list[str]) -> None:
        """Add ``text[start:end]`` (trimmed) as a block; whitespace-only spans are ignored."""
        span = trimmed(self.text, start, end)
        if span is None:
            return
        if self.blocks and span[0] < self.blocks[-1].end:
            raise ValueError("blocks must be in order and must not overlap")
        self.blocks.append(Block(start=span[0], end=span[1], kind=kind, section=list(section)))
