"""Recall of the HNSW (usearch) index against exact search, on SciFact's real MiniLM chunk vectors.

Uses the SciFact index that `tether eval retrieval --beir ../shared/data/scifact` builds (11,583 chunks),
the 300 test claims as queries, and compares top-10 ids of exact numpy search with the ANN index
(forced on by a threshold of 1). Also prints per-query latency of both.

    python bench/ann_recall.py [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from _common import SHARED, need
from tether import Tether
from tether.evals import load_beir
from tether.evals._beir_run import beir_index_path, build_beir_index
from tether.store import SQLiteStore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    root = need(SHARED / "scifact")
    t = Tether.open(None)
    path: Path = beir_index_path(t, root)
    build_beir_index(t, root, path).close()
    queries = load_beir(root, "test").queries
    vecs = t.embedder.embed(list(queries.values()))
    store = SQLiteStore.open(path, ann_threshold=10**12)
    exact, t_exact = [], []
    for v in vecs:
        t0 = time.perf_counter()
        exact.append([x.chunk_id for x in store.dense_search(v, args.k)])
        t_exact.append((time.perf_counter() - t0) * 1000)
    store.ann_threshold = 1
    t0 = time.perf_counter()
    store.dense_search(vecs[0], 1)  # builds (or syncs) the HNSW index
    build_s = time.perf_counter() - t0
    approx, t_ann = [], []
    for v in vecs:
        t0 = time.perf_counter()
        approx.append([x.chunk_id for x in store.dense_search(v, args.k)])
        t_ann.append((time.perf_counter() - t0) * 1000)
    recall = float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact, strict=True)]))
    out = {
        "chunks": store.chunk_count(),
        "queries": len(vecs),
        f"recall@{args.k}_ann_vs_exact": round(recall, 4),
        "exact_p50_ms": round(float(np.percentile(t_exact, 50)), 3),
        "ann_p50_ms": round(float(np.percentile(t_ann, 50)), 3),
        "ann_build_or_sync_seconds": round(build_s, 2),
    }
    store.close()
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
    else:
        for k, v in out.items():
            print(f"{k:30s} {v}")


if __name__ == "__main__":
    main()
