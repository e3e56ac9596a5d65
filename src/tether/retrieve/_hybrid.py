from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Literal

import numpy as np
import numpy.typing as npt

from tether.config import RetrievalSettings
from tether.contracts import Hit, SearchFilters, TraceEvent
from tether.ingest._dedupe import estimated_jaccard
from tether.models import Embedder
from tether.retrieve._fusion import convex_fusion, rrf_fusion
from tether.store import ScoredId, Store
from tether.text import content_words, words

Mode = Literal["hybrid", "lexical", "dense"]


RankInfo = tuple[int | None, int | None, float | None, float | None]
"""A candidate's (lexical rank, dense rank, lexical score, dense score); None where a side missed it."""


class _Collapser:
    """Keeps hits in order and drops each that nearly copies one kept before it.

    Near-copy means an estimated Jaccard of word 3-shingles at or above ``threshold``, from the MinHash
    signatures the ingest stored for its own near-duplicate check: a search compares stored numbers, where
    tokenizing each hit's text took 40% of a lexical search. Signatures of different lengths (an index
    ingested with two ``dedupe.num_perm`` values) are not comparable and never match."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._kept: list[npt.NDArray[np.uint64]] = []

    def keep(self, signatures: list[bytes]) -> list[bool]:
        """For each signature of the next hits, in order, whether its hit is kept (and now compared against)."""
        n = len(signatures)
        nbytes = len(signatures[0]) if n else 0
        if n == 0 or nbytes == 0 or any(len(b) != nbytes for b in signatures):
            return [self._keep_one(np.frombuffer(b, dtype=np.uint64)) for b in signatures]
        new = np.frombuffer(b"".join(signatures), dtype=np.uint64).reshape(n, -1)
        th = self.threshold
        width = new.shape[1]
        # the fraction of equal values, as :func:`~tether.ingest._dedupe.estimated_jaccard` computes it
        within = ((new[:, None, :] == new[None, :, :]).sum(axis=2) / width >= th).tolist()
        kept = [k for k in self._kept if len(k) == width]
        if kept:
            same = (new[:, None, :] == np.stack(kept)[None, :, :]).sum(axis=2) / width
            before = (same >= th).any(axis=1).tolist()
        else:
            before = [False] * n
        out: list[bool] = []
        here: list[int] = []
        for i in range(n):
            row = within[i]
            copy = before[i] or (True in row[:i] and any(row[j] for j in here))
            out.append(not copy)
            if not copy:
                here.append(i)
                self._kept.append(new[i])
        return out

    def _keep_one(self, sig: npt.NDArray[np.uint64]) -> bool:
        for o in self._kept:
            if len(o) == len(sig) and len(sig) and estimated_jaccard(o, sig) >= self.threshold:
                return False
        self._kept.append(sig)
        return True


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

    def __init__(self, store: Store, embedder: Embedder, settings: RetrievalSettings) -> None:
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
        collapser = _Collapser(self.settings.collapse_threshold) if collapse else None
        # chunk rows are read a few at a time: collapsing seldom drops any, so most of the window is never read
        step = k + 1 if collapse else k
        for b in range(0, len(window), step):
            part = window[b : b + step]
            rows = self.store.chunk_rows([x.chunk_id for x in part])
            found = [(b + j, x, rows[x.chunk_id]) for j, x in enumerate(part) if x.chunk_id in rows]
            kept = collapser.keep([row.minhash for _, _, row in found]) if collapser else [True] * len(found)
            for (at, x, row), keep in zip(found, kept, strict=True):
                if not keep:
                    continue
                # one side alone: the fused list is that side's, so a hit's rank there is its place in it
                if mode == "lexical":
                    lr, dr, ls, ds = at + 1, None, x.score, None
                elif mode == "dense":
                    lr, dr, ls, ds = None, at + 1, None, x.score
                else:
                    lr, dr, ls, ds = info[x.chunk_id]
                out.append(row.hit(x.score, lr, dr, ls, ds))
                if len(out) >= k:
                    return out
        return out
