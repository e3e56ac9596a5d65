"""Regex sentence splitter that keeps character spans (it runs on every retrieved chunk)."""

from __future__ import annotations

import re

# Lines that are items of their own: ATX headings, list items, table rows, block quotes.
_ITEM_LINE_RE = re.compile(r"[ \t]*(?:#{1,6}(?:[ \t]|$)|[-*+•][ \t]|\d{1,3}[.)][ \t]|\||>)")
# Item lines that end at their own newline (a list item may continue on the next lines).
_ONE_LINE_ITEM_RE = re.compile(r"[ \t]*(?:#{1,6}(?:[ \t]|$)|\|)")
_LINE_RE = re.compile(r"[^\n]*\n|[^\n]+")

# A candidate boundary: terminal punctuation, optional closing quotes/brackets, whitespace, then
# the start of a new sentence (optional opening quote/bracket, then an upper-case letter or digit).
_BOUNDARY_RE = re.compile(r"([.!?…]+)[\"'”’)\]]*(\s+)(?=[\"'“‘(\[]?[^\W\d_a-z]|[\"'“‘(\[]?\d)")
_LAST_TOKEN_RE = re.compile(r"(\S+)$")
_ACRONYM_RE = re.compile(r"(?:[^\W\d_]\.){2,}$")
_ENUMERATOR_RE = re.compile(r"\(?\d{1,3}[.)]")
_INITIAL_RE = re.compile(r"[(\"'“‘\[]?[^\W\d_a-z]\.$")

_ABBREVIATIONS_TEXT = """
    e.g. i.e. etc. vs. v. cf. al. approx. ca. viz. resp. incl. excl. esp. ibid. et.
    dr. mr. mrs. ms. mx. prof. sr. jr. st. rev. gen. col. capt. lt. sgt. gov. sen. rep. hon. fr. mt.
    fig. figs. no. nos. vol. vols. pp. p. ed. eds. ch. chap. sec. sect. eq. eqs. ref. refs. art. para.
    inc. ltd. co. corp. dept. univ. assn. bros. est. min. max. avg. std. approx. dia. ft. in. lb. oz.
    jan. feb. mar. apr. jun. jul. aug. sep. sept. oct. nov. dec. mon. tue. wed. thu. fri. sat. sun.
    """
_ABBREVIATIONS = frozenset(_ABBREVIATIONS_TEXT.split())


def split_sentences(text: str, offset: int = 0) -> list[tuple[int, int]]:
    """Split text into sentence spans.

    Sentences end at ``.``, ``!``, ``?`` or ``…`` followed by whitespace and an upper-case letter,
    digit or opening quote, except after common abbreviations (``e.g.``, ``Dr.``, ``U.S.``...),
    initials (``J. Smith``) and an ellipsis inside an open double quote. Blank lines always end a
    sentence, and line-structured items (Markdown headings, table rows, list items, quote lines)
    are sentences of their own; a list item runs on over its continuation lines.

    Args:
        text: The text to split.
        offset: Added to every returned position (the position of ``text`` in a larger text).

    Returns:
        ``[start, end)`` spans, in order, non-overlapping, with no leading or trailing whitespace.
    """
    spans: list[tuple[int, int]] = []
    for seg_start, seg_end in _segments(text):
        _split_segment(text, seg_start, seg_end, spans)
    if offset:
        return [(s + offset, e + offset) for s, e in spans]
    return spans


def _segments(text: str) -> list[tuple[int, int]]:
    """Cut ``text`` into line groups at blank lines and around line-structured items."""
    segments: list[tuple[int, int]] = []
    seg_start = -1
    pos = 0
    close_after = False
    for match in _LINE_RE.finditer(text):
        line = match.group()
        line_start = pos
        pos = match.end()
        if not line.strip():
            if seg_start >= 0:
                segments.append((seg_start, line_start))
                seg_start = -1
            continue
        if _ITEM_LINE_RE.match(line) or close_after:
            if seg_start >= 0:
                segments.append((seg_start, line_start))
            seg_start = line_start
            close_after = _ONE_LINE_ITEM_RE.match(line) is not None
        elif seg_start < 0:
            seg_start = line_start
    if seg_start >= 0:
        segments.append((seg_start, len(text)))
    return segments


def _split_segment(text: str, start: int, end: int, out: list[tuple[int, int]]) -> None:
    """Append the trimmed sentence spans of ``text[start:end]`` to ``out``."""
    segment = text[start:end]
    sent_start = 0
    for match in _BOUNDARY_RE.finditer(segment):
        stop = match.start(2)
        if not _is_boundary(segment, sent_start, match.start(1), match.group(1)):
            continue
        _append_trimmed(segment, start, sent_start, stop, out)
        sent_start = match.end(2)
    _append_trimmed(segment, start, sent_start, len(segment), out)


def _is_boundary(segment: str, sent_start: int, punct_pos: int, punct: str) -> bool:
    """Decide whether the terminal punctuation at ``punct_pos`` really ends a sentence."""
    if punct in ("...", "…", "....") and segment.count('"', sent_start, punct_pos) % 2 == 1:
        return False  # an ellipsis inside an open quotation
    if punct != ".":
        return True
    token_match = _LAST_TOKEN_RE.search(segment, max(sent_start, punct_pos - 40), punct_pos + 1)
    if token_match is None:
        return True
    token = token_match.group(1)
    if _ENUMERATOR_RE.fullmatch(token) and not segment[sent_start : token_match.start(1)].strip():
        return False  # "1. The sources are ..." : a numbered item's marker, not a sentence
    stripped = token.lstrip("(\"'“‘[").lower()
    if stripped in _ABBREVIATIONS:
        return False
    return not (_ACRONYM_RE.search(token) or _INITIAL_RE.match(token))


def _append_trimmed(segment: str, base: int, start: int, end: int, out: list[tuple[int, int]]) -> None:
    """Append ``[start, end)`` of ``segment`` shifted by ``base`` once trimmed, if non-empty."""
    piece = segment[start:end]
    lead = len(piece) - len(piece.lstrip())
    trail = len(piece.rstrip())
    if trail > lead:
        out.append((base + start + lead, base + start + trail))
