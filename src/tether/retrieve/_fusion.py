from __future__ import annotations

from tether.store import ScoredId


def rrf_fusion(lists: list[list[ScoredId]], k: float = 60.0) -> list[ScoredId]:
    """Reciprocal rank fusion: score = sum over lists of 1 / (k + rank), rank from 1."""
    scores: dict[int, float] = {}
    for ranked in lists:
        for rank, item in enumerate(ranked, 1):
            scores[item.chunk_id] = scores.get(item.chunk_id, 0.0) + 1.0 / (k + rank)
    return [ScoredId(c, s) for c, s in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))]


def _minmax(ranked: list[ScoredId]) -> dict[int, float]:
    if not ranked:
        return {}
    lo = min(s.score for s in ranked)
    hi = max(s.score for s in ranked)
    span = hi - lo
    return {s.chunk_id: (s.score - lo) / span if span > 0 else 1.0 for s in ranked}


def convex_fusion(lexical: list[ScoredId], dense: list[ScoredId], alpha: float) -> list[ScoredId]:
    """Min-max normalise each list over its candidates, then ``alpha * dense + (1 - alpha) * lexical``.

    A chunk missing from one list gets 0 from that list.
    """
    lex = _minmax(lexical)
    den = _minmax(dense)
    ids = set(lex) | set(den)
    fused = {c: alpha * den.get(c, 0.0) + (1.0 - alpha) * lex.get(c, 0.0) for c in ids}
    return [ScoredId(c, s) for c, s in sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))]
