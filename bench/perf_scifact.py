"""Ingest throughput, search latency, peak memory and index size on the SciFact corpus (5,183 abstracts).

Ingests the corpus into a fresh index (embedding included: it dominates) and then times searches
for the 300 test claims, query embedding included, one query at a time.

    python bench/perf_scifact.py [--json] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time

import numpy as np

from _common import CACHE, SHARED, need
from tether import Tether
from tether.evals import BeirData, load_beir
from tether.ingest import Ingestor
from tether.retrieve import Retriever
from tether.store import SQLiteStore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--limit", type=int, default=0, help="ingest only the first N documents")
    args = ap.parse_args()
    root = need(SHARED / "scifact")
    t = Tether.open(None)
    folder = CACHE / "perf"
    shutil.rmtree(folder, ignore_errors=True)
    store = SQLiteStore.open(folder / "index.db", create=True)
    ing = Ingestor(store, t.embedder, t.settings.ingest)
    t0 = time.perf_counter()
    records = list(BeirData(root=root, split="").corpus())[: args.limit or None]
    n_docs = len(records)
    ing.add_records(records)
    ing.flush()
    wall = time.perf_counter() - t0
    s = ing.summary
    stats = store.stats()

    data = load_beir(root, "test")
    retriever = Retriever(store, t.embedder, t.settings.retrieval)
    lat: dict[str, list[float]] = {"lexical": [], "dense": [], "hybrid": []}
    for q in data.queries.values():  # warm-up is the first few queries; keep them, it is a cold-ish start
        for mode in lat:
            q0 = time.perf_counter()
            retriever.search(q, 10, mode=mode)  # type: ignore[arg-type]
            lat[mode].append((time.perf_counter() - q0) * 1000)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = {
        "documents": n_docs,
        "chunks": s.chunks,
        "near_duplicates_removed": s.duplicates_removed,
        "ingest_seconds": round(wall, 2),
        "parse_chunk_seconds": round(s.parse_seconds, 2),
        "dedupe_seconds": round(s.dedupe_seconds, 2),
        "embed_seconds": round(s.embed_seconds, 2),
        "index_write_seconds": round(s.index_seconds, 2),
        "docs_per_second": round(n_docs / wall, 1),
        "chunks_per_second": round(s.chunks / wall, 1),
        "docs_per_second_excluding_embedding": round(n_docs / max(wall - s.embed_seconds, 1e-9), 1),
        "search_ms": {
            m: {"p50": round(float(np.percentile(v, 50)), 2), "p95": round(float(np.percentile(v, 95)), 2)}
            for m, v in lat.items()
        },
        "search_includes_query_embedding": True,
        "peak_rss_mb": round(peak_mb, 1),
        "index_bytes": stats.bytes_on_disk,
    }
    store.close()
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return
    for k, v in report.items():
        print(f"{k:40s} {v}")


if __name__ == "__main__":
    main()
