"""Tether at a million chunks: build time, size on disk, peak memory, hybrid latency, HNSW recall.

The corpus is generated (nothing of this size is in ../shared/data):

- text: SciFact's own vocabulary with its word frequencies (a Zipfian background), mixed with topic
  words: ``--n / 500`` topics, each a Zipfian draw over 200 mid-frequency words; a document has one
  topic, a title, and 2-6 paragraphs of 12-20-word sentences; Tether's real ingest (parse, chunk,
  near-duplicate check, FTS5, vectors) cuts them into chunks until there are ``--n``;
- vectors: SYNTHETIC, not MiniLM's (embedding a million chunks would take a day on 2 cores), shaped
  like MiniLM's on SciFact. A chunk's vector is ``normalize(0.55 c0 + c_topic + B_topic a + 0.15 e)``: a
  shared direction c0 (real embeddings are anisotropic), its topic's centre (64 super-topics), a point
  of its topic's own 16-dimensional subspace (a ~ N(0, 0.35^2)) and a little isotropic noise e (norm ~1),
  all seeded by the chunk's text. Calibrated at SciFact's size (11.6k vectors) against the real MiniLM
  chunk vectors: local intrinsic dimensionality (MLE, 20 neighbours) 12.5 vs 10.6, nearest-neighbour
  cosine 0.80 vs 0.83, random-pair cosine 0.11 vs 0.11 (isotropic noise around topic centres instead
  gave a dimensionality of 50-80: far harder for any ANN index than real text embeddings). A query is a
  random chunk's vector moved within its topic's subspace and off it (``+ B a', a' ~ N(0, 0.28^2)``,
  ``+ 0.9 e``): around it, dimensionality 18.6 vs 18.9 for SciFact's test claims, cosine to the nearest
  chunk 0.645 vs 0.656, to the 10th 0.53 vs 0.50. Its text is 5-9 words of that chunk.

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
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
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
RANK = 16  # dimensions of a topic's subspace
SPREAD = 0.35  # spread of chunks within it
GENERATOR = 2  # bump when the generated corpus changes (the cache is keyed by it)


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited across fork and exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
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
        self.shared = _unit(self.rng.standard_normal((1, DIM)))[0]
        # each topic's own subspace: RANK orthonormal directions
        self.bases = np.linalg.qr(self.rng.standard_normal((self.n_topics, DIM, RANK)))[0].astype(np.float32)

    def _words(self, topic: int, n: int) -> list[str]:
        own = self.rng.random(n) < 0.35
        ids = np.where(
            own,
            self.topic_words[topic][np.searchsorted(self.topic_cdf, self.rng.random(n))],
            np.minimum(np.searchsorted(self.background_cdf, self.rng.random(n)), len(self.vocab) - 1),
        )
        return list(self.vocab[ids])

    def topic_of(self, i: int) -> int:
        return int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=8).digest(), "little") % self.n_topics

    def document(self, i: int) -> tuple[str, str, str]:
        """(key, title, text) of document ``i`` (its title ends in "(study i)")."""
        topic = self.topic_of(i)
        n_title = int(self.rng.integers(5, 10))
        shape = [
            [int(x) for x in self.rng.integers(12, 21, int(self.rng.integers(4, 9)))]
            for _ in range(int(self.rng.integers(2, 7)))
        ]
        pool = iter(self._words(topic, n_title + sum(sum(p) for p in shape)))
        title = " ".join(next(pool) for _ in range(n_title)).capitalize() + f" (study {i})"
        paragraphs = [
            " ".join(" ".join(next(pool) for _ in range(k)).capitalize() + "." for k in sentence_lengths)
            for sentence_lengths in shape
        ]
        return f"doc-{i}", title, "\n\n".join(paragraphs)

    def topic_of_title(self, title: str) -> int:
        return self.topic_of(int(title.rsplit("(study ", 1)[1].split(")", 1)[0]))

    def vector(self, text: str) -> npt.NDArray[np.float32]:
        """What the embedder returns for a chunk (title first line), seeded by its text."""
        topic = self.topic_of_title(text.split("\n", 1)[0])
        seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
        return self._point(topic, np.random.default_rng(seed))

    def _point(self, topic: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
        a = rng.standard_normal(RANK) * SPREAD
        e = rng.standard_normal(DIM) / np.sqrt(DIM)
        v = 0.55 * self.shared + self.centers[topic] + self.bases[topic] @ a + 0.15 * e
        return (v / np.linalg.norm(v)).astype(np.float32)

    def near_copy(self, v: npt.NDArray[np.float32], rng: np.random.Generator) -> npt.NDArray[np.float32]:
        """A query right next to corpus vector ``v`` (cosine ~0.96)."""
        q = v + 0.3 * rng.standard_normal(DIM) / np.sqrt(DIM)
        return (q / np.linalg.norm(q)).astype(np.float32)

    def new_chunk(self, title: str, rng: np.random.Generator) -> npt.NDArray[np.float32]:
        """A query drawn like one more chunk of the topic of the document titled ``title``."""
        return self._point(self.topic_of_title(title), rng)

    def query_vector(self, v: npt.NDArray[np.float32], title: str, rng: np.random.Generator) -> npt.NDArray[np.float32]:
        """A query near chunk vector ``v``: moved within its topic's subspace and off it."""
        topic = self.topic_of_title(title)
        within = self.bases[topic] @ (rng.standard_normal(RANK) * SPREAD * 0.8)
        q = v + within + 0.9 * rng.standard_normal(DIM) / np.sqrt(DIM)
        return (q / np.linalg.norm(q)).astype(np.float32)


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

    def records() -> Iterator[tuple[str, str, str]]:
        """Documents until the ingest has ``n`` chunks (the workers read a few hundred documents ahead, so
        the corpus ends up that much larger than ``n``)."""
        nonlocal docs, gen_s, last
        while ing.summary.chunks + sum(len(p.chunks) for p in ing._pending) < n:
            g0 = time.perf_counter()
            rec = corpus.document(docs)
            gen_s += time.perf_counter() - g0
            docs += 1
            if time.perf_counter() - last > 30:
                last = time.perf_counter()
                print(f"  {ing.summary.chunks:,} chunks, {docs:,} documents, {last - t0:.0f} s", file=sys.stderr)
            yield rec

    ing.add_records(records())
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


