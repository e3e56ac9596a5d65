"""Evaluation: YAML cases, scorers, a runner, stored runs, comparisons, and BEIR retrieval metrics."""

from tether.evals._beir import BeirData, load_beir
from tether.evals._cases import CaseInput, EvalCase, Expected, Turn, load_cases
from tether.evals._compare import Comparison, compare_runs, mcnemar_exact
from tether.evals._harness import DryRun, EvalRunner, RunOptions
from tether.evals._metrics import mrr_at_k, ndcg_at_k, recall_at_k
from tether.evals._results import CaseResult, RunReport, RunSummary, Score, TurnResult
from tether.evals._retrieval import DefaultPipeline, EvalMode, RetrievalReport, evaluate_retrieval
from tether.evals._scorers import SCORERS, Judge, OfflineSupportJudge, ScoreContext, scorer
from tether.evals._store import EvalStore

__all__ = [
    "SCORERS",
    "BeirData",
    "CaseInput",
    "CaseResult",
    "Comparison",
    "DefaultPipeline",
    "DryRun",
    "EvalCase",
    "EvalMode",
    "EvalRunner",
    "EvalStore",
    "Expected",
    "Judge",
    "OfflineSupportJudge",
    "RunOptions",
    "RunReport",
    "RunSummary",
    "Score",
    "ScoreContext",
    "Turn",
    "TurnResult",
    "compare_runs",
    "load_cases",
    "mcnemar_exact",
    "scorer",
    "RetrievalReport",
    "evaluate_retrieval",
    "load_beir",
    "mrr_at_k",
    "ndcg_at_k",
    "recall_at_k",
]
