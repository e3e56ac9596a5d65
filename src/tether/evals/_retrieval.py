from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from pydantic import BaseModel

from tether.evals._beir import BeirData
from tether.evals._metrics import mrr_at_k, ndcg_at_k, recall_at_k
from tether.retrieve import Mode, Retriever


class ModeScores(BaseModel):
    mode: str
    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float
    queries: int
    p50_ms: float
    p95_ms: float


class RetrievalReport(BaseModel):
    dataset: str
    split: str
    config_hash: str
    modes: list[ModeScores]


def evaluate_retrieval(
    retriever: Retriever,
    data: BeirData,
    doc_of_chunk: Callable[[list[int]], dict[int, str]],
    *,
    modes: tuple[Mode, ...] = ("lexical", "dense", "hybrid"),
    config_hash: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> RetrievalReport:
    """Rank documents (score = best chunk) for every query and average nDCG@10, recall@100, MRR@10."""
    qids = sorted(data.queries)
    vectors = retriever.embedder.embed([data.queries[q] for q in qids])
    results = []
    total = len(qids) * len(modes)
    done = 0
    for mode in modes:
        nd, rc, mr, lat = [], [], [], []
        for qi, qid in enumerate(qids):
            t0 = time.perf_counter()
            fused, _ = retriever.rank(data.queries[qid], mode=mode, query_vector=vectors[qi])
            lat.append((time.perf_counter() - t0) * 1000)
            docs = doc_of_chunk([x.chunk_id for x in fused])
            ranked: list[str] = []
            seen: set[str] = set()
            for x in fused:
                d = docs.get(x.chunk_id)
                if d is not None and d not in seen:
                    seen.add(d)
                    ranked.append(d)
            rel = data.qrels[qid]
            nd.append(ndcg_at_k(ranked, rel, 10))
            rc.append(recall_at_k(ranked, rel, 100))
            mr.append(mrr_at_k(ranked, rel, 10))
            done += 1
            if progress is not None:
                progress(done, total)
        results.append(
            ModeScores(
                mode=mode,
                ndcg_at_10=float(np.mean(nd)),
                recall_at_100=float(np.mean(rc)),
                mrr_at_10=float(np.mean(mr)),
                queries=len(qids),
                p50_ms=float(np.percentile(lat, 50)),
                p95_ms=float(np.percentile(lat, 95)),
            )
        )
    retriever.trace.clear()
    return RetrievalReport(dataset=str(data.root), split=data.split, config_hash=config_hash, modes=results)
