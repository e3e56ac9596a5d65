"""The approximate index stays in line with SQLite and finds what exact search finds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from tether.ingest._dedupe import band_keys, signature
from tether.store import NewChunk, NewDocument, SQLiteStore


def _doc(path: str, vecs: np.ndarray) -> NewDocument:
    chunks = []
    for i, v in enumerate(vecs):
        sig = signature(f"{path} chunk {i}", 64)
        chunks.append(
            NewChunk(
                ord=i,
                start=0,
                end=1,
                text=f"{path} chunk {i}",
                section=[],
                kinds=["paragraph"],
                vector=v.astype(np.float32),
                signature=sig,
                band_keys=band_keys(sig, 8, 8),
            )
        )
    return NewDocument(
        path=path, title=path, mtime=datetime.now(UTC), content_hash=path, size=1, text="x", chunks=chunks
    )


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, 384)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_ann_search_agrees_with_exact_and_follows_deletes(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    store = SQLiteStore.open(tmp_path / "i.db", create=True, ann_threshold=10**9)
    store.check_embedding("test", 384)
    for d in range(20):
        store.put_document(_doc(f"d{d}", _unit(rng, 50)))
    queries = _unit(rng, 20)
    exact = [[x.chunk_id for x in store.dense_search(q, 10)] for q in queries]
    store.ann_threshold = 1  # from now on, search goes through the HNSW index
    approx = [[x.chunk_id for x in store.dense_search(q, 10)] for q in queries]
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.95
    assert (tmp_path / "i.db.usearch").exists()

    store.delete_document("d0")
    remaining = set(store.chunk_paths())
    for q in queries:
        assert {x.chunk_id for x in store.dense_search(q, 50)} <= remaining
    store.close()

    # a new process re-opens the saved index and syncs the delete it may have missed
    again = SQLiteStore.open(tmp_path / "i.db", ann_threshold=1)
    assert {x.chunk_id for x in again.dense_search(queries[1], 50)} <= remaining
    again.close()


def test_opening_the_hnsw_index_before_the_embedder_does_not_crash(tmp_path: Path) -> None:
    """usearch loaded before onnxruntime used to kill the process at onnxruntime's import."""
    import subprocess
    import sys

    code = (
        "from pathlib import Path; from tether.store._ann import AnnIndex;"
        f"AnnIndex(Path({str(tmp_path / 'x.usearch')!r}), 8);"
        "import onnxruntime; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-500:]
