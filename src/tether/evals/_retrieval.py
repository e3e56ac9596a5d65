"""Retrieval figures (nDCG@10, recall@100, MRR@10) of each retrieval mode over a BEIR data set.

``lexical``, ``dense`` and ``hybrid`` rank with the retriever alone (no reranker). ``default`` is what
``tether search`` / :meth:`Tether.search` returns by default: hybrid, collapsed, reranked when
``rerank.enabled``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

from tether.evals._beir import BeirData
from tether.evals._metrics import mrr_at_k, ndcg_at_k, recall_at_k
from tether.retrieve import Retriever

EvalMode = Literal["lexical", "dense", "hybrid", "default"]
EVAL_MODES: tuple[EvalMode, ...] = get_args(EvalMode)
DEFAULT_HEAD = 10  # results asked of the default pipeline: what nDCG@10 and MRR@10 read
MODE_LABELS: dict[str, str] = {
    "lexical": "lexical (BM25 only, no rerank)",
    "dense": "dense (embeddings only, no rerank)",
    "hybrid": "hybrid (no rerank)",
}


@dataclass
class DefaultPipeline:
    """What ``tether search -k 10`` returns for a query (chunk ids, best first), and what that pipeline is."""

    search: Callable[[str, npt.NDArray[np.float32]], list[int]]
    label: str


class ModeScores(BaseModel):
    mode: str
    label: str = Field("", description="what the mode is, e.g. 'hybrid (no rerank)'")
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
    modes: tuple[EvalMode, ...] = ("lexical", "dense", "hybrid"),
    config_hash: str = "",
    progress: Callable[[int, int], None] | None = None,
    default: DefaultPipeline | None = None,
) -> RetrievalReport:
    """Rank documents (score = best chunk) for every query and average nDCG@10, recall@100, MRR@10.

    ``default`` (needed for the ``default`` mode) gives the top 10 of the default search pipeline; past
    the documents of those 10 chunks, the ranking goes on in hybrid order (for recall@100). Latency is
    that of the ranking call alone (query vectors are computed once beforehand, for every mode).
    """
    if "default" in modes and default is None:
        raise ValueError("the 'default' mode needs the default search pipeline")
    qids = sorted(data.queries)
    vectors = retriever.embedder.embed([data.queries[q] for q in qids])
    results = []
    total = len(qids) * len(modes)
    done = 0
    for mode in modes:
        nd, rc, mr, lat = [], [], [], []
        for qi, qid in enumerate(qids):
            query = data.queries[qid]
            t0 = time.perf_counter()
            if mode == "default":
                assert default is not None
                head = default.search(query, vectors[qi])
                lat.append((time.perf_counter() - t0) * 1000)
                fused, _ = retriever.rank(query, mode="hybrid", query_vector=vectors[qi])
                order = [*head, *(x.chunk_id for x in fused)]
            else:
                fused, _ = retriever.rank(query, mode=mode, query_vector=vectors[qi])
                lat.append((time.perf_counter() - t0) * 1000)
                order = [x.chunk_id for x in fused]
            docs = doc_of_chunk(order)
            ranked: list[str] = []
            seen: set[str] = set()
            for cid in order:
                d = docs.get(cid)
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
                label=default.label if mode == "default" and default is not None else MODE_LABELS[mode],
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
