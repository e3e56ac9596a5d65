"""An approximate (HNSW, usearch) index over chunk vectors: a cache derived from SQLite, never the truth.

It lives beside the SQLite file (``index.db.usearch``). Before a search it is brought in line with the
chunks table (vectors of new chunks added, removed chunks deleted), so a crash between the two files
costs only a re-sync, never a wrong answer about what is stored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from tether.store._protocol import ScoredId

if TYPE_CHECKING:
    from usearch.index import Index


EXPANSION_SEARCH = 4096
"""Candidates an HNSW search keeps (usearch's ``expansion_search``). Measured by bench/scale_1m.py at a
million chunks (vectors shaped like MiniLM's on SciFact; two builds), recall@10 against exact search for
claim-like queries (off the chunks' manifold, the hardest kind): 0.80-0.85 / 0.90-0.93 / 0.956-0.964 /
0.964-0.968 / 0.972-0.979 at 512 / 1024 / 2048 / 4096 / 8192, for a p50 of ~3-4 / 6-7 / 9-12 / 15-19 /
29 ms a search (exact search there: 81-84 ms). 4096 is the smallest setting past 0.95 with a margin;
queries near the chunks reach 0.95 already at 512. Below a million chunks a search costs less and finds
more."""


def _import_onnxruntime_first() -> None:
    """Load onnxruntime before usearch: the other order kills the process (SIGSEGV while onnxruntime's
    extension loads, seen with usearch 2.26 / numkong 7.8 and onnxruntime 1.32), and a search that opens
    the HNSW index before embedding its query would load them in that order."""
    with contextlib.suppress(ImportError):
        import onnxruntime  # noqa: F401


class AnnIndex:
    """HNSW over unit vectors with inner-product distance, keyed by chunk id."""

    def __init__(
        self, path: Path, dim: int, *, connectivity: int = 16, expansion_search: int = EXPANSION_SEARCH
    ) -> None:
        self.path = path
        self.dim = dim
        self.connectivity = connectivity
        self.expansion_search = expansion_search
        self._index = self._new()
        self._mapped = False
        if path.exists():
            try:
                # memory-mapped (a million vectors are 1.7 GB to read otherwise); loaded only to change it
                self._index.view(str(path))
                self._mapped = True
            except Exception:  # a damaged cache is rebuilt from SQLite
                self._index = self._new()
        self.synced_generation = -1

    def _new(self) -> Index:
        _import_onnxruntime_first()
        from usearch.index import Index

        return Index(
            ndim=self.dim,
            metric="ip",
            dtype="f32",
            connectivity=self.connectivity,
            expansion_add=128,
            expansion_search=self.expansion_search,
        )

    def __len__(self) -> int:
        return len(self._index)

    def sync(
        self,
        ids: npt.NDArray[np.int64],
        vectors_of: Callable[[npt.NDArray[np.int64]], npt.NDArray[np.float32]],
        generation: int,
    ) -> tuple[int, int]:
        """Make the index hold exactly ``ids``; ``vectors_of(missing_ids)`` returns their vectors.

        Returns (added, removed).
        """
        have = np.asarray(self._index.keys, dtype=np.int64) if len(self._index) else np.zeros(0, np.int64)
        extra = np.setdiff1d(have, ids, assume_unique=True)
        missing = np.setdiff1d(ids, have, assume_unique=True)
        if (len(extra) or len(missing)) and self._mapped:
            index = self._new()
            try:
                index.load(str(self.path))
            except Exception:  # damaged: start again from SQLite
                index = self._new()
                extra, missing = np.zeros(0, np.int64), ids
            self._index, self._mapped = index, False
        if len(extra):
            self._index.remove(extra.astype(np.uint64))
        if len(missing):
            vecs = vectors_of(missing)
            self._index.add(missing.astype(np.uint64), np.ascontiguousarray(vecs, dtype=np.float32))
        if len(extra) or len(missing):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(self.path.suffix + ".tmp")
            self._index.save(str(tmp))
            tmp.replace(self.path)
        self.synced_generation = generation
        return int(len(missing)), int(len(extra))

    def search(self, vector: npt.NDArray[np.float32], n: int) -> list[ScoredId]:
        if len(self._index) == 0 or n <= 0:
            return []
        m = self._index.search(np.ascontiguousarray(vector, dtype=np.float32), min(n, len(self._index)))
        # usearch's "ip" distance is 1 - dot product
        return [ScoredId(int(k), float(1.0 - d)) for k, d in zip(m.keys, m.distances, strict=True)]
