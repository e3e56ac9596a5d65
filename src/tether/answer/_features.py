"""Features of (question, candidate sentence) pairs for the extractive answerer's support model.

They are deliberately generic (no data-set quirks such as negation words): semantic similarity,
coverage of the question's rare words by the sentence and its passage, whether the question asks
for something the evidence never mentions, and whether the sentence holds the kind of thing asked
for (a number for "how many", a date for "when", a name for "who").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tether.text import STOPWORDS, stem, words

FEATURES = (
    "cos_sentence",
    "cos_passage",
    "passage_rank",
    "coverage_sentence",
    "coverage_passage",
    "bigram_sentence",
    "missing_max_idf",
    "missing_share",
    "new_words",
    "type_match",
    "number_mismatch",
)

_NUM = re.compile(r"\d")
_YEAR = re.compile(r"\b(1\d{3}|20\d{2})s?\b")
_MONTHS = re.compile(
    r"\b(january|february|march|april|may|june|july|august|september|october|november|december|century|"
    r"centuries|decade|year|years|bc|ad)\b",
    re.IGNORECASE,
)
_CAP = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+")
_QTYPES = (
    ("when", re.compile(r"\b(when|what year|which year|what date|what century|how long ago)\b")),
    (
        "number",
        re.compile(
            r"\b(how (many|much|long|far|old|big|large|often|tall|high)|what (percentage|percent|"
            r"number|amount|size))\b"
        ),
    ),
    ("who", re.compile(r"\b(who|whom|whose)\b")),
    ("where", re.compile(r"\b(where)\b")),
)


def question_type(question: str) -> str:
    q = question.lower()
    for name, rx in _QTYPES:
        if rx.search(q):
            return name
    return "other"


def _type_match(qtype: str, sentence: str, q_words: set[str]) -> float:
    if qtype == "other":
        return 0.5
    if qtype == "when":
        return 1.0 if _YEAR.search(sentence) or _MONTHS.search(sentence) else 0.0
    if qtype == "number":
        return 1.0 if _NUM.search(sentence) else 0.0
    caps = {w.lower() for w in _CAP.findall(sentence)}
    return 1.0 if caps - q_words else 0.0


@dataclass(frozen=True)
class QuestionTerms:
    """The question's content stems with their IDF (from the index) and its numbers."""

    stems: dict[str, float]
    bigrams: set[tuple[str, str]]
    words: set[str]
    numbers: set[str]
    qtype: str
    max_idf: float


def question_terms(question: str, idf: dict[str, float], max_idf: float) -> QuestionTerms:
    ws = words(question)
    content = [w for w in ws if w not in STOPWORDS]
    stems = {stem(w): idf.get(w, max_idf) for w in content}
    seq = [stem(w) for w in content]
    return QuestionTerms(
        stems=stems,
        bigrams=set(zip(seq, seq[1:], strict=False)),
        words=set(ws),
        numbers={w for w in ws if _NUM.search(w)},
        qtype=question_type(question),
        max_idf=max_idf,
    )


def _stems(text: str) -> list[str]:
    return [stem(w) for w in words(text) if w not in STOPWORDS]


def features(
    q: QuestionTerms, sentence: str, passage: str, cos_sentence: float, cos_passage: float, rank: int
) -> list[float]:
    """The feature vector (order of :data:`FEATURES`) of one candidate sentence."""
    s_seq = _stems(sentence)
    s_set = set(s_seq)
    p_set = set(_stems(passage))
    total = sum(q.stems.values()) or 1.0
    cov_s = sum(w for t, w in q.stems.items() if t in s_set) / total
    cov_p = sum(w for t, w in q.stems.items() if t in p_set) / total
    missing = [w for t, w in q.stems.items() if t not in p_set]
    miss_max = max(missing, default=0.0) / (q.max_idf or 1.0)
    miss_share = sum(missing) / total
    bigrams = set(zip(s_seq, s_seq[1:], strict=False))
    big = len(q.bigrams & bigrams) / len(q.bigrams) if q.bigrams else 0.0
    q_stems = set(q.stems)
    new = len(s_set - q_stems) / len(s_set) if s_set else 0.0
    s_words = set(words(passage))
    num_mismatch = 1.0 if q.numbers and not q.numbers <= s_words else 0.0
    return [
        cos_sentence,
        cos_passage,
        1.0 / (1.0 + rank),
        cov_s,
        cov_p,
        big,
        miss_max,
        miss_share,
        new,
        _type_match(q.qtype, sentence, q.words),
        num_mismatch,
    ]


ANSWER_FEATURES = (
    "best_probability",
    "second_probability",
    "best_cos_sentence",
    "best_coverage_sentence",
    "best_missing_max_idf",
    "min_missing_max_idf",
    "max_coverage_passage",
    "best_type_match",
    "best_number_mismatch",
    "max_cos_passage",
    "share_likely",
)


def answer_features(probabilities: list[float], feats: list[list[float]]) -> list[float]:
    """Question-level features (order of :data:`ANSWER_FEATURES`) from candidates sorted best first.

    They describe the evidence as a whole: how strong the best sentence is and how clearly it stands
    out, and whether any retrieved passage mentions every rare word of the question.
    """
    if not probabilities:
        return [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    idx = {name: i for i, name in enumerate(FEATURES)}
    best = feats[0]
    return [
        probabilities[0],
        probabilities[1] if len(probabilities) > 1 else 0.0,
        best[idx["cos_sentence"]],
        best[idx["coverage_sentence"]],
        best[idx["missing_max_idf"]],
        min(f[idx["missing_max_idf"]] for f in feats),
        max(f[idx["coverage_passage"]] for f in feats),
        best[idx["type_match"]],
        best[idx["number_mismatch"]],
        max(f[idx["cos_passage"]] for f in feats),
        sum(1 for p in probabilities if p >= 0.5) / len(probabilities),
    ]
