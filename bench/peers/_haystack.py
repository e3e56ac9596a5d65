"""Haystack (haystack-ai): InMemoryDocumentStore, BM25 + embedding retrievers, DocumentJoiner, in one Pipeline.

Documents carry the shared vectors; a custom text-embedder component embeds the query with Tether's embedder.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # documented switch; this machine is offline

from haystack import Document, Pipeline, component  # noqa: E402
from haystack.components.joiners import DocumentJoiner  # noqa: E402
from haystack.components.retrievers.in_memory import (  # noqa: E402
    InMemoryBM25Retriever,
    InMemoryEmbeddingRetriever,
)
from haystack.document_stores.in_memory import InMemoryDocumentStore  # noqa: E402

from peers._base import Config, System  # noqa: E402
from peers._data import Data, QueryEncoder, Split, scores  # noqa: E402


@component
class TetherTextEmbedder:
    """Tether's query embedder as a Haystack text-embedder component."""

    def __init__(self, encoder: QueryEncoder) -> None:
        self.encoder = encoder

    @component.output_types(embedding=list[float])
    def run(self, text: str) -> dict[str, Any]:
        return {"embedding": self.encoder(text).tolist()}


class HaystackSystem(System):
    name = "haystack"
    package = "haystack-ai"

    def defaults(self) -> Config:
        # InMemoryDocumentStore(): BM25L, dot product; both retrievers top_k 10; DocumentJoiner(): concatenate
        return {"side_k": 10, "join_mode": "concatenate", "weights": None, "k": None}

    def grid(self, quick: bool) -> list[Config]:
        modes: list[tuple[str, list[float] | None]] = [("concatenate", None), ("distribution_based_rank_fusion", None)]
        modes += [("reciprocal_rank_fusion", [w, 1 - w]) for w in (0.3, 0.5, 0.7)]  # [bm25, embedding]
        sides = (100, 200)
        if quick:
            modes, sides = [("distribution_based_rank_fusion", None), ("reciprocal_rank_fusion", None)], (100,)
        return [{"side_k": s, "join_mode": m, "weights": w, "k": 100} for s in sides for m, w in modes]

    def build_key(self, config: Config) -> str:
        return ""

    def build(self, data: Data, config: Config) -> None:
        c = data.corpus
        self.store = InMemoryDocumentStore()
        self.store.write_documents(
            [Document(id=c.ids[i], content=c.doc_text(i), embedding=c.vectors[i].tolist()) for i in range(len(c.ids))]
        )
        self.bm25 = InMemoryBM25Retriever(self.store)
        self.dense = InMemoryEmbeddingRetriever(self.store)

    def configure(self, config: Config) -> None:
        p = Pipeline()
        p.add_component("text_embedder", TetherTextEmbedder(self.encoder))
        p.add_component("bm25_retriever", InMemoryBM25Retriever(self.store, top_k=config["side_k"]))
        p.add_component("embedding_retriever", InMemoryEmbeddingRetriever(self.store, top_k=config["side_k"]))
        p.add_component("joiner", self._joiner(config))
        p.connect("text_embedder.embedding", "embedding_retriever.query_embedding")
        p.connect("bm25_retriever", "joiner")
        p.connect("embedding_retriever", "joiner")
        self.pipeline = p

    @staticmethod
    def _joiner(config: Config) -> DocumentJoiner:
        return DocumentJoiner(join_mode=config["join_mode"], weights=config["weights"], top_k=config["k"])

    def search(self, query: str) -> list[str]:
        out = self.pipeline.run({"text_embedder": {"text": query}, "bm25_retriever": {"query": query}})
        return [d.id for d in out["joiner"]["documents"]]

    def tune(self, data: Data, split: Split, grid: list[Config]) -> list[tuple[Config, dict[str, float]]]:
        """Each retriever runs once per query at the largest top_k; the joiner is re-run per grid point."""
        self.build(data, grid[0])
        n = max(c["side_k"] for c in grid)
        lex, vec = {}, {}
        for q, text in split.queries.items():
            lex[q] = self.bm25.run(query=text, top_k=n)["documents"]
            vec[q] = self.dense.run(query_embedding=self.encoder(text).tolist(), top_k=n)["documents"]
        out = []
        for config in grid:
            joiner, k = self._joiner(config), config["side_k"]
            ranked = {}
            for q in split.queries:
                lists = [[replace(d) for d in lex[q][:k]], [replace(d) for d in vec[q][:k]]]
                ranked[q] = [d.id for d in joiner.run(documents=lists)["documents"]]
            out.append((config, scores(ranked, split)))
        return out

    def persist(self, folder: Path) -> None:
        self.store.save_to_disk(str(folder / "store.json"))

    def note(self) -> str:
        return "whole documents; InMemoryDocumentStore (exact); persisted as JSON"
