"""bm25s: lexical BM25 over sparse matrices (numpy backend)."""

from __future__ import annotations

from pathlib import Path

import bm25s
import Stemmer

from peers._base import Config, System
from peers._data import Data


class Bm25sSystem(System):
    name = "bm25s"
    kind = "lexical"
    package = "bm25s"

    def defaults(self) -> Config:
        # bm25s.tokenize: lower case, English stop words dropped, no stemmer; BM25(): lucene, k1 1.5, b 0.75;
        # retrieve(): k = 10
        return {"stemmer": None, "k1": 1.5, "b": 0.75, "k": 10}

    def grid(self, quick: bool) -> list[Config]:
        if quick:
            return [self.defaults(), {"stemmer": "english", "k1": 1.2, "b": 0.75, "k": 100}]
        return [
            {"stemmer": s, "k1": k1, "b": b, "k": 100}
            for s in (None, "english")
            for k1 in (0.9, 1.2, 1.5)
            for b in (0.4, 0.75, 0.9)
        ]

    def build_key(self, config: Config) -> str:
        return f"{config['stemmer']}|{config['k1']}|{config['b']}"

    def build(self, data: Data, config: Config) -> None:
        self.ids = data.corpus.ids
        self.stemmer = Stemmer.Stemmer(config["stemmer"]) if config["stemmer"] else None
        texts = [data.corpus.doc_text(i) for i in range(len(self.ids))]
        tokens = bm25s.tokenize(texts, stemmer=self.stemmer, show_progress=False)
        self.bm25 = bm25s.BM25(k1=config["k1"], b=config["b"])
        self.bm25.index(tokens, show_progress=False)

    def configure(self, config: Config) -> None:
        self.k = int(config["k"])

    def search(self, query: str) -> list[str]:
        tokens = bm25s.tokenize(query, stemmer=self.stemmer, show_progress=False)
        docs, _ = self.bm25.retrieve(tokens, k=self.k, show_progress=False)
        return [self.ids[i] for i in docs[0]]

    def persist(self, folder: Path) -> None:
        self.bm25.save(str(folder))

    def note(self) -> str:
        return "whole documents (title + abstract)"
