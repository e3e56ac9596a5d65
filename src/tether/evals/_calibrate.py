"""Pick the support threshold from a team's own eval cases: the operating curve and the point on it.

Every single-question case is asked once with the threshold at 0, so each has its best evidence's support
score and the answer Tether would give. An answerable case (``expect_abstain: false``, or expectations such
as ``must_include`` / ``must_cite``) is right at threshold t when its support reaches t and that answer passes
its checks; an unanswerable one (``expect_abstain: true``) is right when its support stays below t. Sweeping t
gives the curve; the chosen point maximises balanced accuracy (or, with ``min_precision``, answers the most
questions while the answers given stay that precise).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field

from tether._api import Tether
from tether.errors import DataError
from tether.evals._cases import EvalCase
from tether.evals._scorers import OfflineSupportJudge, ScoreContext, score_answer


class CaseOutcome(BaseModel):
    """One case at threshold 0: its support, and whether its answer would be right if given."""

    case_id: str
    answerable: bool
    support: float
    answer_passes: bool = Field(description="answerable: the threshold-0 answer passes the case's checks")
    reason: str = ""


class CurvePoint(BaseModel):
    threshold: float
    answered: float = Field(description="share of answerable cases answered")
    answered_right: float = Field(description="share of answerable cases answered and right")
    abstained_unanswerable: float = Field(description="share of unanswerable cases abstained on")
    precision: float = Field(description="right answers among all answers given (1.0 when none is given)")
    balanced: float = Field(description="mean of answered_right and abstained_unanswerable")


class Calibration(BaseModel):
    cases: int
    answerable: int
    unanswerable: int
    skipped: list[str] = Field(default_factory=list, description="case ids not used, with why")
    objective: str
    current: CurvePoint
    chosen: CurvePoint | None = Field(description="None when no point meets min_precision")
    curve: list[CurvePoint]
    outcomes: list[CaseOutcome]


def _usable(case: EvalCase) -> tuple[bool | None, str]:
    """(answerable?, why not usable) for a case: None when it cannot calibrate a threshold."""
    if case.input.turns:
        return None, "multi-turn"
    if case.input.context_docs:
        return None, "answers from context_docs, not the index"
    exp = case.steps()[0].expected
    if exp.expect_abstain is True:
        return False, ""
    if exp.expect_abstain is False or exp.must_include or exp.must_cite or exp.regex:
        return True, ""
    return None, "no expectation that says whether an answer is right"


def case_outcomes(
    t: Tether, cases: list[EvalCase], progress: Callable[[int, int], None] | None = None
) -> tuple[list[CaseOutcome], list[str]]:
    """Ask each usable case with the threshold at 0 (``t``'s settings otherwise); the skipped ids with why."""
    settings = t.settings.model_copy(update={"answer": t.settings.answer.model_copy(update={"threshold": 0.0})})
    open_t = Tether(settings.with_root(t.settings.root))
    judge = OfflineSupportJudge()  # not asked: calibration scores no faithfulness metric
    out: list[CaseOutcome] = []
    skipped: list[str] = []
    try:
        ctx = ScoreContext(document_text=open_t.store().document_text, judge=judge)
        for i, case in enumerate(cases, 1):
            answerable, why = _usable(case)
            if answerable is None:
                skipped.append(f"{case.id}: {why}")
            else:
                step = case.steps()[0]
                a = open_t.ask(step.user)
                passes = False
                reason = ""
                if answerable and not a.abstained:
                    exp = step.expected.model_copy(update={"expect_abstain": None})
                    scores = score_answer(exp, {}, a, ctx)
                    failed = [s for s in scores if s.passed is False or s.error]
                    passes = not failed
                    reason = "; ".join(f"{s.name}: {s.reason}" for s in failed)
                elif answerable:
                    reason = a.reason
                out.append(
                    CaseOutcome(
                        case_id=case.id, answerable=answerable, support=a.support, answer_passes=passes, reason=reason
                    )
                )
            if progress is not None:
                progress(i, len(cases))
    finally:
        open_t.close()
    return out, skipped


def point(outcomes: list[CaseOutcome], threshold: float) -> CurvePoint:
    """The operating point of ``outcomes`` at ``threshold``."""
    ans = [o for o in outcomes if o.answerable]
    una = [o for o in outcomes if not o.answerable]
    answered = [o for o in ans if o.support >= threshold]
    right = [o for o in answered if o.answer_passes]
    abst = [o for o in una if o.support < threshold]
    wrong_given = len(answered) - len(right) + (len(una) - len(abst))
    given = len(right) + wrong_given
    r_ans = len(right) / len(ans) if ans else 0.0
    r_abs = len(abst) / len(una) if una else 0.0
    parts = [x for x, n in ((r_ans, ans), (r_abs, una)) if n]
    return CurvePoint(
        threshold=round(threshold, 4),
        answered=len(answered) / len(ans) if ans else 0.0,
        answered_right=r_ans,
        abstained_unanswerable=r_abs,
        precision=len(right) / given if given else 1.0,
        balanced=sum(parts) / len(parts) if parts else 0.0,
    )


def _thresholds(outcomes: list[CaseOutcome]) -> list[float]:
    """Midpoints between consecutive support scores, and one below and one above them all."""
    s = sorted({round(o.support, 6) for o in outcomes})
    if not s:
        return [0.5]
    mids = [(a + b) / 2 for a, b in zip(s, s[1:], strict=False)]
    return [max(0.0, s[0] - 1e-3), *mids, min(1.0, s[-1] + 1e-3)]


def calibrate(
    outcomes: list[CaseOutcome],
    current_threshold: float,
    *,
    objective: Literal["balanced", "precision"] = "balanced",
    min_precision: float = 0.9,
    skipped: list[str] | None = None,
) -> Calibration:
    """The curve over every distinct threshold and the point ``objective`` picks.

    ``balanced``: the highest balanced accuracy (ties: the higher threshold, the cautious side).
    ``precision``: the lowest threshold whose answers are at least ``min_precision`` right (None if none is).

    Raises:
        DataError: no usable case, or answerable and unanswerable cases are not both present.
    """
    n_ans = sum(o.answerable for o in outcomes)
    n_una = len(outcomes) - n_ans
    if not n_ans or not n_una:
        raise DataError(
            f"calibration needs answerable and unanswerable cases (expect_abstain: true); got {n_ans} answerable "
            f"and {n_una} unanswerable"
        )
    curve = [point(outcomes, th) for th in _thresholds(outcomes)]
    chosen: CurvePoint | None
    if objective == "balanced":
        chosen = max(curve, key=lambda p: (round(p.balanced, 9), p.threshold))
    else:
        ok = [p for p in curve if p.precision >= min_precision and p.answered > 0]
        chosen = min(ok, key=lambda p: p.threshold) if ok else None
    return Calibration(
        cases=len(outcomes) + len(skipped or []),
        answerable=n_ans,
        unanswerable=n_una,
        skipped=list(skipped or []),
        objective=objective if objective == "balanced" else f"precision >= {min_precision:g}",
        current=point(outcomes, current_threshold),
        chosen=chosen,
        curve=curve,
        outcomes=outcomes,
    )
