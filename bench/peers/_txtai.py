"""txtai: Embeddings(hybrid=True): a dense ANN index plus BM25 scoring, fused inside search().

Vectors come through txtai's documented "external" vectors method: a transform function that returns the
shared document vector for a document's text and embeds anything else (queries) with Tether's embedder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from txtai import Embeddings

from peers._base import Config, System
from peers._data import Data, Vectors

torch.set_num_threads(1)  # txtai imports torch; nothing here runs a torch model, but keep it to one thread


class TxtaiSystem(System):
    name = "txtai"
    package = "txtai"

    def defaults(self) -> Config:
        # hybrid=True: BM25 (normalised) + dense, convex fusion with weights 0.5; ANN backend faiss
        # (an IVF index, approximate, at this size); search() limit 3
        return {"backend": "faiss", "weights": 0.5, "k": 3}

    def grid(self, quick: bool) -> list[Config]:
        if quick:
            return [{"backend": "numpy", "weights": 0.5, "k": 100}, {"backend": "faiss", "weights": 0.5, "k": 100}]
        return [{"backend": be, "weights": w, "k": 100} for be in ("faiss", "numpy") for w in (0.3, 0.4, 0.5, 0.6, 0.7)]

    def build_key(self, config: Config) -> str:
        return str(config["backend"])

    def build(self, data: Data, config: Config) -> None:
        c = data.corpus
        texts = [c.doc_text(i) for i in range(len(c.ids))]
        known = {t: c.vectors[i] for i, t in enumerate(texts)}
        enc = self.encoder

        def transform(batch: list[str]) -> Vectors:
            return np.stack([known[t] if t in known else enc(t) for t in batch])

        self.embeddings = Embeddings(hybrid=True, method="external", transform=transform, backend=config["backend"])
        self.embeddings.index([(c.ids[i], texts[i], None) for i in range(len(texts))])

    def configure(self, config: Config) -> None:
        self.k, self.weights = int(config["k"]), float(config["weights"])

    def search(self, query: str) -> list[str]:
        return [str(uid) for uid, _ in self.embeddings.search(query, limit=self.k, weights=self.weights)]

    def persist(self, folder: Path) -> None:
        self.embeddings.save(str(folder / "index"))

    def note(self) -> str:
        return "whole documents; faiss IVF (approximate) by default, numpy backend = exact"
