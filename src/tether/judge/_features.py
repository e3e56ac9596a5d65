"""Features of a (claim, evidence) pair for the learned support judge.

Generic signals only, nothing tied to one data set: how much of the claim the evidence covers
(semantically, token by token, and by rare words), whether numbers agree, and whether the two
disagree in polarity (a negation on one side only, or opposite directions such as increase/decrease).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tether.models import TokenVectors
from tether.text import STOPWORDS, stem, words

JUDGE_FEATURES = (
    "cos_best",
    "cos_mean",
    "maxsim_mean",
    "maxsim_low",
    "coverage",
    "missing_max_idf",
    "bigram_coverage",
    "numbers_present",
    "numbers_conflict",
    "negation_mismatch",
    "direction_mismatch",
    "evidence_words",
)

_NEGATION = frozenset(
    [
        "not",
        "no",
        "never",
        "none",
        "neither",
        "nor",
        "without",
        "lack",
        "lacks",
        "lacking",
        "absent",
        "absence",
        "fail",
        "fails",
        "failed",
        "unable",
        "cannot",
        "nothing",
        "nobody",
    ]
)
_UP = frozenset(
    [
        "increase",
        "increases",
        "increased",
        "increasing",
        "higher",
        "high",
        "more",
        "greater",
        "raise",
        "raises",
        "raised",
        "elevated",
        "elevate",
        "enhance",
        "enhances",
        "enhanced",
        "promote",
        "promotes",
        "promoted",
        "induce",
        "induces",
        "induced",
        "activate",
        "activates",
        "activated",
        "improve",
        "improves",
        "improved",
        "positive",
        "positively",
        "up",
        "upregulated",
        "upregulates",
        "gain",
        "above",
        "exceed",
        "exceeds",
    ]
)
_DOWN = frozenset(
    [
        "decrease",
        "decreases",
        "decreased",
        "decreasing",
        "lower",
        "low",
        "less",
        "fewer",
        "reduce",
        "reduces",
        "reduced",
        "reduction",
        "diminish",
        "diminished",
        "inhibit",
        "inhibits",
        "inhibited",
        "suppress",
        "suppresses",
        "suppressed",
        "impair",
        "impairs",
        "impaired",
        "worsen",
        "worse",
        "negative",
        "negatively",
        "down",
        "downregulated",
        "downregulates",
        "loss",
        "below",
        "decline",
        "declines",
        "declined",
    ]
)
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)*%?$")


@dataclass(frozen=True)
class EncodedText:
    """A text with its pooled unit vector and word-piece token vectors (see ``Embedder.encode``)."""

    text: str
    vector: npt.NDArray[np.float32]
    tokens: TokenVectors


def _content_stems(ws: list[str]) -> list[str]:
    return [stem(w) for w in ws if w not in STOPWORDS and any(c.isalnum() for c in w)]


def _numbers(ws: list[str]) -> set[str]:
    return {w.rstrip("%").replace(",", "") for w in ws if _NUMBER.match(w)}


def _polarity(ws: list[str]) -> tuple[int, bool, bool]:
    neg = sum(1 for w in ws if w in _NEGATION or w.endswith("n't"))
    return neg, any(w in _UP for w in ws), any(w in _DOWN for w in ws)


def _idf(idf: dict[str, float], default: float, w: str) -> float:
    return idf.get(w, default)


def judge_features(
    claim: EncodedText,
    evidence: list[EncodedText],
    idf: dict[str, float],
    max_idf: float,
) -> list[float]:
    """The feature vector (order of :data:`JUDGE_FEATURES`) of a claim against its evidence spans.

    ``idf`` maps lower-cased words to their inverse document frequency in the corpus the evidence
    comes from (missing words get ``max_idf``: rare).
    """
    if not evidence:
        return [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    cos = [float(e.vector @ claim.vector) for e in evidence]
    mean_vec = np.mean([e.vector for e in evidence], axis=0)
    mean_vec = mean_vec / max(float(np.linalg.norm(mean_vec)), 1e-12)
    ev_tokens = np.concatenate([e.tokens.vectors for e in evidence], axis=0)
    if len(claim.tokens.vectors) and len(ev_tokens):
        best = (claim.tokens.vectors @ ev_tokens.T).max(axis=1)
        maxsim_mean, maxsim_low = float(best.mean()), float(np.percentile(best, 10))
    else:
        maxsim_mean = maxsim_low = 0.0

    c_words = words(claim.text)
    e_words = [w for e in evidence for w in words(e.text)]
    c_content = [w for w in c_words if w not in STOPWORDS and any(ch.isalnum() for ch in w)]
    e_stems = set(_content_stems(e_words))
    weights = {stem(w): _idf(idf, max_idf, w) for w in c_content}
    total = sum(weights.values()) or 1.0
    coverage = sum(v for s, v in weights.items() if s in e_stems) / total
    missing = [v for s, v in weights.items() if s not in e_stems]
    missing_max = max(missing, default=0.0) / (max_idf or 1.0)
    c_seq = _content_stems(c_words)
    c_bigrams = set(zip(c_seq, c_seq[1:], strict=False))
    e_seq = [_content_stems(words(e.text)) for e in evidence]
    e_bigrams = {b for seq in e_seq for b in zip(seq, seq[1:], strict=False)}
    bigram_cov = len(c_bigrams & e_bigrams) / len(c_bigrams) if c_bigrams else 0.0

    c_nums, e_nums = _numbers(c_words), _numbers(e_words)
    numbers_present = (len(c_nums & e_nums) / len(c_nums)) if c_nums else 1.0
    numbers_conflict = 1.0 if e_nums and not c_nums <= e_nums else 0.0

    c_neg, c_up, c_down = _polarity(c_words)
    e_neg, e_up, e_down = _polarity(e_words)
    negation_mismatch = 1.0 if (c_neg > 0) != (e_neg > 0) else 0.0
    direction_mismatch = (
        1.0 if (c_up and not c_down and e_down and not e_up) or (c_down and not c_up and e_up and not e_down) else 0.0
    )
    return [
        max(cos),
        float(mean_vec @ claim.vector),
        maxsim_mean,
        maxsim_low,
        coverage,
        missing_max,
        bigram_cov,
        numbers_present,
        numbers_conflict,
        negation_mismatch,
        direction_mismatch,
        float(np.log1p(len(e_words))),
    ]
