"""Word stems for matching question words to evidence words (Snowball English)."""

from __future__ import annotations

from functools import lru_cache

import snowballstemmer

_STEMMER = snowballstemmer.stemmer("english")


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Snowball (Porter2) stem of one lowercase word."""
    return str(_STEMMER.stemWord(word))
