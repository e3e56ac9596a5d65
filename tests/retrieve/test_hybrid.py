"""Retriever.search: chunk rows fetched a few at a time (and, in lexical mode, only the window scored) give what
the whole window of every candidate gives."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from tether.config import RetrievalSettings
from tether.contracts import Hit
from tether.ingest._dedupe import band_keys, signature
from tether.retrieve import Mode, Retriever
from tether.retrieve._hybrid import _jaccard
from tether.store import NewChunk, NewDocument, SQLiteStore
from tether.text import words

DIM = 16


class _NoEmbedder:
    model_id = "none"
    dim = DIM

    def embed(self, texts: list[str]) -> np.ndarray:
        raise AssertionError("the tests give the query vector")


def reference_search(r: Retriever, query: str, k: int, vec: np.ndarray, mode: Mode) -> list[Hit]:
    """The plain definition: rank every candidate, fetch the whole window, walk it, drop near-copies of kept hits."""
    fused, info = r.rank(query, query_vector=vec, mode=mode)
    window = fused[: max(k * 4, k + 10)]
    rows = r.store.hits([x.chunk_id for x in window])
    out: list[Hit] = []
    kept: list[set[str]] = []
    for x in window:
        hit = rows[x.chunk_id]
        ws = set(words(hit.text))
        if any(_jaccard(ws, o) >= r.settings.collapse_threshold for o in kept):
            continue
        kept.append(ws)
        lr, dr, ls, ds = info[x.chunk_id]
        out.append(
            hit.model_copy(
                update={"score": x.score, "lexical_rank": lr, "dense_rank": dr, "lexical_score": ls, "dense_score": ds}
            )
        )
        if len(out) >= k:
            break
    return out


def test_search_equals_the_whole_window_definition(tmp_path: Path) -> None:
    rng = random.Random(2)
    np_rng = np.random.default_rng(2)
    vocab = [f"w{i}" for i in range(12)]
    store = SQLiteStore.open(tmp_path / "i.db", create=True)
    store.check_embedding("m", DIM)
    base = [" ".join(rng.choice(vocab) for _ in range(12)) for _ in range(8)]
    for d in range(60):
        # many near-copies, so that collapsing drops a lot of the window
        texts = [rng.choice(base) + (" " + rng.choice(vocab) if rng.random() < 0.5 else "") for _ in range(3)]
        chunks = []
        for i, t in enumerate(texts):
            v = np_rng.standard_normal(DIM).astype(np.float32)
            sig = signature(t + str(d), 64)
            chunks.append(
                NewChunk(i, 0, len(t), t, [], ["paragraph"], v / np.linalg.norm(v), sig, band_keys(sig, 8, 8))
            )
        store.put_document(
            NewDocument(f"/d{d}.md", f"doc {d}", datetime(2024, 1, 1, tzinfo=UTC), str(d), 1, "x", chunks)
        )
    r = Retriever(store, _NoEmbedder(), RetrievalSettings())
    for _ in range(40):
        q = " ".join(rng.sample(vocab, 3))
        v = np_rng.standard_normal(DIM).astype(np.float32)
        v /= np.linalg.norm(v)
        for k in (1, 3, 5, 10):
            # lexical mode asks the store for the window only: the same hits as asking for every candidate
            for mode in ("hybrid", "lexical", "dense"):
                assert r.search(q, k, query_vector=v, mode=mode) == reference_search(r, q, k, v, mode)
