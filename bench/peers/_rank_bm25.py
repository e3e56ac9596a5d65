"""rank_bm25: BM25Okapi in pure Python/numpy; it brings no tokenizer, so the tokenizer is part of the config."""

from __future__ import annotations

import re
from collections.abc import Callable

import Stemmer
from bm25s.stopwords import STOPWORDS_EN
from rank_bm25 import BM25Okapi

from peers._base import Config, System
from peers._data import Data

_WORD = re.compile(r"(?u)\b\w\w+\b")


def _tokenizer(name: str) -> Callable[[str], list[str]]:
    if name == "split":  # what rank_bm25's README does
        return lambda text: text.split(" ")
    stem = Stemmer.Stemmer("english")
    stop = set(STOPWORDS_EN)
    return lambda text: stem.stemWords([w for w in _WORD.findall(text.lower()) if w not in stop])


class RankBm25System(System):
    name = "rank_bm25"
    kind = "lexical"
    package = "rank-bm25"

    def defaults(self) -> Config:
        # README usage: doc.split(" "); BM25Okapi(k1=1.5, b=0.75, epsilon=0.25); get_top_n(n=5)
        return {"tokenizer": "split", "k1": 1.5, "b": 0.75, "k": 5}

    def grid(self, quick: bool) -> list[Config]:
        if quick:
            return [self.defaults(), {"tokenizer": "stem+stopwords", "k1": 1.2, "b": 0.75, "k": 100}]
        # the README tokenizer (split on spaces, case kept) is left to the default row: it is far slower
        # (every query token scans every document in Python) and no k1/b rescues it
        return [
            {"tokenizer": "stem+stopwords", "k1": k1, "b": b, "k": 100}
            for k1, b in ((1.5, 0.75), (1.2, 0.75), (0.9, 0.4))
        ]

    def build_key(self, config: Config) -> str:
        return f"{config['tokenizer']}|{config['k1']}|{config['b']}"

    def build(self, data: Data, config: Config) -> None:
        self.ids = data.corpus.ids
        self.tok = _tokenizer(config["tokenizer"])
        self.bm25 = BM25Okapi(
            [self.tok(data.corpus.doc_text(i)) for i in range(len(self.ids))], k1=config["k1"], b=config["b"]
        )

    def configure(self, config: Config) -> None:
        self.k = int(config["k"])

    def search(self, query: str) -> list[str]:
        return list(self.bm25.get_top_n(self.tok(query), self.ids, n=self.k))

    def note(self) -> str:
        return "whole documents; keeps its index in memory only (no persistence)"
