"""Word rarity (inverse document frequency) for the learned judge and reranker."""

from __future__ import annotations

import threading
from typing import Protocol

from tether.store import Store
from tether.text import STOPWORDS, idf_value


class IdfSource(Protocol):
    """Inverse document frequencies of words in the corpus the evidence comes from."""

    def idf(self, ws: list[str]) -> tuple[dict[str, float], float]:
        """IDF of each known word of ``ws`` and the IDF an unseen word gets (the largest)."""
        ...


class UniformIdf:
    """Every word weighs the same: for evidence that comes from no index."""

    def idf(self, ws: list[str]) -> tuple[dict[str, float], float]:
        return {}, 1.0


class StoreIdf:
    """IDF over the chunks of an index, cached until the index changes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._idf: dict[str, float] = {}
        self._generation = -1
        self._n = 1
        self._lock = threading.Lock()

    def idf(self, ws: list[str]) -> tuple[dict[str, float], float]:
        with self._lock:
            if self.store.generation != self._generation:
                self._idf = {}
                self._generation = self.store.generation
                self._n = max(self.store.chunk_count(), 1)
            todo = [w for w in dict.fromkeys(ws) if w not in STOPWORDS and w not in self._idf]
            if todo:
                counts = self.store.term_document_counts(todo)
                for w in todo:
                    self._idf[w] = idf_value(counts.get(w, 0), self._n)
            # a copy of the asked words' weights: the cache itself changes under other threads
            return {w: self._idf[w] for w in dict.fromkeys(ws) if w in self._idf}, idf_value(0, self._n)
