"""Features of a retrieved chunk for the learned reranker.

They use what retrieval already computed (lexical and dense scores and ranks, the fused score, each
relative to the best candidate of the same query) and cheap text matching between the query and
the chunk's title and text. No model pass: reranking a hundred candidates costs about a millisecond
per candidate at most.
"""

from __future__ import annotations

import math
import re

from tether.contracts import Hit
from tether.text import STOPWORDS, stem, words

RERANK_FEATURES = (
    "fused_relative",
    "fused_rank",
    "lexical_relative",
    "lexical_rank",
    "dense_score",
    "dense_gap",
    "dense_rank",
    "title_coverage",
    "text_coverage",
    "bigram_coverage",
    "missing_max_idf",
    "numbers_present",
    "log_length",
)

_NUMBER = re.compile(r"^\d+(?:[.,]\d+)*%?$")


class QueryProfile:
    """A query's content stems with their IDF weights, bigrams and numbers (computed once per query)."""

    def __init__(self, query: str, idf: dict[str, float], max_idf: float) -> None:
        ws = words(query)
        content = [w for w in ws if w not in STOPWORDS and any(c.isalnum() for c in w)]
        self.weights: dict[str, float] = {}
        for w in content:
            self.weights[stem(w)] = max(self.weights.get(stem(w), 0.0), idf.get(w, max_idf))
        seq = [stem(w) for w in content]
        self.bigrams = set(zip(seq, seq[1:], strict=False))
        self.numbers = {w for w in ws if _NUMBER.match(w)}
        self.total = sum(self.weights.values()) or 1.0
        self.max_idf = max_idf or 1.0


def _coverage(q: QueryProfile, stems: set[str]) -> float:
    return sum(v for s, v in q.weights.items() if s in stems) / q.total


def rerank_features(q: QueryProfile, hits: list[Hit]) -> list[list[float]]:
    """One feature row (order of :data:`RERANK_FEATURES`) per hit, in the order given (fused rank)."""
    if not hits:
        return []
    top_fused = max(h.score for h in hits) or 1.0
    top_lex = max((h.lexical_score or 0.0) for h in hits) or 1.0
    top_dense = max((h.dense_score if h.dense_score is not None else -1.0) for h in hits)
    rows = []
    for i, h in enumerate(hits):
        text_words = words(h.text)
        # every word of words() holds a letter or digit, so the content words' stems in order are also the
        # sequence the bigrams are read from (stemmed once)
        seq = [stem(w) for w in text_words if w not in STOPWORDS]
        text_stems = set(seq)
        title_stems = {stem(w) for w in words(h.title + " " + " ".join(h.section)) if w not in STOPWORDS}
        bigrams = set(zip(seq, seq[1:], strict=False))
        missing = [v for s, v in q.weights.items() if s not in text_stems and s not in title_stems]
        dense = h.dense_score if h.dense_score is not None else 0.0
        rows.append(
            [
                h.score / top_fused,
                1.0 / (1.0 + i),
                (h.lexical_score or 0.0) / top_lex,
                1.0 / (1.0 + h.lexical_rank) if h.lexical_rank else 0.0,
                dense,
                (dense - top_dense) if h.dense_score is not None else -1.0,
                1.0 / (1.0 + h.dense_rank) if h.dense_rank else 0.0,
                _coverage(q, title_stems),
                _coverage(q, text_stems),
                len(q.bigrams & bigrams) / len(q.bigrams) if q.bigrams else 0.0,
                max(missing, default=0.0) / q.max_idf,
                (len(q.numbers & set(text_words)) / len(q.numbers)) if q.numbers else 1.0,
                math.log1p(len(text_words)),
            ]
        )
    return rows
