"""Retriever.search: chunk rows fetched a few at a time (and, in lexical mode, only the window scored) give what
the whole window of every candidate gives; near-copies are collapsed by their stored MinHash signatures."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from tether.config import IngestSettings, RetrievalSettings
from tether.contracts import Hit
from tether.ingest import Ingestor
from tether.ingest._dedupe import band_keys, estimated_jaccard, signature
from tether.retrieve import Mode, Retriever
from tether.retrieve._hybrid import _Collapser
from tether.store import NewChunk, NewDocument, SQLiteStore

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
    ids = [x.chunk_id for x in window]
    rows = r.store.hits(ids)
    sigs = {i: np.frombuffer(row.minhash, dtype=np.uint64) for i, row in r.store.chunk_rows(ids).items()}
    out: list[Hit] = []
    kept: list[np.ndarray] = []
    for x in window:
        hit = rows[x.chunk_id]
        sig = sigs[x.chunk_id]
        if any(estimated_jaccard(sig, o) >= r.settings.collapse_threshold for o in kept):
            continue
        kept.append(sig)
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
    # collapsing did drop hits here: the equality above is not between two lists that never collapse
    assert any(
        len(r.search(q, 10, query_vector=v, mode="lexical")) < len(r.search(q, 10, mode="lexical", collapse=False))
        or r.search(q, 10, mode="lexical") != r.search(q, 10, mode="lexical", collapse=False)
        for q in (" ".join(rng.sample(vocab, 3)) for _ in range(20))
    )


class _HashEmbedder:
    model_id = "test-hash"
    dim = DIM

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), DIM), np.float32)
        for i, t in enumerate(texts):
            v = np.random.default_rng(sum(map(ord, t))).standard_normal(DIM)
            out[i] = v / np.linalg.norm(v)
        return out


POLICY = (
    "Travel booked through the portal is reimbursed within thirty days of the trip. Hotel stays are capped at "
    "two hundred euros a night in capital cities and one hundred and fifty elsewhere. Receipts must be uploaded "
    "before the claim is approved by the line manager, and claims older than ninety days are refused. Meals "
    "are covered up to forty euros a day when the trip lasts more than one night."
)


def test_an_edited_copy_is_collapsed_into_the_better_hit_and_a_different_text_is_not(tmp_path: Path) -> None:
    # v2 changes a few words: below the ingest's near-duplicate threshold (0.9), so both are stored,
    # but it shares most of its word 3-shingles with v1, so a search shows only one of them
    v2 = POLICY.replace("thirty days", "twenty days").replace("forty euros", "forty-five euros")
    other = (
        "Hotel stays for conferences are booked by the events team, who also pay the trip in advance; the "
        "euros a night cap does not apply to them, and receipts are kept by the team."
    )
    store = SQLiteStore.open(tmp_path / "i.db", create=True)
    ing = Ingestor(store, _HashEmbedder(), IngestSettings())
    ing.add_records([("v1", "Travel policy", POLICY), ("v2", "Travel policy v2", v2), ("conf", "Events", other)])
    ing.flush()
    assert len(store.chunk_paths()) == 3  # nothing was dropped at ingest
    r = Retriever(store, _HashEmbedder(), RetrievalSettings())
    q = "hotel euros a night receipts trip"
    every = r.search(q, 5, mode="lexical", collapse=False)
    assert len(every) == 3
    hits = r.search(q, 5, mode="lexical")
    assert len(hits) == 2
    best_copy = next(h for h in every if h.title.startswith("Travel policy"))
    assert hits == [h for h in every if h.title == "Events" or h == best_copy]  # the better copy is kept


def test_collapser_in_batches_equals_one_by_one_and_never_matches_other_lengths() -> None:
    rng = np.random.default_rng(5)
    base = rng.integers(0, 2**63, size=(6, 64), dtype=np.uint64)
    sigs = []
    for _ in range(40):
        s = base[rng.integers(0, 6)].copy()
        flip = rng.random(64) < rng.choice([0.1, 0.4, 0.7])  # near, borderline and far copies
        s[flip] = rng.integers(0, 2**63, size=int(flip.sum()), dtype=np.uint64)
        sigs.append(s)
    th = 0.5
    want: list[bool] = []
    kept: list[np.ndarray] = []
    for s in sigs:
        copy = any(estimated_jaccard(s, o) >= th for o in kept)
        want.append(not copy)
        if not copy:
            kept.append(s)
    assert 3 < sum(want) < 40
    for step in (1, 7, 11, 40):
        c = _Collapser(th)
        got = [keep for b in range(0, 40, step) for keep in c.keep([s.tobytes() for s in sigs[b : b + step]])]
        assert got == want
    # a signature of another length (another num_perm) is never a copy, in a batch of its own or a mixed one
    c = _Collapser(th)
    assert c.keep([sigs[0].tobytes()]) == [True]
    assert c.keep([sigs[0][:32].tobytes(), sigs[0].tobytes()]) == [True, False]
    assert c.keep([sigs[0][:32].tobytes()]) == [False]  # ...but it matches a kept one of its own length
