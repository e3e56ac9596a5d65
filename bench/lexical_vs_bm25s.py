"""Lexical search latency: Tether's BM25 against bm25s on SciFact's 300 test claims, one query at a time.

bm25s is not a Tether dependency: `pip install bm25s PyStemmer` into the environment that runs this.
bm25s runs its recommended setup (English stopwords, PyStemmer's English stemmer, numpy backend, its
default of no thread pool for one query), indexed two ways: over SciFact's 5,183 abstracts (title + text,
its usual BEIR setup) and over the 11,583 chunks Tether indexes (title, section path, text). A bm25s query
is `tokenize` + `retrieve` (a query has to be tokenized; Tether's lexical search also tokenizes its query).
Tether is timed at the store (`lexical_search`: terms in, ids and scores out, like bm25s) and through
`Retriever.search` in lexical mode (which also fetches the rows and collapses near-copies). Each variant
takes its own passes over the queries (see `timed`). Tether's tokenizer caches the words it has seen (FTS5
tokenizes them; a long-running process sees most words again), bm25s caches nothing: the full search is
timed three ways: its cache emptied before each query (every word new), emptied before the first query of
a pass (each query finds the words of the ones before it, as in a fresh process), and filled with the
query's words.
nDCG@10 of each is printed too, so that the speed is of searches of the same quality class.

    python bench/lexical_vs_bm25s.py [--json]
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
from tether.evals import BeirData, load_beir
from tether.evals._beir_run import BEIR_PREFIX, beir_index_path, build_beir_index
from tether.evals._metrics import ndcg_at_k
from tether.retrieve import Retriever
from tether.store import ScoredId, SQLiteStore
from tether.text import content_words, words

Timed = Callable[[int], object] | tuple[Callable[[int], object], Callable[[int], object]]
"""A function of the query number, or (untimed set-up, function)."""


def timed(fns: dict[str, Timed], n: int, rounds: int = 6) -> dict[str, dict[str, float]]:
    """p50/p95 wall and main-thread CPU ms of each function over every query.

    One untimed pass over every query first, so that each system's structures are in memory (Tether's
    lexical index is memory-mapped: a fresh process faults its pages in as queries first touch them).
    Then each function in turn takes a pass over all queries, the order of the functions reversed every
    round: a function never runs right after another one on the same query, whose reads it would find in
    the CPU's caches."""
    plan = {k: v if isinstance(v, tuple) else (None, v) for k, v in fns.items()}
    for i in range(n):
        for setup, fn in plan.values():
            if setup is not None:
                setup(i)
            fn(i)
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    names = list(plan)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            setup, fn = plan[name]
            for i in range(n):
                if setup is not None:
                    setup(i)
                t0, c0 = time.perf_counter(), time.thread_time()
                fn(i)
                cpu[name].append(time.thread_time() - c0)
                wall[name].append(time.perf_counter() - t0)
    return {
        k: {
            "p50_ms": round(float(np.percentile(wall[k], 50)) * 1000, 3),
            "p95_ms": round(float(np.percentile(wall[k], 95)) * 1000, 3),
            "cpu_p50_ms": round(float(np.percentile(cpu[k], 50)) * 1000, 3),
        }
        for k in fns
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    try:
        import bm25s
        import Stemmer
    except ImportError:
        sys.exit("pip install bm25s PyStemmer (comparison only; not a Tether dependency)")
    root = need(SHARED / "scifact")
    t = Tether.open(None)
    path: Path = beir_index_path(t, root)
    build_beir_index(t, root, path).close()
    store = SQLiteStore.open(path)
    store.prepare_search()
    data = load_beir(root, "test")
    qids = sorted(data.queries)
    queries = [data.queries[q] for q in qids]
    n = len(queries)
    s = t.settings.retrieval
    stemmer = Stemmer.Stemmer("english")

    doc_ids, doc_texts = [], []
    for doc_id, title, text in BeirData(root=root, split="").corpus():
        doc_ids.append(doc_id)
        doc_texts.append(f"{title} {text}")
    chunk_rows = store._conn.execute(
        "SELECT c.id, d.path, c.title, c.section, c.text FROM chunks c JOIN documents d ON d.id = c.doc_id"
        " ORDER BY c.id"
    ).fetchall()
    chunk_doc = [str(r[1]).removeprefix(BEIR_PREFIX) for r in chunk_rows]
    chunk_texts = [f"{r[2]} {r[3]} {r[4]}" for r in chunk_rows]

    def bm25s_index(texts: list[str]) -> bm25s.BM25:
        r = bm25s.BM25(backend="numpy")
        r.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
        return r

    def bm25s_query(r: bm25s.BM25, q: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        tokens = bm25s.tokenize(q, stopwords="en", stemmer=stemmer, show_progress=False)
        ids, scores = r.retrieve(tokens, k=k, show_progress=False)  # n_threads=0: no pool for one query
        return ids[0], scores[0]

    t0 = time.perf_counter()
    over_docs = bm25s_index(doc_texts)
    docs_index_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    over_chunks = bm25s_index(chunk_texts)
    chunks_index_s = time.perf_counter() - t0

    terms = [content_words(q) or words(q) for q in queries]
    tw = s.title_weight

    def lex(m: list[str], k: int) -> list[ScoredId]:
        return store.lexical_search(m, k, title_weight=tw)

    retriever = Retriever(store, t.embedder, s)
    tokenizer = store._lexical_index()._tokenizer  # private: its word cache is emptied or filled before a query

    def forget_words(i: int) -> None:
        tokenizer._cache.clear()

    def know_words(i: int) -> None:
        tokenizer.tokens(terms[i])

    def start_empty(i: int) -> None:  # the words of earlier queries of the pass, as a fresh process has
        if i == 0:
            tokenizer._cache.clear()

    def search(i: int) -> object:
        return retriever.search(queries[i], 10, mode="lexical")

    paths = {cid: p.removeprefix(BEIR_PREFIX) for cid, p in store.chunk_paths().items()}

    def ndcg(ranked_docs: list[list[str]]) -> float:
        scores = [ndcg_at_k(r, data.qrels[q], 10) for r, q in zip(ranked_docs, qids, strict=True)]
        return round(float(np.mean(scores)), 4)

    def best_chunk_docs(ids: list[int] | np.ndarray, to_doc: Callable[[int], str | None]) -> list[str]:
        out: list[str] = []
        for i in ids:
            d = to_doc(int(i))
            if d is not None and d not in out:
                out.append(d)
        return out

    report: dict[str, object] = {
        "queries": n,
        "bm25s_index_seconds": {"docs": round(docs_index_s, 2), "chunks": round(chunks_index_s, 2)},
        "latency": timed(
            {
                "tether_search_lexical_k10_new_words": (forget_words, search),
                "tether_search_lexical_k10_in_turn": (start_empty, search),
                "tether_search_lexical_k10": (know_words, search),
                "tether_store_lexical_top10": (
                    know_words,
                    lambda i: store.lexical_search(terms[i], 10, title_weight=tw),
                ),
                "tether_store_lexical_top200": (
                    know_words,
                    lambda i: store.lexical_search(terms[i], 200, title_weight=tw),
                ),
                "bm25s_docs_top10": lambda i: bm25s_query(over_docs, queries[i], 10),
                "bm25s_docs_top200": lambda i: bm25s_query(over_docs, queries[i], 200),
                "bm25s_chunks_top10": lambda i: bm25s_query(over_chunks, queries[i], 10),
                "bm25s_chunks_top200": lambda i: bm25s_query(over_chunks, queries[i], 200),
            },
            n,
        ),
        "ndcg_at_10": {
            "tether_lexical": ndcg([best_chunk_docs([x.chunk_id for x in lex(m, 200)], paths.get) for m in terms]),
            "bm25s_docs": ndcg([[doc_ids[int(i)] for i in bm25s_query(over_docs, q, 10)[0]] for q in queries]),
            "bm25s_chunks": ndcg(
                [best_chunk_docs(bm25s_query(over_chunks, q, 200)[0], chunk_doc.__getitem__) for q in queries]
            ),
        },
    }
    lat = report["latency"]
    assert isinstance(lat, dict)
    ratio = {
        "store_top10_vs_bm25s_docs_top10": ("tether_store_lexical_top10", "bm25s_docs_top10"),
        "store_top10_vs_bm25s_chunks_top10": ("tether_store_lexical_top10", "bm25s_chunks_top10"),
        "store_top200_vs_bm25s_chunks_top200": ("tether_store_lexical_top200", "bm25s_chunks_top200"),
        "search_k10_vs_bm25s_docs_top10": ("tether_search_lexical_k10", "bm25s_docs_top10"),
        "search_k10_new_words_vs_bm25s_docs_top10": ("tether_search_lexical_k10_new_words", "bm25s_docs_top10"),
        "search_k10_in_turn_vs_bm25s_docs_top10": ("tether_search_lexical_k10_in_turn", "bm25s_docs_top10"),
    }
    for label, key in (("tether_over_bm25s_wall_p50", "p50_ms"), ("tether_over_bm25s_cpu_p50", "cpu_p50_ms")):
        report[label] = {name: round(lat[a][key] / lat[b][key], 2) for name, (a, b) in ratio.items()}
    store.close()
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return
    for k, v in report.items():
        if isinstance(v, dict):
            print(k)
            for k2, v2 in v.items():
                print(f"  {k2:34s} {v2}")
        else:
            print(f"{k:36s} {v}")


if __name__ == "__main__":
    main()
