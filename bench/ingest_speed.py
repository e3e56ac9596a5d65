"""Ingest speed with the embedding taken out: parse, chunk, near-duplicate check and index writes.

Ingests SciFact's 5,183 abstracts into a fresh index (as `perf_scifact.py` does) with a stand-in
embedder that returns a seeded unit vector per text at no cost, so what is timed is Tether's own work:
parse + chunk, MinHash/LSH near-duplicate check, SQLite writes (documents, chunks, FTS5, vectors,
LSH bands), and then the search structures a first search would build (the lexical index; the vector
matrix). Reports wall and CPU seconds per stage and documents per second.

    python bench/ingest_speed.py [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time

import numpy as np
import numpy.typing as npt

from _common import CACHE, SHARED, need
from tether import Tether
from tether.evals import BeirData
from tether.ingest import Ingestor
from tether.store import SQLiteStore


class FreeEmbedder:
    """A seeded unit vector per text: deterministic, and nearly free."""

    model_id = "bench-hash-vectors"
    dim = 384

    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        out = np.empty((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little")
            v = np.random.default_rng(seed).standard_normal(self.dim)
            out[i] = v / np.linalg.norm(v)
        return out


def one_round(t: Tether, records: list[tuple[str, str, str]]) -> dict[str, float]:
    folder = CACHE / "ingest-speed"
    shutil.rmtree(folder, ignore_errors=True)
    store = SQLiteStore.open(folder / "index.db", create=True)
    ing = Ingestor(store, FreeEmbedder(), t.settings.ingest)
    w0, c0 = time.perf_counter(), time.process_time()
    if hasattr(ing, "add_records"):
        ing.add_records(records)
    else:  # an older Tether
        for key, title, text in records:
            ing.add_record(key, title, text)
    ing.flush()
    w1, c1 = time.perf_counter(), time.process_time()
    if hasattr(store, "prepare_search"):
        store.prepare_search()
    else:  # an older Tether: the first search loads the vectors
        store.dense_search(np.ones(384, np.float32), 1)
    w2, c2 = time.perf_counter(), time.process_time()
    s = ing.summary
    out = {
        "documents": float(len(records)),
        "chunks": float(s.chunks),
        "ingest_wall_s": w1 - w0,
        "ingest_cpu_s": c1 - c0,
        "parse_chunk_s": s.parse_seconds,
        "dedupe_s": s.dedupe_seconds,
        "index_writes_s": s.index_seconds,
        "stand_in_embedder_s": s.embed_seconds,
        "search_structures_wall_s": w2 - w1,
        "search_structures_cpu_s": c2 - c1,
        "bytes_on_disk": float(store.stats().bytes_on_disk),
    }
    store.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="fresh ingests; the fastest counts")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    t = Tether.open(None)
    records = list(BeirData(root=need(SHARED / "scifact"), split="").corpus())
    rounds = [one_round(t, records) for _ in range(args.rounds)]
    best = min(rounds, key=lambda r: r["ingest_wall_s"] + r["search_structures_wall_s"])
    n = best["documents"]
    excl = best["ingest_wall_s"] - best["stand_in_embedder_s"]
    report = {
        "documents": int(n),
        "chunks": int(best["chunks"]),
        "rounds": args.rounds,
        "best_round": {k: round(v, 3) for k, v in best.items()},
        "docs_per_s_excluding_embedding": round(n / excl, 1),
        "docs_per_s_excluding_embedding_cpu": round(n / (best["ingest_cpu_s"] - best["stand_in_embedder_s"]), 1),
        "docs_per_s_including_search_structures": round(n / (excl + best["search_structures_wall_s"]), 1),
        "all_rounds_ingest_wall_s": [round(r["ingest_wall_s"], 2) for r in rounds],
    }
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return
    for k, v in report.items():
        print(f"{k:42s} {v}")


if __name__ == "__main__":
    main()
