"""Tether itself: its own ingest (parse, chunk, dedupe, embed, index) and its Retriever, at its default settings."""

from __future__ import annotations

import atexit
import itertools
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from peers._base import Config, System
from peers._data import (
    CACHE,
    Data,
    QueryEncoder,
    Vectors,
    chunk_cache_key,
    load_chunk_cache,
    save_chunk_cache,
    text_hash,
)
from tether import Tether
from tether.evals import BeirData
from tether.ingest import Ingestor
from tether.models import Embedder
from tether.retrieve import Retriever
from tether.store import SQLiteStore


def _unique(paths: Iterable[str | None]) -> list[str]:
    """Documents in the order of their best chunk."""
    seen: set[str] = set()
    out = []
    for d in paths:
        if d is not None and d not in seen:
            seen.add(d)
            out.append(d)
    return out


class _Recording:
    """Tether's embedder, keeping every chunk vector it makes (to fill the cache)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.hashes: list[str] = []
        self.parts: list[Vectors] = []

    def embed(self, texts: list[str]) -> Vectors:
        v = self.inner.embed(texts)
        self.hashes.extend(text_hash(t) for t in texts)
        self.parts.append(v)
        return v


class _Cached:
    """Chunk vectors from the cache (the embedding step is then a lookup); misses are embedded for real."""

    def __init__(self, index: dict[str, int], vectors: Vectors, fallback: Embedder) -> None:
        self.index, self.vectors, self.fallback = index, vectors, fallback
        self.model_id = fallback.model_id
        self.dim = int(vectors.shape[1])
        self.misses = 0

    def embed(self, texts: list[str]) -> Vectors:
        rows = [self.index.get(text_hash(t)) for t in texts]
        out = np.zeros((len(texts), self.dim), np.float32)
        missing = [i for i, r in enumerate(rows) if r is None]
        for i, r in enumerate(rows):
            if r is not None:
                out[i] = self.vectors[r]
        if missing:
            self.misses += len(missing)
            out[missing] = self.fallback.embed([texts[i] for i in missing])
        return out


def _ingest(t: Tether, data_root: Path, store: SQLiteStore, embedder: Embedder, limit: int = 0) -> Ingestor:
    ing = Ingestor(store, embedder, t.settings.ingest)
    ing.add_records(itertools.islice(BeirData(root=data_root, split="").corpus(), limit or None))
    ing.flush()
    return ing


def ensure_chunk_cache(data_root: Path, *, log: bool = True) -> dict[str, object]:
    """Run Tether's ingest once for real (embedding included) and keep its chunk vectors and timings."""
    t = Tether.open(None)
    key = chunk_cache_key(t, data_root)
    got = load_chunk_cache(key)
    if got is not None:
        return got[2]
    if log:
        print("running Tether's ingest once with real embedding (its chunk vectors are then cached) ...", flush=True)
    rec = _Recording(t.embedder)
    folder = Path(tempfile.mkdtemp(prefix="tether-prep-", dir=CACHE))
    try:
        store = SQLiteStore.open(folder / "index.db", create=True)
        t0 = time.perf_counter()
        ing = _ingest(t, data_root, store, rec)
        wall = time.perf_counter() - t0
        store.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    s = ing.summary
    meta: dict[str, object] = {
        "embed_seconds": s.embed_seconds,
        "ingest_seconds": wall,
        "chunks": s.chunks,
        "embed_threads": t.settings.embedding.threads,
        "embed_batch_size": t.settings.embedding.batch_size,
    }
    save_chunk_cache(key, rec.hashes, np.concatenate(rec.parts), meta)
    return meta


RERANK_POOL = 100  # chunks retrieved per query when the reranker reorders the head (as bench/train_reranker.py)


def has_reranker() -> bool:
    """Whether this Tether has a reranker and it is on by default (rerank.enabled)."""
    try:
        return bool(Tether.open(None).settings.rerank.enabled)  # type: ignore[attr-defined]
    except AttributeError:
        return False


