"""Stand-ins shared by tests in several folders (importable: tests/ is on sys.path through its conftest.py)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt


class HashEmbedder:
    """A seeded unit vector per text: for tests about ingest and storage, not about the model."""

    model_id = "test-hash"
    dim = 16

    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        out = np.empty((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            v = np.random.default_rng(abs(hash(t)) % 2**32).standard_normal(self.dim)
            out[i] = v / np.linalg.norm(v)
        return out


@contextmanager
def another_process_creating(path: Path, seconds: float = 0.5) -> Iterator[None]:
    """An empty SQLite file at ``path`` whose write lock another connection holds for ``seconds``, as a process
    creating the same store at that moment does (the lock is released from a timer thread)."""
    sqlite3.connect(path).close()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    timer = threading.Timer(seconds, lambda: other.execute("COMMIT"))
    timer.start()
    try:
        yield
    finally:
        timer.join()
        other.close()
