"""LlamaIndex: VectorStoreIndex (in-memory SimpleVectorStore) + BM25Retriever, fused by QueryFusionRetriever.

The dense side gets the shared document vectors on its nodes (nodes that carry an embedding are not
re-embedded) and a custom ``BaseEmbedding`` that embeds queries with Tether's embedder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llama_index.core import Settings, VectorStoreIndex
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.retrievers import QueryFusionRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.retrievers.bm25 import BM25Retriever
from pydantic import PrivateAttr

from peers._base import Config, System
from peers._data import Data, QueryEncoder, Split, scores

Settings.llm = None  # documented switch: no LLM (MockLLM); query generation is off anyway (num_queries=1)


class TetherEmbedding(BaseEmbedding):
    """Tether's query embedder behind LlamaIndex's embedding interface."""

    _encoder: Any = PrivateAttr()

    def __init__(self, encoder: QueryEncoder) -> None:
        super().__init__(model_name="all-MiniLM-L6-v2 int8 (Tether)")
        self._encoder = encoder

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._encoder(query).tolist()  # type: ignore[no-any-return]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._encoder(text).tolist()  # type: ignore[no-any-return]


class _Replay(BaseRetriever):
    """Tuning aid: replays one side's cached top-n as its top-k, so the grid re-runs only the fusion step."""

    def __init__(self, lists: dict[str, list[tuple[Any, float]]], k: int) -> None:
        super().__init__()
        self.lists, self.k = lists, k

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [NodeWithScore(node=n, score=s) for n, s in self.lists[query_bundle.query_str][: self.k]]


class LlamaIndexSystem(System):
    name = "llamaindex"
    package = "llama-index-core"

    def defaults(self) -> Config:
        # QueryFusionRetriever(): mode "simple", similarity_top_k 2, use_async True; num_queries 4 needs an LLM
        # to write 3 more queries, so 1 (the documented way to fuse without query generation).
        # as_retriever() and BM25Retriever(): similarity_top_k 2 each.
        return {"side_k": 2, "mode": "simple", "weights": None, "k": 2, "num_queries": 1, "use_async": True}

    def grid(self, quick: bool) -> list[Config]:
        modes: list[tuple[str, list[float] | None]] = [("simple", None), ("reciprocal_rerank", None)]
        for m in ("relative_score", "dist_based_score"):
            modes += [(m, [w, 1 - w]) for w in (0.3, 0.5, 0.7)]  # [vector, bm25]
        sides = (100, 200)
        if quick:
            modes, sides = [("dist_based_score", [0.5, 0.5]), ("reciprocal_rerank", None)], (100,)
        # use_async=False: both sides are in-process CPU work, so asyncio adds overhead and nothing else
        return [
            {"side_k": s, "mode": m, "weights": w, "k": 100, "num_queries": 1, "use_async": False}
            for s in sides
            for m, w in modes
        ]

    def build_key(self, config: Config) -> str:
        return ""

    def build(self, data: Data, config: Config) -> None:
        c = data.corpus
        self.embed_model = TetherEmbedding(self.encoder)
        nodes = [TextNode(id_=c.ids[i], text=c.doc_text(i), embedding=c.vectors[i].tolist()) for i in range(len(c.ids))]
        self.index = VectorStoreIndex(nodes, embed_model=self.embed_model)
        self.bm25 = BM25Retriever.from_defaults(nodes=nodes)

    def configure(self, config: Config) -> None:
        self.vector_retriever = self.index.as_retriever(similarity_top_k=config["side_k"])
        self.bm25.similarity_top_k = config["side_k"]
        self.fusion = self._fusion([self.vector_retriever, self.bm25], config)

    @staticmethod
    def _fusion(retrievers: list[BaseRetriever], config: Config) -> QueryFusionRetriever:
        return QueryFusionRetriever(
            retrievers,
            mode=config["mode"],
            similarity_top_k=config["k"],
            num_queries=config["num_queries"],
            use_async=config["use_async"],
            retriever_weights=config["weights"],
        )

    def search(self, query: str) -> list[str]:
        return [n.node.node_id for n in self.fusion.retrieve(query)]

    def tune(self, data: Data, split: Split, grid: list[Config]) -> list[tuple[Config, dict[str, float]]]:
        self.build(data, grid[0])
        n = max(c["side_k"] for c in grid)
        self.configure({**grid[0], "side_k": n})
        vec: dict[str, list[tuple[Any, float]]] = {}
        lex: dict[str, list[tuple[Any, float]]] = {}
        for text in split.queries.values():
            vec[text] = [(x.node, x.score) for x in self.vector_retriever.retrieve(text)]
            lex[text] = [(x.node, x.score) for x in self.bm25.retrieve(text)]
        out = []
        for config in grid:
            fusion = self._fusion([_Replay(vec, config["side_k"]), _Replay(lex, config["side_k"])], config)
            ranked = {q: [x.node.node_id for x in fusion.retrieve(t)] for q, t in split.queries.items()}
            out.append((config, scores(ranked, split)))
        return out

    def persist(self, folder: Path) -> None:
        self.index.storage_context.persist(persist_dir=str(folder / "index"))
        (folder / "bm25").mkdir()
        self.bm25.persist(str(folder / "bm25"))

    def note(self) -> str:
        return "whole documents; SimpleVectorStore (exact); persisted as JSON"
