"""Tether's own reranker: a logistic model over retrieval scores and query/chunk matching features,
trained by ``bench/train_reranker.py`` on SciFact train queries. A real cross-encoder plugs in by path
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


def load_rerank_model(path: str | Path | None = None) -> RerankModel:
    """The packaged reranker model, or one at ``path``."""
    m = load_model_file(
        RerankModel, DEFAULT_RERANK_FILE, path, "reranker model", "run `python bench/train_reranker.py`"
    )
    if tuple(m.model.features) != RERANK_FEATURES:
        raise ModelError(f"reranker model {path or DEFAULT_RERANK_FILE} was trained on other features; retrain it")
    return m


def order_by_scores(hits: list[Hit], scores: list[float]) -> list[Hit]:
    """``hits`` best score first (ties keep their order), each carrying its ``rerank_score``."""
    order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))
    return [hits[i].model_copy(update={"rerank_score": scores[i]}) for i in order]


class LearnedReranker:
    """Reorders hits by the learned model's probability that each is relevant."""

    def __init__(self, model: RerankModel | None = None, idf: IdfSource | None = None) -> None:
        self.model = model or load_rerank_model()
        self.idf_source: IdfSource = idf or UniformIdf()
        self.name = "learned:" + (self.model.trained_on or "reranker")

    def scores(self, query: str, hits: list[Hit]) -> list[float]:
        idf, max_idf = self.idf_source.idf(words(query))
        return self.model.model.probabilities(rerank_features(QueryProfile(query, idf, max_idf), hits))

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        return order_by_scores(hits, self.scores(query, hits))


class OnnxCrossEncoder:
    """A user's ONNX cross-encoder as a reranker: relevance = sigmoid of a single logit, or the softmax
    probability of the last label for a two-label model."""

    def __init__(self, model: OnnxPairModel) -> None:
        self.pair_model = model
        self.name = model.name

    def scores(self, query: str, hits: list[Hit]) -> list[float]:
        if not hits:
            return []
        logits = self.pair_model.logits([(query, h.text) for h in hits])
        if logits.shape[1] == 1:
            return [float(s) for s in 1.0 / (1.0 + np.exp(-logits[:, 0]))]
        return [float(s) for s in softmax(logits)[:, -1]]

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        return order_by_scores(hits, self.scores(query, hits))
