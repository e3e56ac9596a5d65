"""Each built-in stage on its own: what it reads, what it writes, what it records on its span."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tether._api import Tether
from tether.config import default_yaml
from tether.pipeline import (
    AnswerStage,
    AuditStage,
    Caller,
    PolicyStage,
    RequestState,
    RerankStage,
    RetrieveStage,
    StageContext,
)

DOCS = {
    "pay.txt": "Salaries are paid on the 25th of each month by bank transfer.\n",
    "leave.txt": "Full-time employees receive 25 days of paid annual leave per calendar year.\n",
    "garden.md": "# Garden\n\nTomatoes need six hours of sun and deep, infrequent watering.\n",
}
POLICY = """version: 1
default: allow
rules:
  - id: salary-needs-hr
    on: answer
    when: {text_matches: salar}
    action: require_approval
"""


class Span:
    def __init__(self) -> None:
        self.attrs: dict[str, Any] = {}

    def set(self, key: str, value: Any) -> None:
        self.attrs[key] = value


@pytest.fixture(scope="module")
def t(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tether]:
    root = tmp_path_factory.mktemp("stages")
    (root / "docs").mkdir()
    for name, text in DOCS.items():
        (root / "docs" / name).write_text(text, encoding="utf-8")
    (root / "policy.yaml").write_text(POLICY, encoding="utf-8")
    yaml = default_yaml().replace("  path: null                    # policy YAML", "  path: policy.yaml  # policy YAML")
    yaml = yaml.replace("audit:\n  enabled: false", "audit:\n  enabled: true")
    (root / "tether.yaml").write_text(yaml, encoding="utf-8")
    tether = Tether.open(root / "tether.yaml")
    assert tether.settings.policy.path == "policy.yaml" and tether.settings.audit.enabled
    tether.ingest([root / "docs"])
    yield tether
    tether.close()


def state(question: str, kind: str = "ask", k: int | None = None) -> RequestState:
    return RequestState(kind=kind, question=question, caller=Caller(role="user", classification="internal"), k=k)  # type: ignore[arg-type]


def ctx(t: Tether, chain: tuple[str, ...] = ("policy", "retrieve", "rerank", "answer", "audit")) -> StageContext:
    return StageContext(tether=t, chain=chain, span=Span())  # type: ignore[arg-type]


def test_policy_stage_withholds_and_names_the_rule(t: Tether) -> None:
    s, c = state("When are salaries paid?"), ctx(t)
    PolicyStage()(s, c)
    assert s.done and s.withheld and s.answer is not None and s.answer.abstained
    assert "salary-needs-hr" in s.answer.reason and s.decisions[0]["action"] == "require_approval"
    assert c.span.attrs["policy.rule"] == "salary-needs-hr"  # type: ignore[attr-defined]
    ok = state("How much sun do tomatoes need?")
    PolicyStage()(ok, ctx(t))
    assert not ok.done and ok.answer is None and ok.decisions[0]["action"] == "allow"


def test_retrieve_stage_goes_as_deep_as_the_reranker_wants_only_when_it_follows(t: Tether) -> None:
    s = state("tomatoes sun", kind="search", k=1)
    RetrieveStage()(s, ctx(t, ("retrieve", "rerank")))
    assert s.candidates == len(s.hits) == 3  # the reranker's depth (10) is more than the 3 chunks there are
    alone = state("tomatoes sun", kind="search", k=1)
    c = ctx(t, ("retrieve",))
    RetrieveStage()(alone, c)
    assert len(alone.hits) == 1 and c.span.attrs["depth"] == 1  # type: ignore[attr-defined]
    asked = state("How much sun do tomatoes need?")
    RetrieveStage()(asked, ctx(t))
    assert asked.query_vector is not None and asked.events[0].stage == "config"


def test_rerank_stage_reorders_and_cuts_to_k(t: Tether) -> None:
    s = state("How much sun do tomatoes need?", kind="search", k=2)
    RetrieveStage()(s, ctx(t, ("retrieve", "rerank")))
    c = ctx(t, ("retrieve", "rerank"))
    RerankStage()(s, c)
    assert len(s.hits) == 2 and all(h.rerank_score is not None for h in s.hits)
    assert [h.rerank_score for h in s.hits] == sorted([h.rerank_score for h in s.hits], reverse=True)  # type: ignore[type-var]
    assert s.events[-1].stage == "rerank" and c.span.attrs["model"]  # type: ignore[attr-defined]


def test_answer_stage_quotes_and_records_support(t: Tether) -> None:
    s = state("How much sun do tomatoes need?")
    for stage in (RetrieveStage(), RerankStage()):
        stage(s, ctx(t))
    c = ctx(t)
    AnswerStage()(s, c)
    assert s.answer is not None and not s.answer.abstained and "six hours of sun" in s.answer.text
    assert [e.stage for e in s.answer.trace][-2:] == ["hits", "extractive"]
    assert c.span.attrs["abstained"] is False and c.span.attrs["support"] >= c.span.attrs["threshold"]  # type: ignore[attr-defined]


def test_audit_stage_logs_answers_and_refusals(t: Tether) -> None:
    from tether.guard import verify_file

    path = t.settings.root / t.settings.audit.path
    before = verify_file(path).entries if path.exists() else 0
    refused = state("When are salaries paid?")
    PolicyStage()(refused, ctx(t))
    AuditStage()(refused, ctx(t))
    answered = state("How much sun do tomatoes need?")
    for stage in (RetrieveStage(), RerankStage(), AnswerStage(), AuditStage()):
        stage(answered, ctx(t))
    report = verify_file(path)
    assert report.ok and report.entries == before + 2
    assert AuditStage.always and not AnswerStage.always
    # a service request's entry names its tenant and user (every audit entry is someone's)
    served = state("How much sun do tomatoes need?")
    for stage in (RetrieveStage(), RerankStage(), AnswerStage()):
        stage(served, ctx(t))
    served.caller = Caller(role="user", classification="internal", tenant="acme", user="ana")
    AuditStage()(served, ctx(t))
    from tether.guard import AuditLog

    with AuditLog.open(path, read_only=True) as log:
        last = list(log.entries())[-1]
    assert last.kind == "answer" and (last.payload["tenant"], last.payload["user"]) == ("acme", "ana")
