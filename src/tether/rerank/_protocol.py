"""The Reranker protocol: reorder retrieved hits for a query."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from tether.contracts import Hit


@runtime_checkable
class Reranker(Protocol):
    """Scores (query, hit) pairs and returns the hits best first; ``rerank_score`` is set on each."""

    name: str

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]: ...
