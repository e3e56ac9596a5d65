"""The reranker named in tether.yaml."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tether.config import RerankSettings, resolve_path
from tether.contracts import Hit, SearchFilters, TraceEvent
from tether.errors import ConfigError
from tether.judge import IdfSource
from tether.models._cross_encoder import OnnxPairModel
from tether.rerank._learned import LearnedReranker, OnnxCrossEncoder
from tether.rerank._protocol import Reranker
from tether.retrieve import Mode, Retriever


def reranker_from_settings(settings: RerankSettings, root: Path, idf: IdfSource | None = None) -> Reranker | None:
    """None when reranking is off; the packaged learned model; or the user's ONNX cross-encoder."""
    if not settings.enabled:
        return None
    if settings.model == "learned":
        return LearnedReranker(idf=idf)
    if settings.tokenizer is None:
        raise ConfigError("rerank.tokenizer must name a tokenizer.json when rerank.model is a path")
    return OnnxCrossEncoder(
        OnnxPairModel(
            resolve_path(settings.model, root), resolve_path(settings.tokenizer, root), max_length=settings.max_length
        ),
        blend=settings.blend,
    )


def rerank_depth(settings: RerankSettings, reranker: Reranker) -> int:
    """Candidates to rerank: the configured depth, else the learned model's, else 20 for a cross-encoder."""
    if settings.depth is not None:
        return settings.depth
    if isinstance(reranker, LearnedReranker):
        return reranker.model.depth
    return 20


def search_and_rerank(
    retriever: Retriever,
    reranker: Reranker | None,
    settings: RerankSettings,
    query: str,
    k: int,
    *,
    mode: Mode = "hybrid",
    filters: SearchFilters | None = None,
    query_vector: npt.NDArray[np.float32] | None = None,
) -> tuple[list[Hit], list[TraceEvent]]:
    """The top ``k`` hits and the trace: hybrid hits are reranked from a deeper candidate list when a
    reranker is given (it was trained on hybrid candidates' scores); other modes are returned as searched."""
    if reranker is None or mode != "hybrid":
        hits = retriever.search(query, k, mode=mode, filters=filters, query_vector=query_vector)
        return hits, list(retriever.trace)
    depth = max(rerank_depth(settings, reranker), k)
    hits = retriever.search(query, depth, mode=mode, filters=filters, query_vector=query_vector)
    t0 = time.perf_counter()
    reranked = reranker.rerank(query, hits)[:k]
    event = TraceEvent(
        stage="rerank",
        detail={"model": reranker.name, "depth": depth, "candidates": len(hits)},
        ms=(time.perf_counter() - t0) * 1000,
    )
    return reranked, [*retriever.trace, event]
