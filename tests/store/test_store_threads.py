"""One store used from many threads at once: a writer's batches and readers' searches never mix.

A Tether (and the coming HTTP service) searches from a pool of threads while an ingest may be writing through
the same store. A reader must see committed documents only, and a reader's snapshot must never swallow or
commit part of a writer's batch.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from tether.store import SQLiteStore

sys.path.insert(0, str(Path(__file__).parent))
from test_sqlite_store import DIM, MODEL, make_doc  # noqa: E402


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore.open(tmp_path / "index.db", create=True)
    s.check_embedding(MODEL, DIM)
    return s


def test_readers_and_a_writer_on_one_store_from_many_threads(store: SQLiteStore) -> None:
    rounds, docs_per_batch, chunks_per_doc = 12, 6, 4
    errors: list[BaseException] = []
    done = threading.Event()
    seen_partial: list[tuple[str, int]] = []

    def write() -> None:
        try:
            for r in range(rounds):
                with store.batch():
                    for d in range(docs_per_batch):
                        texts = [f"batch{r} doc{d} part{i} shared words alpha" for i in range(chunks_per_doc)]
                        store.put_document(make_doc(f"/r{r}/d{d}.md", texts, axes=[r, d, r + d, 1]))
        except BaseException as e:
            errors.append(e)
        finally:
            done.set()

    def read(k: int) -> None:
        try:
            q = np.zeros(DIM, dtype=np.float32)
            q[k % DIM] = 1.0
            while not done.is_set():
                lex = store.lexical_search(["alpha"], 1000)
                dense = store.dense_search(q, 1000)
                rows = store.chunk_rows([h.chunk_id for h in lex[:50]])
                # whole documents only: every document a reader sees has all its chunks
                if any(not row.text.endswith("alpha") for row in rows.values()):
                    seen_partial.append(("rows", len(rows)))
                counts = store.chunk_count()
                if counts % chunks_per_doc:
                    seen_partial.append(("count", counts))
                if len(dense) % chunks_per_doc:
                    seen_partial.append(("dense", len(dense)))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=read, args=(k,)) for k in range(4)]
    writer = threading.Thread(target=write)
    for t in threads:
        t.start()
    writer.start()
    writer.join(timeout=120)
    for t in threads:
        t.join(timeout=60)
    assert errors == [], errors[:3]
    assert seen_partial == [], seen_partial[:5]
    assert store.chunk_count() == rounds * docs_per_batch * chunks_per_doc
    assert store.integrity_problems() == []
    assert not store._conn.in_transaction
