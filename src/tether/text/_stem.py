"""Word stems for matching question words to evidence words (Snowball English).

snowballstemmer's stemmer objects keep the word being stemmed in instance fields, so one shared object
stemmed from two threads mixes their words (IndexError in ``find_among_b``, or a wrong stem). Each thread
gets its own stemmer; the cache of stems is shared (``lru_cache`` is thread-safe).
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

import snowballstemmer

_local = threading.local()


def _stemmer() -> Any:
    s = getattr(_local, "stemmer", None)
    if s is None:
        s = _local.stemmer = snowballstemmer.stemmer("english")
    return s


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Snowball (Porter2) stem of one lowercase word (safe to call from any thread)."""
    return str(_stemmer().stemWord(word))
