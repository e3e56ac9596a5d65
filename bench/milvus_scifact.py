"""SciFact test through the Milvus backend beside the SQLite one, same defaults, one run: nDCG@10, recall@100,
MRR@10 and latency per retrieval mode (lexical, dense, hybrid, and the default search with reranking).

The SQLite index is the cached BEIR index of `tether eval retrieval` (built by the real ingest with MiniLM); the
Milvus (milvus-lite) index is made from it by `tether store export` / `import`, so both hold the same chunks and
vectors and any gap comes from the store: Milvus's BM25 (its formula over Tether's stems, three fields summed)
against SQLite FTS5's, and nothing else. SciFact is CC BY-NC 4.0 (../shared/data/scifact): evaluation only.

    python bench/milvus_scifact.py [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from _common import CACHE, SHARED
from tether import Tether
from tether.evals._beir import load_beir
from tether.evals._beir_run import BEIR_PREFIX, beir_index_path, build_beir_index, default_pipeline
from tether.evals._retrieval import evaluate_retrieval
from tether.retrieve import Retriever
from tether.store import Store
from tether.store._dump import export_index, import_index
from tether.store._milvus import MilvusStore


def scores(t: Tether, store: Store, root: Path) -> dict[str, Any]:
    data = load_beir(root, "test")
    paths = {cid: p.removeprefix(BEIR_PREFIX) for cid, p in store.chunk_paths().items()}

    def doc_of_chunk(ids: list[int]) -> dict[int, str]:
        return {i: paths[i] for i in ids if i in paths}

    retriever = Retriever(store, t.embedder, t.settings.retrieval)
    report = evaluate_retrieval(
        retriever,
        data,
        doc_of_chunk,
        modes=("lexical", "dense", "hybrid", "default"),
        default=default_pipeline(t, store)[1],
    )
    return {
        m.mode: {
            "ndcg_at_10": round(m.ndcg_at_10, 4),
            "recall_at_100": round(m.recall_at_100, 4),
            "mrr_at_10": round(m.mrr_at_10, 4),
            "p50_ms": round(m.p50_ms, 2),
            "p95_ms": round(m.p95_ms, 2),
        }
        for m in report.modes
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    root = SHARED / "scifact"
    t = Tether.open(None)
    sq = build_beir_index(t, root, beir_index_path(t, root))
    sq.prepare_search()
    dump = CACHE / "scifact-dump"
    lite = CACHE / "scifact.milvus.db"
    shutil.rmtree(dump, ignore_errors=True)
    shutil.rmtree(lite, ignore_errors=True)
    t0 = time.perf_counter()
    export_index(sq, dump)
    mv = MilvusStore.open(lite, create=True)
    counts = import_index(mv, dump, batch=256)
    mv.prepare_search()
    build_s = time.perf_counter() - t0
    out = {
        "chunks": counts["chunks"],
        "milvus_export_import_seconds": round(build_s, 1),
        "sqlite": scores(t, sq, root),
        "milvus_lite": scores(t, mv, root),
    }
    mv.close()
    sq.close()
    print(json.dumps(out, indent=2) if args.json else json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
