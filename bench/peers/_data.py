"""What every system gets: the SciFact corpus, the splits, and vectors from Tether's embedder, computed once.

Vectors are cached under .tether/bench/peers/ (git-ignored):

* ``docs.npy``: one vector per document, of ``title + "\\n" + text`` (what the peers index).
* ``queries.npy``: one vector per query (train and test), each embedded alone, as at query time.
* ``tether_chunks.npy``: Tether's own chunk vectors, so Tether's ingest can be re-run without re-embedding.

Each cache records how long its embedding took when it was made (that figure is reported, not re-measured).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tether import Tether
from tether.evals import BeirData, load_beir, ndcg_at_k, recall_at_k
from tether.evals._beir_run import corpus_digest
from tether.models import OnnxEmbedder

Vectors = npt.NDArray[np.float32]

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".tether" / "bench" / "peers"


@dataclass
class Split:
    name: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def limited(self, n: int) -> Split:
        if n <= 0 or n >= len(self.queries):
            return self
        keep = sorted(self.queries)[:n]
        return Split(self.name, {q: self.queries[q] for q in keep}, {q: self.qrels[q] for q in keep})


@dataclass
class Corpus:
    ids: list[str]
    titles: list[str]
    texts: list[str]
    vectors: Vectors  # [n_docs, dim], unit length, row i is document ids[i]
    embed_seconds: float  # time Tether's embedder took for all documents when the cache was made

    def doc_text(self, i: int) -> str:
        """The text every peer indexes (BM25 and embedding alike): the title, a newline, the abstract."""
        return f"{self.titles[i]}\n{self.texts[i]}" if self.titles[i] else self.texts[i]


@dataclass
class Data:
    root: Path
    corpus: Corpus
    train: Split
    test: Split
    query_vectors: dict[str, Vectors] = field(default_factory=dict)  # query text -> vector


def new_embedder(threads: int) -> OnnxEmbedder:
    """Tether's default embedder (all-MiniLM-L6-v2 int8 ONNX) with a fixed number of onnxruntime threads."""
    emb = Tether.open(None).embedder
    emb.threads = threads  # loading is lazy: this takes effect at the first embed call
    return emb


def _corpus_key(root: Path, extra: str) -> str:
    blob = json.dumps([corpus_digest(root / "corpus.jsonl"), extra])  # content, not mtime: data is unpacked anew
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _load_npy(name: str, key: str) -> tuple[Vectors, dict[str, object]] | None:
    meta_path, vec_path = CACHE / f"{name}.json", CACHE / f"{name}.npy"
    if not (meta_path.is_file() and vec_path.is_file()):
        return None
    meta = json.loads(meta_path.read_text())
    if meta.get("key") != key:
        return None
    return np.load(vec_path), meta


def _save_npy(name: str, vectors: Vectors, meta: dict[str, object]) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(CACHE / f"{name}.npy", vectors.astype(np.float32))
    (CACHE / f"{name}.json").write_text(json.dumps(meta))


