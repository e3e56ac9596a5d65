from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Literal

import numpy as np
import numpy.typing as npt

from tether.config import RetrievalSettings
from tether.contracts import Hit, SearchFilters, TraceEvent
from tether.models import Embedder
from tether.retrieve._fusion import convex_fusion, rrf_fusion
from tether.store import ScoredId, SQLiteStore
from tether.text import content_words, words

Mode = Literal["hybrid", "lexical", "dense"]


RankInfo = tuple[int | None, int | None, float | None, float | None]
"""A candidate's (lexical rank, dense rank, lexical score, dense score); None where a side missed it."""


def _collapse_words(text: str) -> set[str]:
    """The word set that near-copy collapsing compares: lowercase whitespace-separated tokens.

    Punctuation stays on its word, which matters little to whether two chunks are near-copies, and this
    is ~2.5x faster than :func:`tether.text.words` (a search tokenizes every hit it returns)."""
    return set(text.lower().split())


def _jaccard(a: set[str], b: set[str]) -> float:
    if not a or not b:
        return 0.0
    common = len(a & b)
    return common / (len(a) + len(b) - common)


def _near_copy(ws: set[str], kept: list[set[str]], threshold: float) -> bool:
    """Whether ``ws`` overlaps one of ``kept`` by at least ``threshold`` (Jaccard)."""
    n = len(ws)
    for o in kept:
        # Jaccard is at most the ratio of the two sizes (also once rounded: division rounds monotonically),
        # so pairs too different in size cannot reach the threshold
        if n and o and min(n, len(o)) / max(n, len(o)) < threshold:
            continue
        if _jaccard(ws, o) >= threshold:
            return True
    return False


class _Info(Mapping[int, RankInfo]):
    """Chunk id -> :data:`RankInfo` for every fused candidate, worked out when asked (most never are)."""

    def __init__(self, fused: list[ScoredId], lexical: list[ScoredId], dense: list[ScoredId]) -> None:
        self._fused = fused
        self._lexical = lexical
        self._dense = dense
        self._lex: dict[int, tuple[int, float]] | None = None
        self._den: dict[int, tuple[int, float]] | None = None

    def __getitem__(self, chunk_id: int) -> RankInfo:
        if self._lex is None or self._den is None:
            self._lex = {x.chunk_id: (i, x.score) for i, x in enumerate(self._lexical, 1)}
            self._den = {x.chunk_id: (i, x.score) for i, x in enumerate(self._dense, 1)}
        lr, ls = self._lex.get(chunk_id, (None, None))
        dr, ds = self._den.get(chunk_id, (None, None))
        if lr is None and dr is None:  # the fused candidates are exactly those of the two sides
            raise KeyError(chunk_id)
        return lr, dr, ls, ds

    def __iter__(self) -> Iterator[int]:
        return (x.chunk_id for x in self._fused)

    def __len__(self) -> int:
        return len(self._fused)


class Retriever:
    """Lexical (FTS5 BM25) and dense (exact cosine) candidates, fused by RRF or a convex blend."""

    def __init__(self, store: SQLiteStore, embedder: Embedder, settings: RetrievalSettings) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.trace: list[TraceEvent] = []

    def embed_query(self, query: str) -> npt.NDArray[np.float32]:
        v: npt.NDArray[np.float32] = self.embedder.embed([query])[0]
        return v

    def rank(
        self,
        query: str,
        *,
        mode: Mode = "hybrid",
        filters: SearchFilters | None = None,
        query_vector: npt.NDArray[np.float32] | None = None,
        lexical_n: int | None = None,
    ) -> tuple[list[ScoredId], Mapping[int, RankInfo]]:
        """All fused candidates, best first, and for each its (lexical rank, dense rank, scores).

        ``lexical_n`` caps the lexical candidates below ``retrieval.lexical_top_n`` (a lexical search that
        will read only the first few asks for only those)."""
        s = self.settings
        lexical: list[ScoredId] = []
        dense: list[ScoredId] = []
        t0 = time.perf_counter()
        if mode in ("hybrid", "lexical"):
            terms = content_words(query) or words(query)
            lexical = self.store.lexical_search(
                terms,
                s.lexical_top_n if lexical_n is None else min(lexical_n, s.lexical_top_n),
                filters,
                title_weight=s.title_weight,
                section_weight=s.section_weight,
            )
        t1 = time.perf_counter()
        if mode in ("hybrid", "dense"):
            vec = self.embed_query(query) if query_vector is None else query_vector
            dense = self.store.dense_search(vec, s.dense_top_n, filters)
        t2 = time.perf_counter()
        if mode == "lexical":
            fused = lexical
        elif mode == "dense":
            fused = dense
        elif s.fusion == "rrf":
            fused = rrf_fusion([lexical, dense], s.rrf_k)
        else:
            fused = convex_fusion(lexical, dense, s.alpha)
        info = _Info(fused, lexical, dense)
        self.trace = [
            TraceEvent(
                stage="retrieve",
                detail={
                    "mode": mode,
                    "lexical": len(lexical),
                    "dense": len(dense),
                    "fused": len(fused),
                    "lexical_ms": round((t1 - t0) * 1000, 2),
                    "dense_ms": round((t2 - t1) * 1000, 2),
                },
                ms=(time.perf_counter() - t0) * 1000,
            )
        ]
        return fused, info

    def search(
        self,
        query: str,
        k: int | None = None,
        *,
        mode: Mode = "hybrid",
        filters: SearchFilters | None = None,
        collapse: bool = True,
        query_vector: npt.NDArray[np.float32] | None = None,
    ) -> list[Hit]:
        """Top-k chunks for ``query`` with their scores; near-identical hits collapsed into the best."""
        k = k or self.settings.top_k
        size = max(k * 4, k + 10) if collapse else k
        # in lexical mode the fused list is the lexical one, so no more than the window need be scored
        lexical_n = size if mode == "lexical" else None
        fused, info = self.rank(query, mode=mode, filters=filters, query_vector=query_vector, lexical_n=lexical_n)
        window = fused[:size]
        out: list[Hit] = []
        kept_words: list[set[str]] = []
        # chunk rows are read a few at a time: collapsing seldom drops any, so most of the window is never read
        step = k + 1 if collapse else k
        for b in range(0, len(window), step):
            part = window[b : b + step]
            rows = self.store.chunk_rows([x.chunk_id for x in part])
            for x in part:
                row = rows.get(x.chunk_id)
                if row is None:
                    continue
                if collapse:
                    ws = _collapse_words(row.text)
                    if _near_copy(ws, kept_words, self.settings.collapse_threshold):
                        continue
                    kept_words.append(ws)
                lr, dr, ls, ds = info[x.chunk_id]
                out.append(
                    Hit(
                        chunk_id=row.chunk_id,
                        doc_id=row.doc_id,
                        path=row.path,
                        title=row.title,
                        section=row.section,
                        start=row.start,
                        end=row.end,
                        text=row.text,
                        score=x.score,
                        lexical_rank=lr,
                        dense_rank=dr,
                        lexical_score=ls,
                        dense_score=ds,
                    )
                )
                if len(out) >= k:
                    return out
        return out
