"""Support judges: does the evidence a claim cites support it? SUPPORTED, UNSUPPORTED or CONTRADICTED.

- :class:`LearnedJudge` — Tether's own, offline (MiniLM similarities + agreement features, trained
  by ``bench/train_judge.py``);
- :class:`LLMJudge` — asks a model through any OpenAI-compatible server;
- :class:`OnnxNLIJudge` — a real NLI / cross-encoder ONNX model the user points at by path.
"""

from tether.judge._factory import judge_from_settings
from tether.judge._features import JUDGE_FEATURES, EncodedText, judge_features
from tether.judge._idf import IdfSource, StoreIdf, UniformIdf
from tether.judge._learned import JudgeModel, LearnedJudge, OnnxNLIJudge, load_judge_model
from tether.judge._llm import LLMClaimVerifier, LLMJudge
from tether.judge._protocol import LABELS, ClaimVerifier, Judge, Label, Verdict

__all__ = [
    "JUDGE_FEATURES",
    "LABELS",
    "ClaimVerifier",
    "EncodedText",
    "IdfSource",
    "Judge",
    "JudgeModel",
    "LLMClaimVerifier",
    "LLMJudge",
    "Label",
    "LearnedJudge",
    "OnnxNLIJudge",
    "StoreIdf",
    "UniformIdf",
    "Verdict",
    "judge_features",
    "judge_from_settings",
    "load_judge_model",
]