def load_data(root: Path, *, log: bool = True) -> Data:
    """The corpus, both splits, and their vectors (computed and cached the first time)."""
    ids, titles, texts = [], [], []
    for doc_id, title, text in BeirData(root=root, split="").corpus():
        ids.append(doc_id)
        titles.append(title)
        texts.append(text)
    train, test = load_beir(root, "train"), load_beir(root, "test")
    t = Tether.open(None)
    model = f"{t.settings.embedding.model}:{t.settings.embedding.max_length}"
    key = _corpus_key(root, model)
    cached = _load_npy("docs", key)
    if cached is None:
        if log:
            print(f"embedding {len(ids)} documents once with Tether's embedder (cached in {CACHE}) ...", flush=True)
        emb = new_embedder(0)
        docs = [f"{ti}\n{tx}" if ti else tx for ti, tx in zip(titles, texts, strict=True)]
        t0 = time.perf_counter()
        vecs = emb.embed(docs)
        secs = time.perf_counter() - t0
        _save_npy("docs", vecs, {"key": key, "ids": ids, "embed_seconds": secs, "threads": os.cpu_count()})
        cached = (vecs, {"embed_seconds": secs})
    corpus = Corpus(ids, titles, texts, cached[0], float(cached[1]["embed_seconds"]))  # type: ignore[arg-type]

    qtexts = sorted(set(train.queries.values()) | set(test.queries.values()))
    qkey = hashlib.sha256(json.dumps([model, qtexts]).encode()).hexdigest()[:12]
    qcached = _load_npy("queries", qkey)
    if qcached is None:
        if log:
            print(f"embedding {len(qtexts)} queries once, one at a time ...", flush=True)
        emb = new_embedder(1)
        qvecs = np.stack([emb.embed([q])[0] for q in qtexts])
        _save_npy("queries", qvecs, {"key": qkey, "texts": qtexts})
        qcached = (qvecs, {"texts": qtexts})
    qv = {q: qcached[0][i] for i, q in enumerate(qcached[1]["texts"])}  # type: ignore[arg-type]
    return Data(
        root=root,
        corpus=corpus,
        train=Split("train", train.queries, train.qrels),
        test=Split("test", test.queries, test.qrels),
        query_vectors=qv,
    )


class QueryEncoder:
    """The one query embedder every system calls: Tether's, on one onnxruntime thread.

    ``live`` False (tuning): vectors come from the cache. ``live`` True (measured runs): every query is
    embedded at query time and the time it took is summed in ``seconds``, so latency can be reported
    with and without query embedding.
    """

    def __init__(self, cached: dict[str, Vectors]) -> None:
        self.cached = cached
        self.embedder = new_embedder(1)
        self.live = False
        self.seconds = 0.0
        self.model_id = self.embedder.model_id
        self.dim = 384

    def reload(self) -> None:
        """A fresh onnxruntime session (after fork, a child process must not share the parent's)."""
        self.embedder = new_embedder(1)
        self.embedder.embed(["warm up"])

    def __call__(self, text: str) -> Vectors:
        if not self.live:
            v = self.cached.get(text)
            if v is not None:
                return v
        t0 = time.perf_counter()
        out: Vectors = self.embedder.embed([text])[0]
        self.seconds += time.perf_counter() - t0
        return out

    def embed(self, texts: list[str]) -> Vectors:
        """The Embedder protocol (for Tether's Retriever)."""
        return np.stack([self(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)


def scores(rankings: dict[str, list[str]], split: Split) -> dict[str, float]:
    """nDCG@10 and recall@100 with Tether's metric code, averaged over the split's queries."""
    nd = [ndcg_at_k(rankings.get(q, []), split.qrels[q], 10) for q in split.queries]
    rc = [recall_at_k(rankings.get(q, []), split.qrels[q], 100) for q in split.queries]
    return {"ndcg@10": float(np.mean(nd)), "recall@100": float(np.mean(rc))}


def chunk_cache_key(t: Tether, root: Path) -> str:
    """Chunk vectors are looked up by the text embedded, so only the model decides whether they still hold
    (a change in chunking makes cache misses, which are embedded for real and counted)."""
    e = t.settings.embedding
    return _corpus_key(root, f"{e.model}:{e.tokenizer}:{e.max_length}")


def load_chunk_cache(key: str) -> tuple[dict[str, int], Vectors, dict[str, object]] | None:
    got = _load_npy("tether_chunks", key)
    if got is None:
        return None
    vecs, meta = got
    return {h: i for i, h in enumerate(meta["hashes"])}, vecs, meta  # type: ignore[attr-defined]


def save_chunk_cache(key: str, hashes: list[str], vectors: Vectors, meta: dict[str, object]) -> None:
    _save_npy("tether_chunks", vectors, {"key": key, "hashes": hashes, **meta})


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()