def search(folder: Path, t: Tether, n_queries: int, n_chunks: int) -> dict[str, object]:
    store = SQLiteStore.open(folder / "index.db")
    t0 = time.perf_counter()
    store.prepare_search()  # maps the lexical index, loads the HNSW index
    open_s = time.perf_counter() - t0
    corpus = Corpus(n_chunks)
    rng = np.random.default_rng(11)
    total = store.chunk_count()
    top = int(store._conn.execute("SELECT MAX(id) FROM chunks").fetchone()[0])
    picked: list[tuple[str, npt.NDArray[np.float32]]] = []
    picked_rows: list[tuple[npt.NDArray[np.float32], str]] = []
    while len(picked) < n_queries:
        row = store._conn.execute(
            "SELECT text, vector, title FROM chunks WHERE id >= ? ORDER BY id LIMIT 1", (int(rng.integers(1, top + 1)),)
        ).fetchone()
        content = [w for w in words(row[0]) if w not in STOPWORDS]
        if len(content) < 5:
            continue
        k = int(rng.integers(5, 10))
        text = " ".join(content[i] for i in sorted(rng.choice(len(content), min(k, len(content)), replace=False)))
        source = np.frombuffer(row[1], np.float32)
        picked.append((text, corpus.query_vector(source, row[2], rng)))
        picked_rows.append((source, row[2]))
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
    search_rss = peak_rss_mb()
    # HNSW against exact search over the same vectors, for three kinds of query vector
    srcs = [picked_rows[i] for i in range(len(picked))]
    query_sets = {
        "near_copy": [corpus.near_copy(v, rng) for v, _ in srcs],
        "new_chunk_of_the_topic": [corpus.new_chunk(title, rng) for _, title in srcs],
        "claim_like": [v for _, v in picked],
    }
    t1 = time.perf_counter()
    ids, mat = store._load_vectors()
    load_s = time.perf_counter() - t1
    exact_ms: list[float] = []
    truth: dict[str, list[set[int]]] = {}
    for name, qs in query_sets.items():
        truth[name] = []
        for v in qs:
            e0 = time.perf_counter()
            scores = np.einsum("ij,j->i", mat, v)
            truth[name].append(set(ids[np.argpartition(-scores, 9)[:10]].tolist()))
            exact_ms.append((time.perf_counter() - e0) * 1000)
    ann = store._ann_index()
    default_ef = ann.expansion_search
    recall: dict[str, dict[str, float]] = {}
    for ef in sorted({512, 1024, 2048, 4096, 8192, default_ef}):
        ann._index.expansion_search = ef
        row: dict[str, float] = {}
        for name, qs in query_sets.items():
            got, ms = [], []
            for v, best in zip(qs, truth[name], strict=True):
                e0 = time.perf_counter()
                found = {x.chunk_id for x in ann.search(v, 10)}
                ms.append((time.perf_counter() - e0) * 1000)
                got.append(len(best & found) / 10)
            row[name] = round(float(np.mean(got)), 4)
            row[f"{name}_p50_ms"] = round(float(np.median(ms)), 2)
        recall[f"ef_{ef}" + (" (default)" if ef == default_ef else "")] = row
    ann._index.expansion_search = default_ef
    sizes = {p.name: p.stat().st_size for p in folder.iterdir() if p.name.startswith("index.db") and p.is_file()}
    out: dict[str, object] = {
        "chunks": total,
        "queries": len(picked),
        "open_and_map_seconds": round(open_s, 2),
        "search_ms": {k: percentiles(v) for k, v in lat.items()},
        "hnsw_recall_at_10_vs_exact": recall,
        "exact_dense_ms_p50": round(float(np.median(exact_ms)), 1),
        "exact_vectors_load_seconds": round(load_s, 1),
        "index_bytes": sum(sizes.values()),
        "index_bytes_by_file": sizes,
        "search_peak_rss_mb": search_rss,
        "peak_rss_mb_with_exact_matrix_for_recall": peak_rss_mb(),
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
    if fresh:
        build(folder, args.n, t)
        # the search runs in a process of its own, so that its peak memory is its own
        cmd = [sys.executable, __file__, "--n", str(args.n), "--queries", str(args.queries), "--json"]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        sys.stdout.write(out.replace('"built_now": false', '"built_now": true', 1))
        return
    figures = json.loads(cached.read_text())
    report = {"built_now": fresh, "build": figures, "search": search(folder, t, args.queries, args.n)}
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
