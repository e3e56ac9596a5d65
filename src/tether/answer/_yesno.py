"""Yes/no questions: say "Yes" or "No" in front of the quote that answers, when the quote settles it.

The label is only a reading of the cited evidence, never a guess: it is given when the question is a plain
polar question ("Is breakfast included ...?", "Are contractors eligible ...?"), every content word and number
of the question appears in the evidence (so the quote is about the very thing asked: "Is the motorcycle rate
0.32 EUR?" against the private car's row gets no label), and the evidence's polarity is clear (one negation
word, or a table cell that says yes or no). Anything else, an alternative question ("Is it A or B?"), a
negated question ("Isn't ...?"), a double negation, gets no label: the quote alone is the answer.
"""

from __future__ import annotations

import re
from typing import Literal

from tether.text import STOPWORDS, stem, words

YesNo = Literal["Yes", "No"]

_POLAR_START = re.compile(
    r"^\s*(is|are|was|were|am|do|does|did|can|could|may|might|must|shall|should|will|would|has|have|had)\b",
    re.IGNORECASE,
)
_NEGATED_QUESTION = re.compile(r"^\s*\w+n't\b|^\s*(cannot)\b|\b(not|never|no)\b", re.IGNORECASE)
_OR = re.compile(r"\bor\b", re.IGNORECASE)
_NEGATION = re.compile(
    r"\b(not|never|no|none|neither|nor|cannot)\b|n't\b|\b(excluded|prohibited|forbidden|ineligible|"
    r"not allowed|not permitted|not included)\b",
    re.IGNORECASE,
)
_NOT_ONLY = re.compile(r"\bnot only\b|\bno later than\b|\bno more than\b|\bno less than\b|\bno fewer than\b", re.I)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_CELL = re.compile(r"(?:^|;\s*)[^:;]+:\s*(yes|no|true|false|y|n)\s*(?=;|$)", re.IGNORECASE)


_PREDICATES = frozenset(
    stem(w)
    for w in (
        "included", "allowed", "permitted", "eligible", "available", "required", "covered", "offered", "provided",
        "possible", "needed", "accepted", "reimbursed", "paid", "supported", "free", "mandatory", "optional",
    )
)  # fmt: skip
"""What a question may ask of a thing without the evidence repeating the word ("Is breakfast included in
Lisbon?" against the row "City: Lisbon; Breakfast: yes")."""


def is_polar(question: str) -> bool:
    """A plain yes/no question: starts with an auxiliary verb, has no "or" alternative and no negation."""
    q = _NOT_ONLY.sub(" ", question.strip())
    if not q.strip() or not _POLAR_START.match(q):
        return False
    return not _OR.search(q) and not _NEGATED_QUESTION.search(q)


def yes_no(question: str, evidence: str) -> YesNo | None:
    """ "Yes" or "No" when ``evidence`` (the cited sentence, or a table row read with its header) settles the
    polar ``question``; None when it is not a polar question or the evidence does not settle it."""
    if not is_polar(question):
        return None
    numbers = {_norm_number(n) for n in _NUMBER.findall(question)}
    if numbers - {_norm_number(n) for n in _NUMBER.findall(evidence)}:
        return None  # "Is the Porto cap 140 EUR?" against "110 EUR": the quote answers, a label would mislead
    asked = _content(question, skip_first=True)
    if not asked or asked - _content(evidence) - _PREDICATES:
        return None  # the evidence is not about every thing the question names
    cells = {m.group(1).lower() for m in _CELL.finditer(evidence)}
    if cells:
        if cells <= {"yes", "true", "y"}:
            return "Yes"
        if cells <= {"no", "false", "n"}:
            return "No"
        return None  # a row saying both: let the quote speak
    text = _NOT_ONLY.sub(" ", evidence)
    negations = len(_NEGATION.findall(text))
    if negations == 0:
        return "Yes"
    if negations == 1:
        return "No"
    return None  # "not ... unless not ...": too subtle to label


def _content(text: str, *, skip_first: bool = False) -> set[str]:
    ws = words(text)
    if skip_first:
        ws = ws[1:]  # the auxiliary verb
    return {stem(w) for w in ws if w not in STOPWORDS and not w.isdigit()}


def _norm_number(n: str) -> str:
    return n.replace(",", ".").rstrip("0").rstrip(".") if "." in n or "," in n else n
