"""What the router knows about a request before any model is called: the question's form, how well retrieval
went, how sure the free extractive probe is, and how similar past questions fared on each tier.

Every feature is cheap: the probe is the features-only extractive answerer (~10 ms), run on the hits retrieval
already found; the neighbours are a dot product with the training questions' embeddings.
"""

from __future__ import annotations

import math
import re

from tether.answer._features import question_type
from tether.contracts import Answer, Hit
from tether.text import STOPWORDS, words

QUESTION_TYPES = ("when", "number", "who", "where", "polar", "other")
_POLAR = re.compile(r"^\s*(is|are|was|were|do|does|did|can|could|will|would|should|has|have|had|may|must)\b", re.I)

BASE_FEATURES = (
    *(f"type_{t}" for t in QUESTION_TYPES),
    "log_words",
    "rare_words",
    "unseen_words",
    "top_score",
    "margin",
    "probe_support",
    "probe_abstained",
)
"""The request's own features; the router adds one ``past_<tier>`` per tier (neighbours' pass rate)."""


def kind_of(question: str) -> str:
    """The question's type: when / number / who / where (as the support model reads it), polar (yes/no), other."""
    t = question_type(question)
    if t == "other" and _POLAR.match(question):
        return "polar"
    return t


def request_features(
    question: str, hits: list[Hit], probe: Answer, idf: dict[str, float], max_idf: float
) -> dict[str, float]:
    """The base features of one request (``BASE_FEATURES``, in order)."""
    ws = words(question)
    content = [w for w in ws if w not in STOPWORDS]
    kind = kind_of(question)
    scores = [h.score for h in hits]
    rare = sum(1 for w in content if idf.get(w, max_idf) >= 0.75 * max_idf)
    unseen = sum(1 for w in content if w not in idf or idf[w] >= max_idf)
    feats = {f"type_{t}": float(kind == t) for t in QUESTION_TYPES}
    feats.update(
        {
            "log_words": math.log1p(len(ws)),
            "rare_words": float(rare),
            "unseen_words": float(unseen),
            "top_score": scores[0] if scores else 0.0,
            "margin": scores[0] - scores[1] if len(scores) > 1 else (scores[0] if scores else 0.0),
            "probe_support": probe.support,
            "probe_abstained": float(probe.abstained),
        }  # fmt: skip
    )
    return feats
