"""Evaluation: retrieval metrics on BEIR-format data (the case harness comes with issue 3)."""

from tether.evals._beir import BeirData, load_beir
from tether.evals._metrics import mrr_at_k, ndcg_at_k, recall_at_k
from tether.evals._retrieval import RetrievalReport, evaluate_retrieval

__all__ = [
    "BeirData",
    "RetrievalReport",
    "evaluate_retrieval",
    "load_beir",
    "mrr_at_k",
    "ndcg_at_k",
    "recall_at_k",
]
