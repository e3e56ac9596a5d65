"""Tether's own reranker: a logistic model over retrieval scores and query/chunk matching features,
trained by ``bench/train_reranker.py`` on permissive data only (SQuAD 2.0 calibration questions, CC BY-SA 4.0, and
SelQA, Apache-2.0); SciFact (CC BY-NC) only evaluates it. A real cross-encoder plugs in by path
(``tether.rerank.OnnxCrossEncoder``) behind the same protocol."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tether.contracts import Hit
from tether.errors import ModelError
from tether.judge import IdfSource, UniformIdf
from tether.models._cross_encoder import OnnxPairModel, softmax
from tether.models._linear import Logistic, TrainedModel, load_model_file
from tether.rerank._features import RERANK_FEATURES, QueryProfile, rerank_features
from tether.text import words

DEFAULT_RERANK_FILE = "rerank_model.json"


class RerankModel(TrainedModel):
    """Weights of the learned reranker and the candidate depth chosen on the training split."""

    model: Logistic
    depth: int
    name: str = ""  # a short tag for traces and `tether search` ("squad+selqa"); trained_on says it in full


def load_rerank_model(path: str | Path | None = None) -> RerankModel:
    """The packaged reranker model, or one at ``path``."""
    m = load_model_file(
        RerankModel, DEFAULT_RERANK_FILE, path, "reranker model", "run `python bench/train_reranker.py`"
    )
    if tuple(m.model.features) != RERANK_FEATURES:
        raise ModelError(f"reranker model {path or DEFAULT_RERANK_FILE} was trained on other features; retrain it")
    return m


def passage_text(title: str, text: str) -> str:
    """What a cross-encoder reads of a chunk: its document's title on a line of its own, then its text (the
    title alone often says what an abstract is about; it is left out when the text already starts with it)."""
    return f"{title}\n{text}" if title and not text.startswith(title) else text


def order_by_scores(hits: list[Hit], scores: list[float]) -> list[Hit]:
    """``hits`` best score first (ties keep their order), each carrying its ``rerank_score``."""
    order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))
    return [hits[i].model_copy(update={"rerank_score": scores[i]}) for i in order]


class LearnedReranker:
    """Reorders hits by the learned model's probability that each is relevant."""

    def __init__(self, model: RerankModel | None = None, idf: IdfSource | None = None) -> None:
        self.model = model or load_rerank_model()
        self.idf_source: IdfSource = idf or UniformIdf()
        self.name = "learned:" + (self.model.name or self.model.trained_on or "reranker")

    def scores(self, query: str, hits: list[Hit]) -> list[float]:
        idf, max_idf = self.idf_source.idf(words(query))
        return self.model.model.probabilities(rerank_features(QueryProfile(query, idf, max_idf), hits))

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        return order_by_scores(hits, self.scores(query, hits))


class OnnxCrossEncoder:
    """A user's ONNX cross-encoder as a reranker: relevance = sigmoid of a single logit, or the softmax
    probability of the last label for a two-label model; with ``blend`` below 1, that probability weighted
    against the hit's retrieval score (``blend * p + (1 - blend) * score``; hybrid scores lie in [0, 1])."""

    def __init__(self, model: OnnxPairModel, blend: float = 1.0) -> None:
        if not 0.0 <= blend <= 1.0:
            raise ValueError(f"blend must be within [0, 1], not {blend}")
        self.pair_model = model
        self.blend = blend
        self.name = model.name

    def probabilities(self, query: str, hits: list[Hit]) -> list[float]:
        """The model's probability that each hit is relevant to ``query``."""
        if not hits:
            return []
        logits = self.pair_model.logits([(query, passage_text(h.title, h.text)) for h in hits])
        if logits.shape[1] == 1:
            return [float(s) for s in 1.0 / (1.0 + np.exp(-logits[:, 0]))]
        return [float(s) for s in softmax(logits)[:, -1]]

    def scores(self, query: str, hits: list[Hit]) -> list[float]:
        probs = self.probabilities(query, hits)
        if self.blend >= 1.0:
            return probs
        return [self.blend * p + (1.0 - self.blend) * h.score for p, h in zip(probs, hits, strict=True)]

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        return order_by_scores(hits, self.scores(query, hits))
