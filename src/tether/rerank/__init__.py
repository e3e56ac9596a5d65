"""Rerankers: reorder retrieved hits before they reach the answerer.

- :class:`LearnedReranker` — Tether's own (retrieval scores + query/chunk matching, trained by
  ``bench/train_reranker.py``), costs no model pass;
- :class:`OnnxCrossEncoder` — a real cross-encoder ONNX model the user points at by path.
"""

from tether.rerank._factory import rerank_depth, reranker_from_settings, search_and_rerank
from tether.rerank._features import RERANK_FEATURES, QueryProfile, rerank_features
from tether.rerank._learned import LearnedReranker, OnnxCrossEncoder, RerankModel, load_rerank_model, passage_text
from tether.rerank._protocol import Reranker

__all__ = [
    "RERANK_FEATURES",
    "LearnedReranker",
    "OnnxCrossEncoder",
    "QueryProfile",
    "RerankModel",
    "Reranker",
    "load_rerank_model",
    "passage_text",
    "rerank_depth",
    "rerank_features",
    "reranker_from_settings",
    "search_and_rerank",
]
