"""Typed results of an eval run: scores per turn, per case, and the run summary."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from tether.contracts import Answer


class Score(BaseModel):
    """One check of one answer. ``passed`` is None when the check did not apply (``reason`` says why)."""

    name: str
    scorer: str
    value: float = 0.0
    passed: bool | None = None
    reason: str = ""
    judge: str | None = Field(None, description="which judge scored (llm_judge metrics only)")
    error: bool = Field(False, description="the scorer itself failed (e.g. an unparseable judge reply)")
    tokens: int = Field(0, description="model tokens the scorer spent (LLM judge)")


class TurnResult(BaseModel):
    question: str
    standalone: str | None = Field(None, description="what was asked: the turn rewritten from the conversation")
    answer: Answer | None = None
    error: str | None = None
    latency_ms: float = 0.0
    model_calls: int = 0
    tokens: int = 0
    cached: bool = False
    scores: list[Score] = Field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.error is None and all(s.passed is not False and not s.error for s in self.scores)


class CaseResult(BaseModel):
    case_id: str
    repeat: int = 0
    tags: list[str] = Field(default_factory=list)
    source: str = ""
    flaky: bool = Field(False, description="the case is marked flaky: its regression alone does not fail the gate")
    turns: list[TurnResult] = Field(default_factory=list)
    error: str | None = None
    latency_ms: float = 0.0

    @property
    def passed(self) -> bool:
        """No error, every turn passed, and at least one check applied (a case that checked nothing fails)."""
        checked = any(s.passed is not None for t in self.turns for s in t.scores)
        return self.error is None and bool(self.turns) and checked and all(t.passed for t in self.turns)

    def explain(self) -> str:
        """Why the case failed, one line per failed check (for assertion messages)."""
        lines = [f"case {self.case_id}: error: {self.error}"] if self.error else []
        if not self.error and self.turns and not any(s.passed is not None for t in self.turns for s in t.scores):
            lines.append(f"case {self.case_id}: no check applied to any answer")
        for t in self.turns:
            if t.error:
                lines.append(f"{t.question!r}: error: {t.error}")
            for s in t.scores:
                if s.passed is False or s.error:
                    lines.append(f"{t.question!r}: {s.name}: {s.reason}")
            if t.answer is not None and not t.passed:
                lines.append(f"  answer: {t.answer.text[:300]}")
        return "\n".join(lines) or f"case {self.case_id}: passed"


class RunSummary(BaseModel):
    run_id: str
    created: datetime
    cases_path: str
    config_hash: str
    models: dict[str, str]
    judge: str
    repeats: int
    cases: int
    passed: int
    errors: int
    pass_rate: float
    pass_at_n: float = Field(description="share of cases passing in at least one of the repeats")
    pass_all_n: float = Field(description="pass^N: share of cases passing in every repeat")
    per_tag: dict[str, float] = Field(default_factory=dict)
    per_metric: dict[str, float] = Field(default_factory=dict)
    scorer_errors: int = 0
    latency_p50_ms: float = 0.0
    latency_p95_ms: float = 0.0
    model_calls: int = 0
    tokens: int = 0
    cached_turns: int = 0
    seconds: float = 0.0


class RunReport(BaseModel):
    summary: RunSummary
    results: list[CaseResult]
