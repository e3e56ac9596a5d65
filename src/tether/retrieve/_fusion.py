from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tether.store import ScoredId


def _ranked(scores: dict[int, float]) -> list[ScoredId]:
    """Best first, ties by chunk id."""
    return [ScoredId(c, s) for c, s in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))]


def rrf_fusion(lists: list[list[ScoredId]], k: float = 60.0) -> list[ScoredId]:
    """Reciprocal rank fusion: score = sum over lists of 1 / (k + rank), rank from 1."""
    scores: dict[int, float] = {}
    for ranked in lists:
        for rank, item in enumerate(ranked, 1):
            scores[item.chunk_id] = scores.get(item.chunk_id, 0.0) + 1.0 / (k + rank)
    return _ranked(scores)


def _arrays(ranked: list[ScoredId]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    a = np.array(ranked, dtype=np.float64).reshape(-1, 2)  # ids are exact in a double below 2**53
    return a[:, 0].astype(np.int64), a[:, 1].copy()


def _minmax(scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    if len(scores) == 0:
        return scores
    lo = scores.min()
    span = scores.max() - lo
    return (scores - lo) / span if span > 0 else np.ones_like(scores)


def convex_fusion(lexical: list[ScoredId], dense: list[ScoredId], alpha: float) -> list[ScoredId]:
    """Min-max normalise each list over its candidates, then ``alpha * dense + (1 - alpha) * lexical``.

    A chunk missing from one list gets 0 from that list. Best first, ties by chunk id.
    """
    lex_ids, lex_scores = _arrays(lexical)
    den_ids, den_scores = _arrays(dense)
    ids = np.union1d(lex_ids, den_ids)
    lex = np.zeros(len(ids))
    den = np.zeros(len(ids))
    lex[np.searchsorted(ids, lex_ids)] = _minmax(lex_scores)
    den[np.searchsorted(ids, den_ids)] = _minmax(den_scores)
    fused = alpha * den + (1.0 - alpha) * lex
    order = np.lexsort((ids, -fused))
    return list(map(ScoredId._make, zip(ids[order].tolist(), fused[order].tolist(), strict=True)))