class TetherSystem(System):
    """``mode``: lexical, dense, hybrid (fusion only, as `tether eval retrieval`) or hybrid+rerank (the default
    search path when the reranker is on: the fused list's head reordered by the learned reranker)."""

    package = "tether"

    def __init__(self, encoder: QueryEncoder, mode: str) -> None:
        super().__init__(encoder)
        self.mode = mode
        self.kind = "hybrid" if mode == "hybrid+rerank" else mode
        self.name = f"tether {mode}"
        self.t = Tether.open(None)
        self.folder = Path(tempfile.mkdtemp(prefix="tether-bench-"))
        atexit.register(shutil.rmtree, self.folder, True)
        self.store: SQLiteStore | None = None
        self.figures: dict[str, float] = {}

    def defaults(self) -> Config:
        r = self.t.settings.retrieval
        if self.mode == "lexical":
            return {"lexical_top_n": r.lexical_top_n, "title_weight": r.title_weight}
        if self.mode == "dense":
            return {"dense_top_n": r.dense_top_n, "search": "exact below 50k chunks"}
        c: Config = {
            "fusion": r.fusion,
            "alpha": r.alpha,
            "lexical_top_n": r.lexical_top_n,
            "dense_top_n": r.dense_top_n,
        }
        if self.mode == "hybrid+rerank":
            rr = self.t.settings.rerank  # type: ignore[attr-defined]
            c.update(rerank=rr.model, rerank_depth=rr.depth, pool=RERANK_POOL)
        return c

    def build(self, data: Data, config: Config) -> None:
        got = load_chunk_cache(chunk_cache_key(self.t, data.root))
        if got is None:
            raise RuntimeError("Tether's chunk-vector cache is missing (bench/peers.py makes it first)")
        index, vectors, meta = got
        cached = _Cached(index, vectors, self.encoder.embedder)
        if self.store is not None:
            self.store.close()
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.store = SQLiteStore.open(self.folder / "index.db", create=True)
        t0 = time.perf_counter()
        ing = _ingest(self.t, data.root, self.store, cached)
        t1 = time.perf_counter()
        self.store.prepare_search()  # the lexical index and the vector matrix a first search would build
        wall = time.perf_counter() - t0
        s = ing.summary
        self.figures = {
            "parse_chunk_s": s.parse_seconds,
            "dedupe_s": s.dedupe_seconds,
            "index_write_s": s.index_seconds,
            "search_structures_s": wall - (t1 - t0),
            "cache_lookup_s": s.embed_seconds,
            "ingest_excl_embedding_s": wall - s.embed_seconds,
            "embed_s_when_cached": float(meta["embed_seconds"]),  # type: ignore[arg-type]
            "chunks": s.chunks,
            "near_duplicates_removed": s.duplicates_removed,
            "cache_misses": cached.misses,
        }
        self.paths = self.store.chunk_paths()
        self._open()

    def after_fork(self) -> None:
        """A SQLite connection must not cross a fork: each worker opens its own (and leaves the parent's be)."""
        self._inherited = self.store
        self.store = None
        self._open()

    def _open(self) -> None:
        if self.store is not None:
            self.store.close()
        self.store = SQLiteStore.open(self.folder / "index.db")
        self.retriever = Retriever(self.store, self.encoder, self.t.settings.retrieval)
        self.store.dense_search(np.ones(self.encoder.dim, np.float32), 1)  # loads the vector matrix
        if self.mode == "hybrid+rerank":
            from tether.judge import StoreIdf
            from tether.rerank import rerank_depth, reranker_from_settings

            settings = self.t.settings.rerank  # type: ignore[attr-defined]
            self.reranker = reranker_from_settings(settings, self.t.settings.root, StoreIdf(self.store))
            self.depth = rerank_depth(settings, self.reranker)
            self.figures["rerank_depth"] = self.depth

    def search(self, query: str) -> list[str]:
        if self.mode == "hybrid+rerank":
            hits = self.retriever.search(query, RERANK_POOL, mode="hybrid", collapse=False)
            hits = self.reranker.rerank(query, hits[: self.depth]) + hits[self.depth :]
            return _unique(h.path for h in hits)
        fused, _ = self.retriever.rank(query, mode=self.mode)  # type: ignore[arg-type]
        return _unique(self.paths.get(x.chunk_id) for x in fused)

    def index_bytes(self, folder: Path) -> int | None:
        """Tether's index is already on disk: its SQLite file, measured closed (the WAL folded in)."""
        assert self.store is not None
        self.store.close()
        size = sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())
        self.store = None
        self._open()
        return size

    def note(self) -> str:
        return "chunks (200-token budget, 32 overlap); a document scores as its best chunk"
