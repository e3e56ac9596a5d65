"""Word tokens, stopwords and a fast WordPiece token-count estimate."""

from __future__ import annotations

import math
import re

# A word: a run of Unicode letters/digits, optionally joined by single inner "." "-" "'" or "’"
# so that "3.5", "covid-19" and "don't" stay one token. Underscores separate words.
_WORD_RE = re.compile(r"[^\W_]+(?:[.\-'’][^\W_]+)*")

# What a BERT basic tokenizer sees: alphanumeric runs, and every punctuation mark on its own.
_PIECE_RE = re.compile(r"[^\W_]+")
_PUNCT_RE = re.compile(r"[^\w\s]|_")

# Letters past this length are charged extra WordPiece tokens (1 per _LONG_DIVISOR letters).
_LONG_WORD = 6
_LONG_DIVISOR = 4

_STOPWORDS_TEXT = """
    a about above after again against all am an and any are aren't as at be because been before being
    below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down
    during each few for from further had hadn't has hasn't have haven't having he he'd he'll he's her here
    here's hers herself him himself his how how's i i'd i'll i'm i've if in into is isn't it it's its
    itself let's me more most mustn't my myself no nor not of off on once only or other ought our ours
    ourselves out over own same shan't she she'd she'll she's should shouldn't so some such than that
    that's the their theirs them themselves then there there's these they they'd they'll they're they've
    this those through to too under until up very was wasn't we we'd we'll we're we've were weren't what
    what's when when's where where's which while who who's whom why why's will with won't would wouldn't
    you you'd you'll you're you've your yours yourself yourselves also just may might must shall
    """
STOPWORDS: frozenset[str] = frozenset(_STOPWORDS_TEXT.split())


def words(text: str) -> list[str]:
    """Split text into lowercase word tokens.

    Args:
        text: Any text.

    Returns:
        Lowercased words: runs of Unicode letters and digits, where inner ``.``, ``-`` and
        apostrophes are kept (``"3.5"``, ``"covid-19"``, ``"don't"``). Curly apostrophes are
        normalised to ``'``.
    """
    # ’ and ' join words alike in _WORD_RE, so normalising first gives the same words (and is faster)
    return _WORD_RE.findall(text.lower().replace("’", "'"))


def content_words(text: str) -> list[str]:
    """Return :func:`words` of ``text`` without :data:`STOPWORDS`.

    Args:
        text: Any text.

    Returns:
        The lowercase non-stopword tokens, in order.
    """
    return [w for w in words(text) if w not in STOPWORDS]


def estimate_tokens(text: str) -> int:
    """Estimate the WordPiece token count of ``text`` for a BERT-uncased tokenizer.

    Each alphanumeric run counts 1 token plus 1 per 4 letters beyond the 6th (long words split
    into sub-words), and every punctuation mark counts 1. Measured against the all-MiniLM-L6-v2
    ``tokenizer.json`` (no special tokens), the estimate/real ratio is 1.02 over the paragraphs of
    ``pydoc_data.topics`` (128k real tokens, median per-paragraph error 5%) and 0.99 over stdlib
    docstrings (97k tokens, median error 6%). The estimate is additive over whitespace-separated
    pieces, so the estimate of a span is close to the sum of the estimates of its parts.

    Args:
        text: Any text.

    Returns:
        The estimated number of tokens (0 for empty or whitespace-only text).
    """
    count = 0
    extra = 0
    for piece in _PIECE_RE.findall(text):
        count += 1
        if len(piece) > _LONG_WORD:
            extra += len(piece) - _LONG_WORD
    count += len(_PUNCT_RE.findall(text))
    return count + math.ceil(extra / _LONG_DIVISOR)
