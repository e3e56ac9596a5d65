"""Search latency on SciFact's 300 test claims, one query at a time, one thread of Python.

Uses the SciFact index that `tether eval retrieval --beir ../shared/data/scifact` builds (built here if
missing). Reports p50/p95 wall time of:

- the query embedding alone (the packaged MiniLM on the short claim);
- `Retriever.search(q, k=10)` per mode, query embedding included, and hybrid search with the default
  reranker (what `tether search` does);
- hybrid with the query vector given (what `tether eval retrieval` times), `search` and `rank`;
- the store's candidate searches: lexical top-200 (the numpy BM25 index, and the same query asked of
  FTS5 as before), dense top-200.

Besides wall time it gives the main thread's CPU time (``time.thread_time``): on a busy machine wall time
mostly measures the other processes; with ``--threads 1`` the embedding runs on the main thread too, so
CPU time is what a quiet machine would show for one core.

    python bench/search_latency.py [--threads N] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from _common import SHARED, need
from tether import Tether
from tether.evals import load_beir
from tether.evals._beir_run import beir_index_path, build_beir_index
from tether.retrieve import Retriever
from tether.store import SQLiteStore
from tether.text import content_words, words


def timed(fn: Callable[[int], object], n: int, warm: int = 20) -> dict[str, float]:
    for i in range(min(warm, n)):
        fn(i)
    wall, cpu = [], []
    for i in range(n):
        t0, c0 = time.perf_counter(), time.thread_time()
        fn(i)
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - t0)
    return {
        "p50_ms": round(float(np.percentile(wall, 50)) * 1000, 3),
        "p95_ms": round(float(np.percentile(wall, 95)) * 1000, 3),
        "cpu_p50_ms": round(float(np.percentile(cpu, 50)) * 1000, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None, help="embedding threads (default: tether.yaml's, 0 = all)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    root = need(SHARED / "scifact")
    t = Tether.open(None)
    if args.threads is not None:
        t.settings.embedding.threads = args.threads
    path: Path = beir_index_path(t, root)
    build_beir_index(t, root, path).close()
    store = SQLiteStore.open(path)
    t0 = time.perf_counter()
    if hasattr(store, "prepare_search"):
        store.prepare_search()
    prepare_s = time.perf_counter() - t0
    retriever = Retriever(store, t.embedder, t.settings.retrieval)
    queries = list(load_beir(root, "test").queries.values())
    vecs = t.embedder.embed(queries)
    terms = [content_words(q) or words(q) for q in queries]
    n = len(queries)
    s = t.settings.retrieval
    out: dict[str, object] = {
        "queries": n,
        "chunks": store.chunk_count(),
        "embedding_threads": t.embedder.threads,
        "prepare_search_s": round(prepare_s, 3),
        "embed_query": timed(lambda i: retriever.embed_query(queries[i]), n),
    }
    for mode in ("lexical", "dense", "hybrid"):
        out[f"search_{mode}_with_embedding"] = timed(
            lambda i, m=mode: retriever.search(queries[i], 10, mode=m),  # type: ignore[misc]
            n,
        )
    if getattr(t.settings, "rerank", None) is not None and t.settings.rerank.enabled:
        from tether.judge import StoreIdf
        from tether.rerank import reranker_from_settings, search_and_rerank

        reranker = reranker_from_settings(t.settings.rerank, t.settings.root, StoreIdf(store))
        out["search_hybrid_rerank_with_embedding"] = timed(  # what `tether search` does by default
            lambda i: search_and_rerank(retriever, reranker, t.settings.rerank, queries[i], 10), n
        )
    out["search_hybrid_vector_given"] = timed(lambda i: retriever.search(queries[i], 10, query_vector=vecs[i]), n)
    out["rank_hybrid_vector_given"] = timed(lambda i: retriever.rank(queries[i], query_vector=vecs[i]), n)
    out["store_lexical_top200"] = timed(
        lambda i: store.lexical_search(terms[i], s.lexical_top_n, title_weight=s.title_weight), n
    )
    if hasattr(store, "_fts_lexical_search"):
        out["store_lexical_top200_fts5"] = timed(
            lambda i: store._fts_lexical_search(terms[i], s.lexical_top_n, title_weight=s.title_weight), n
        )
    out["store_dense_top200"] = timed(lambda i: store.dense_search(vecs[i], s.dense_top_n), n)
    store.close()
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
        return
    for k, v in out.items():
        print(f"{k:34s} {v}")


if __name__ == "__main__":
    main()
