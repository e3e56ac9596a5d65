"""Tether at a million chunks: build time, size on disk, peak memory, hybrid latency, HNSW recall.

The corpus is generated (nothing of this size is in ../shared/data):

- text: SciFact's own vocabulary with its word frequencies (a Zipfian background), mixed with topic
  words: ``--n / 500`` topics, each a Zipfian draw over 200 mid-frequency words; a document has one
  topic, a title, and 2-6 paragraphs of 12-20-word sentences; Tether's real ingest (parse, chunk,
  near-duplicate check, FTS5, vectors) cuts them into chunks until there are ``--n``;
- vectors: SYNTHETIC, not MiniLM's (embedding a million chunks would take a day on 2 cores). They are
  clustered like real embeddings: 64 super-topics, each topic a unit vector near its super-topic, each
  chunk a unit vector near its topic's (``normalize(topic + 0.9 g)``, g a seeded Gaussian of norm ~1:
  cosine ~0.55 between chunks of a topic, ~0.1-0.3 across). Queries are drawn near corpus vectors
  (``normalize(v + 0.6 g)`` for a random chunk's v) and their text is 5-9 words of that chunk.

Measured: build time per stage (ingest with a free embedder, the lexical index, the HNSW index), the
index size on disk (SQLite + WAL + HNSW + lexical files), peak RSS of the build and of the search run,
hybrid search p50/p95/p99 over ``--queries`` queries (the real MiniLM embeds the query text first, as a
search would, and the search then uses the synthetic query vector), lexical and dense alone, and the
HNSW index's recall@10 against exact search over the same vectors.

The built index is cached under .tether/bench/scale-N/ (git-ignored): a second run only searches.

    python bench/scale_1m.py [--n 1000000] [--queries 300] [--rebuild] [--json]
    python bench/scale_1m.py --n 100000          # a quick check (~3 minutes)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import numpy.typing as npt

from _common import CACHE, SHARED, need
from tether import Tether
from tether.evals import BeirData
from tether.ingest import Ingestor
from tether.retrieve import Retriever
from tether.store import SQLiteStore
from tether.text import STOPWORDS, words

DIM = 384
GENERATOR = 1  # bump when the generated corpus changes (the cache is keyed by it)


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class Corpus:
    """Topics over SciFact's vocabulary, and clustered unit vectors for them."""

    def __init__(self, n_chunks: int, seed: int = 7) -> None:
        counts: Counter[str] = Counter()
        for _, title, text in BeirData(root=need(SHARED / "scifact"), split="").corpus():
            counts.update(words(f"{title} {text}"))
        vocab = [w for w, c in counts.most_common() if c >= 2]
        freq = np.array([counts[w] for w in vocab], dtype=np.float64)
        self.vocab = np.array(vocab, dtype=object)
        self.background = freq / freq.sum()
        self.rng = np.random.default_rng(seed)
        self.n_topics = max(20, n_chunks // 500)
        mid = np.arange(300, len(vocab))  # topic words: not the most common ones
        p_mid = np.sqrt(freq[mid]) / np.sqrt(freq[mid]).sum()
        zipf = 1.0 / np.arange(1, 201)
        self.topic_words = [self.rng.choice(mid, 200, replace=False, p=p_mid) for _ in range(self.n_topics)]
        self.topic_cdf = np.cumsum(zipf / zipf.sum())
        self.background_cdf = np.cumsum(self.background)
        supers = _unit(self.rng.standard_normal((64, DIM)))
        parent = self.rng.integers(0, 64, self.n_topics)
        self.centers = _unit(supers[parent] + 0.7 * self.rng.standard_normal((self.n_topics, DIM)) / np.sqrt(DIM))
        self.title_topic: dict[str, int] = {}

    def _words(self, topic: int, n: int) -> list[str]:
        own = self.rng.random(n) < 0.35
        ids = np.where(
            own,
            self.topic_words[topic][np.searchsorted(self.topic_cdf, self.rng.random(n))],
            np.minimum(np.searchsorted(self.background_cdf, self.rng.random(n)), len(self.vocab) - 1),
        )
        return list(self.vocab[ids])

    def document(self, i: int) -> tuple[str, str, str]:
        """(key, title, text) of document ``i``."""
        topic = int(self.rng.integers(0, self.n_topics))
        n_title = int(self.rng.integers(5, 10))
        shape = [
            [int(x) for x in self.rng.integers(12, 21, int(self.rng.integers(4, 9)))]
            for _ in range(int(self.rng.integers(2, 7)))
        ]
        pool = iter(self._words(topic, n_title + sum(sum(p) for p in shape)))
        title = " ".join(next(pool) for _ in range(n_title)).capitalize() + f" (study {i})"
        self.title_topic[title] = topic
        paragraphs = [
            " ".join(" ".join(next(pool) for _ in range(k)).capitalize() + "." for k in sentence_lengths)
            for sentence_lengths in shape
        ]
        return f"doc-{i}", title, "\n\n".join(paragraphs)

    def vector(self, text: str) -> npt.NDArray[np.float32]:
        """What the embedder returns for a chunk: near its document's topic, seeded by its text."""
        head = text.split("\n", 1)[0]
        topic = self.title_topic.get(head, self.title_topic.get(head.split(" > ")[0], 0))
        seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
        g = np.random.default_rng(seed).standard_normal(DIM) / np.sqrt(DIM)
        v = self.centers[topic] + 0.9 * g
        return (v / np.linalg.norm(v)).astype(np.float32)


def _unit(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


class SyntheticEmbedder:
    """Stands in for MiniLM at ingest: free, deterministic, clustered (see the module docstring)."""

    model_id = "synthetic-clustered-384"
    dim = DIM

    def __init__(self, corpus: Corpus) -> None:
        self.corpus = corpus

    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        out = np.empty((len(texts), DIM), np.float32)
        for i, t in enumerate(texts):
            out[i] = self.corpus.vector(t)
        return out


def build(folder: Path, n: int, t: Tether) -> dict[str, object]:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    corpus = Corpus(n)
    store = SQLiteStore.open(folder / "index.db", create=True)
    ing = Ingestor(store, SyntheticEmbedder(corpus), t.settings.ingest, batch_size=512)
    t0 = time.perf_counter()
    docs = 0
    gen_s = 0.0
    last = t0
    while ing.summary.chunks + sum(len(p.chunks) for p in ing._pending) < n:
        g0 = time.perf_counter()
        key, title, text = corpus.document(docs)
        gen_s += time.perf_counter() - g0
        ing.add_record(key, title, text)
        docs += 1
        if time.perf_counter() - last > 30:
            last = time.perf_counter()
            print(f"  {ing.summary.chunks:,} chunks, {docs:,} documents, {last - t0:.0f} s", file=sys.stderr)
    ing.flush()
    ingest_s = time.perf_counter() - t0 - gen_s
    s = ing.summary
    t1 = time.perf_counter()
    store._lexical_index()
    lexical_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    store._ann_index()
    ann_s = time.perf_counter() - t2
    figures: dict[str, object] = {
        "generator": GENERATOR,
        "vectors": "synthetic, clustered (not MiniLM)",
        "documents": docs,
        "chunks": store.chunk_count(),
        "near_duplicates_removed": s.duplicates_removed,
        "build_seconds": {
            "ingest_parse_chunk_dedupe_fts5_vectors": round(ingest_s, 1),
            "of_which_parse_chunk": round(s.parse_seconds, 1),
            "of_which_dedupe": round(s.dedupe_seconds, 1),
            "of_which_index_writes": round(s.index_seconds, 1),
            "of_which_synthetic_embedder": round(s.embed_seconds, 1),
            "lexical_index": round(lexical_s, 1),
            "hnsw_index": round(ann_s, 1),
            "total_excluding_text_generation": round(ingest_s + lexical_s + ann_s, 1),
            "text_generation_not_counted": round(gen_s, 1),
        },
        "ingest_chunks_per_second": round(s.chunks / ingest_s, 1),
        "build_peak_rss_mb": peak_rss_mb(),
    }
    store.close()
    (folder / "build.json").write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return figures


def percentiles(ms: list[float]) -> dict[str, float]:
    return {f"p{q}": round(float(np.percentile(ms, q)), 2) for q in (50, 95, 99)}


def search(folder: Path, t: Tether, n_queries: int) -> dict[str, object]:
    store = SQLiteStore.open(folder / "index.db")
    t0 = time.perf_counter()
    store.prepare_search()  # maps the lexical index, loads the HNSW index
    open_s = time.perf_counter() - t0
    rng = np.random.default_rng(11)
    total = store.chunk_count()
    top = int(store._conn.execute("SELECT MAX(id) FROM chunks").fetchone()[0])
    picked: list[tuple[str, npt.NDArray[np.float32]]] = []
    while len(picked) < n_queries:
        row = store._conn.execute(
            "SELECT text, vector FROM chunks WHERE id >= ? ORDER BY id LIMIT 1", (int(rng.integers(1, top + 1)),)
        ).fetchone()
        content = [w for w in words(row[0]) if w not in STOPWORDS]
        if len(content) < 5:
            continue
        k = int(rng.integers(5, 10))
        text = " ".join(content[i] for i in sorted(rng.choice(len(content), min(k, len(content)), replace=False)))
        v = np.frombuffer(row[1], np.float32) + 0.6 * rng.standard_normal(DIM).astype(np.float32) / np.sqrt(DIM)
        picked.append((text, (v / np.linalg.norm(v)).astype(np.float32)))
    retriever = Retriever(store, t.embedder, t.settings.retrieval)
    t.embedder.embed(["warm up"])
    for q, v in picked[:10]:
        retriever.search(q, 10, query_vector=v)
    names = ("hybrid_with_query_embedding", "hybrid_vector_given", "lexical", "dense")
    lat: dict[str, list[float]] = {k: [] for k in names}
    for q, v in picked:
        q0 = time.perf_counter()
        retriever.embed_query(q)  # what a search pays for its query; the synthetic vector is used below
        retriever.search(q, 10, query_vector=v)
        q1 = time.perf_counter()
        retriever.search(q, 10, query_vector=v)
        q2 = time.perf_counter()
        retriever.search(q, 10, mode="lexical")
        q3 = time.perf_counter()
        retriever.search(q, 10, mode="dense", query_vector=v)
        q4 = time.perf_counter()
        for name, a, b in (
            ("hybrid_with_query_embedding", q0, q1),
            ("hybrid_vector_given", q1, q2),
            ("lexical", q2, q3),
            ("dense", q3, q4),
        ):
            lat[name].append((b - a) * 1000)
    # HNSW against exact search over the same vectors
    approx = [[x.chunk_id for x in store.dense_search(v, 10)] for _, v in picked]
    t1 = time.perf_counter()
    ids, mat = store._load_vectors()
    load_s = time.perf_counter() - t1
    recalls, exact_ms = [], []
    for (_, v), got in zip(picked, approx, strict=True):
        e0 = time.perf_counter()
        scores = np.einsum("ij,j->i", mat, v)
        best = ids[np.argpartition(-scores, 9)[:10]]
        exact_ms.append((time.perf_counter() - e0) * 1000)
        recalls.append(len(set(best.tolist()) & set(got)) / 10)
    sizes = {p.name: p.stat().st_size for p in folder.iterdir() if p.name.startswith("index.db") and p.is_file()}
    out: dict[str, object] = {
        "chunks": total,
        "queries": len(picked),
        "open_and_map_seconds": round(open_s, 2),
        "search_ms": {k: percentiles(v) for k, v in lat.items()},
        "hnsw_recall_at_10_vs_exact": round(float(np.mean(recalls)), 4),
        "exact_dense_ms_p50": round(float(np.median(exact_ms)), 1),
        "exact_vectors_load_seconds": round(load_s, 1),
        "index_bytes": sum(sizes.values()),
        "index_bytes_by_file": sizes,
        "search_peak_rss_mb_including_exact_matrix": peak_rss_mb(),
    }
    store.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="chunks")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    t = Tether.open(None)
    folder = CACHE / f"scale-{args.n}"
    cached = folder / "build.json"
    fresh = args.rebuild or not cached.exists() or json.loads(cached.read_text()).get("generator") != GENERATOR
    figures = build(folder, args.n, t) if fresh else json.loads(cached.read_text())
    report = {"built_now": fresh, "build": figures, "search": search(folder, t, args.queries)}
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
