"""Fusion: the numpy convex blend gives exactly what the plain definition gives; RRF by its definition."""

from __future__ import annotations

import random

from tether.retrieve._fusion import convex_fusion, rrf_fusion
from tether.store import ScoredId


def reference_convex(lexical: list[ScoredId], dense: list[ScoredId], alpha: float) -> list[ScoredId]:
    """The definition, written out in plain Python."""

    def minmax(ranked: list[ScoredId]) -> dict[int, float]:
        if not ranked:
            return {}
        lo = min(s.score for s in ranked)
        hi = max(s.score for s in ranked)
        span = hi - lo
        return {s.chunk_id: (s.score - lo) / span if span > 0 else 1.0 for s in ranked}

    lex, den = minmax(lexical), minmax(dense)
    fused = {c: alpha * den.get(c, 0.0) + (1.0 - alpha) * lex.get(c, 0.0) for c in set(lex) | set(den)}
    return [ScoredId(c, s) for c, s in sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))]


def _ranked(rng: random.Random, n: int, pool: int, *, ties: bool) -> list[ScoredId]:
    ids = rng.sample(range(1, pool), n)
    scores = [float(rng.randint(0, 5)) if ties else rng.uniform(-3, 30) for _ in ids]
    return sorted((ScoredId(i, s) for i, s in zip(ids, scores, strict=True)), key=lambda x: -x.score)


def test_convex_fusion_equals_the_definition_exactly() -> None:
    rng = random.Random(1)
    for _ in range(300):
        ties = rng.random() < 0.3
        lex = _ranked(rng, rng.randint(0, 60), 150, ties=ties)
        den = _ranked(rng, rng.randint(0, 60), 150, ties=ties)
        alpha = rng.choice([0.0, 0.5, 0.3, 1.0, rng.random()])
        got = convex_fusion(lex, den, alpha)
        want = reference_convex(lex, den, alpha)
        assert got == want
        assert all(type(x.chunk_id) is int and type(x.score) is float for x in got)


def test_convex_fusion_single_candidate_and_empty() -> None:
    assert convex_fusion([], [], 0.5) == []
    assert convex_fusion([ScoredId(3, 2.0)], [], 0.5) == [ScoredId(3, 0.5)]
    assert convex_fusion([], [ScoredId(4, 0.1), ScoredId(2, 0.1)], 0.25) == [ScoredId(2, 0.25), ScoredId(4, 0.25)]


def test_rrf_fusion() -> None:
    fused = rrf_fusion([[ScoredId(1, 9.0), ScoredId(2, 8.0)], [ScoredId(2, 0.9), ScoredId(3, 0.8)]], k=10)
    assert [x.chunk_id for x in fused] == [2, 1, 3]
    assert fused[0].score == 1 / 12 + 1 / 11
