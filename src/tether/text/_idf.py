"""Word rarity."""

from __future__ import annotations

import math


def idf_value(df: int, n: int) -> float:
    """BM25-style IDF of a word found in ``df`` of ``n`` units, floored at a small positive value."""
    return max(math.log((n - df + 0.5) / (df + 0.5) + 1.0), 0.01)
