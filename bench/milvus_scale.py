"""SQLite against Milvus (milvus-lite) at scale, in one run: build time, size on disk, peak memory, hybrid, lexical
and dense latency, dense recall@10 against exact search, and how much the two backends' top 10 agree.

The corpus is bench/scale_1m.py's (generated text, SYNTHETIC clustered vectors shaped like MiniLM's; see there),
built into SQLite by that script's real ingest (cached under .tether/bench/scale-N/). The Milvus index is built
from it by `tether store export` / `import` (the same documents, chunks and vectors: nothing is embedded again),
so "build" for Milvus is the import. Queries are scale_1m.py's: 5-9 words of a random chunk and a query vector
moved off that chunk within its topic.

milvus-lite is Milvus's embedded, pure-Python form (one process); a cluster spreads the same collections over
machines and would use an ANN index (HNSW, IVF) where milvus-lite searches exactly (FLAT). The figures are this
machine's and milvus-lite's, not a cluster's.

    python bench/milvus_scale.py [--n 100000] [--queries 100] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from _common import CACHE
from scale_1m import Corpus, build, percentiles
from tether import Tether
from tether.retrieve import Retriever
from tether.store import SQLiteStore, Store
from tether.store._dump import export_index, import_index
from tether.store._milvus import MilvusStore
from tether.text import STOPWORDS, words


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def disk_bytes(path: Path) -> int:
    if path.is_file():
        return sum(p.stat().st_size for p in path.parent.iterdir() if p.name.startswith(path.name) and p.is_file())
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def queries(sq: SQLiteStore, n_chunks: int, n: int) -> list[tuple[str, npt.NDArray[np.float32]]]:
    corpus = Corpus(n_chunks)
    rng = np.random.default_rng(11)
    top = int(sq._conn.execute("SELECT MAX(id) FROM chunks").fetchone()[0])
    out: list[tuple[str, npt.NDArray[np.float32]]] = []
    while len(out) < n:
        row = sq._conn.execute(
            "SELECT text, vector, title FROM chunks WHERE id >= ? ORDER BY id LIMIT 1", (int(rng.integers(1, top + 1)),)
        ).fetchone()
        content = [w for w in words(row[0]) if w not in STOPWORDS]
        if len(content) < 5:
            continue
        k = int(rng.integers(5, 10))
        text = " ".join(content[i] for i in sorted(rng.choice(len(content), min(k, len(content)), replace=False)))
        out.append((text, corpus.query_vector(np.frombuffer(row[1], np.float32), row[2], rng)))
    return out


def measure(store: Store, t: Tether, qs: list[tuple[str, npt.NDArray[np.float32]]]) -> dict[str, Any]:
    retriever = Retriever(store, t.embedder, t.settings.retrieval)
    for q, v in qs[:5]:
        retriever.search(q, 10, query_vector=v)
    lat: dict[str, list[float]] = {"hybrid": [], "lexical": [], "dense": []}
    tops: dict[str, list[list[tuple[str, int]]]] = {"hybrid": [], "dense": []}
    for q, v in qs:
        a = time.perf_counter()
        h = retriever.search(q, 10, query_vector=v)
        b = time.perf_counter()
        retriever.search(q, 10, mode="lexical")
        c = time.perf_counter()
        d = retriever.search(q, 10, mode="dense", query_vector=v)
        e = time.perf_counter()
        lat["hybrid"].append((b - a) * 1000)
        lat["lexical"].append((c - b) * 1000)
        lat["dense"].append((e - c) * 1000)
        tops["hybrid"].append([(x.path, x.start) for x in h])
        tops["dense"].append([(x.path, x.start) for x in d])
    return {"ms": {k: percentiles(v) for k, v in lat.items()}, "tops": tops, "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    folder = CACHE / f"scale-{args.n}"
    t = Tether.open(None)
    if not (folder / "build.json").exists():
        print(f"building the SQLite index of {args.n:,} chunks (scale_1m.py) ...", file=sys.stderr)
        build(folder, args.n, t)
    sqlite_build = json.loads((folder / "build.json").read_text(encoding="utf-8"))
    sq = SQLiteStore.open(folder / "index.db")
    n_chunks = sq.chunk_count()
    qs = queries(sq, args.n, args.queries)
    dump = folder / "dump"
    shutil.rmtree(dump, ignore_errors=True)
    t0 = time.perf_counter()
    manifest = export_index(sq, dump)
    export_s = time.perf_counter() - t0
    lite = folder / "index.milvus.db"
    shutil.rmtree(lite, ignore_errors=True)
    mv = MilvusStore.open(lite, create=True)
    t0 = time.perf_counter()
    last = [t0]

    def tick(done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            print(f"  import {done:,}/{total:,} documents, {last[0] - t0:.0f} s", file=sys.stderr)

    counts = import_index(mv, dump, tick, batch=256)
    mv.prepare_search()
    import_s = time.perf_counter() - t0
    build_rss = peak_rss_mb()
    sq.prepare_search()
    m_sq = measure(sq, t, qs)
    m_mv = measure(mv, t, qs)
    # dense recall@10 of each backend against exact search over the stored vectors
    ids, mat = sq._load_vectors()
    paths = sq.chunk_paths()
    starts = {r.chunk_id: (r.path, r.start) for r in sq.chunk_rows(list(ids[: len(ids)].tolist())).values()}
    exact = []
    for _, v in qs:
        best = ids[np.argpartition(-(mat @ v), 9)[:10]]
        exact.append({starts[int(i)] for i in best})
    recall = {
        name: round(
            float(np.mean([len(set(top) & e) / 10 for top, e in zip(m["tops"]["dense"], exact, strict=True)])), 4
        )
        for name, m in (("sqlite", m_sq), ("milvus", m_mv))
    }
    agree = {
        kind: round(
            float(
                np.mean(
                    [len(set(a) & set(b)) / 10 for a, b in zip(m_sq["tops"][kind], m_mv["tops"][kind], strict=True)]
                )
            ),
            4,
        )
        for kind in ("hybrid", "dense")
    }
    out = {
        "chunks": n_chunks,
        "documents": manifest["documents"],
        "queries": len(qs),
        "vectors": "synthetic, clustered (scale_1m.py)",
        "sqlite": {
            "build_seconds": sqlite_build["build_seconds"]["total_excluding_text_generation"],
            "disk_bytes": disk_bytes(folder / "index.db"),
            "search_ms": m_sq["ms"],
            "dense_recall_at_10_vs_exact": recall["sqlite"],
        },
        "milvus_lite": {
            "build_seconds_import": round(import_s, 1),
            "import_chunks_per_second": round(counts["chunks"] / import_s, 1),
            "disk_bytes": disk_bytes(lite),
            "search_ms": m_mv["ms"],
            "dense_recall_at_10_vs_exact": recall["milvus"],
        },
        "export_seconds": round(export_s, 1),
        "dump_bytes": disk_bytes(dump),
        "top10_agreement_sqlite_vs_milvus": agree,
        "peak_rss_mb": {"after_import": build_rss, "after_searches": peak_rss_mb()},
        "chunk_paths": len(paths),
    }
    mv.close()
    sq.close()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
