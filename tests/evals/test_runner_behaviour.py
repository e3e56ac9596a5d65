"""The runner as a library: the pytest recipe, retries on transient errors, timeouts, repeats, feedback drafts."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tether import Tether
from tether.config import Settings
from tether.contracts import Answer, Feedback
from tether.errors import DataError, TransientError
from tether.evals import EvalCase, EvalRunner, EvalStore, RunOptions, load_cases
from tether.evals._feedback import draft_cases, load_feedback, write_drafts

CASES_YAML = """
- id: ferry
  input:
    user: "Where does the Orinoco ferry leave from?"
    context_docs: ["The Orinoco ferry leaves the north pier at seven."]
  expected: {must_include: ["north pier"]}
- id: bread
  input:
    user: "How long should sourdough bread rise?"
    context_docs: ["The Orinoco ferry leaves the north pier at seven."]
  expect_abstain: true
"""


@pytest.fixture(scope="module")
def tether_answering_all(tmp_path_factory: pytest.TempPathFactory) -> Tether:
    root = tmp_path_factory.mktemp("t")
    settings = Settings.model_validate({"answer": {"threshold": 0.1}}).with_root(root)
    return Tether(settings)


@pytest.fixture
def cases(tmp_path: Path) -> list[EvalCase]:
    p = tmp_path / "cases.yaml"
    p.write_text(CASES_YAML, encoding="utf-8")
    return load_cases(p)


def test_the_documented_pytest_recipe_runs_one_case_and_explains_failures(
    tether_answering_all: Tether, cases: list[EvalCase]
) -> None:
    runner = EvalRunner(tether_answering_all)
    by_id = {c.id: c for c in cases}
    ok = runner.run_case(by_id["ferry"])
    assert ok.passed, ok.explain()
    wrong = by_id["ferry"].model_copy(deep=True)
    wrong.expected.must_include = ["south gate"]
    bad = runner.run_case(wrong)
    assert not bad.passed
    assert "must_include: missing: 'south gate'" in bad.explain()


def test_transient_errors_are_retried_with_backoff_then_succeed(
    tether_answering_all: Tether, cases: list[EvalCase], monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = EvalRunner(tether_answering_all, options=RunOptions(retries=2, use_cache=False))
    target = runner._target(cases[0])
    real_ask = target.ask
    calls: list[float] = []

    def flaky(question: str, **kw: object) -> Answer:  # stands in for a model server's 503: not causable offline
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise TransientError("503 from the model server")
        return real_ask(question)

    monkeypatch.setattr(target, "ask", flaky)
    result = runner.run_case(cases[0])
    assert result.passed, result.explain()
    assert len(calls) == 3
    assert calls[2] - calls[1] > calls[1] - calls[0] > 0.4  # backoff grows


def test_retries_give_up_with_the_error_recorded(
    tether_answering_all: Tether, cases: list[EvalCase], monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = EvalRunner(tether_answering_all, options=RunOptions(retries=0, use_cache=False))
    target = runner._target(cases[0])

    def down(question: str, **kw: object) -> Answer:
        raise TransientError("model server unreachable at http://127.0.0.1:9")

    monkeypatch.setattr(target, "ask", down)
    result = runner.run_case(cases[0])
    assert not result.passed and "unreachable" in result.turns[0].error  # type: ignore[operator]


def test_a_case_past_its_timeout_is_an_error_and_the_run_goes_on(
    tether_answering_all: Tether, cases: list[EvalCase], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    runner = EvalRunner(
        tether_answering_all, EvalStore(tmp_path / "e.db"), RunOptions(timeout_s=0.5, use_cache=False, concurrency=2)
    )
    slow_target = runner._target(cases[0])
    real_ask = slow_target.ask

    def slow(question: str, **kw: object) -> Answer:
        if "ferry" in question:
            time.sleep(2.0)
        return real_ask(question)

    monkeypatch.setattr(slow_target, "ask", slow)
    report = runner.run(cases, "cases.yaml")
    by_id = {r.case_id: r for r in report.results}
    assert by_id["ferry"].error is not None and "timed out" in by_id["ferry"].error
    assert by_id["bread"].passed
    assert report.summary.errors == 1


def test_repeat_reports_pass_at_n_and_pass_all_n(
    tether_answering_all: Tether, cases: list[EvalCase], tmp_path: Path
) -> None:
    runner = EvalRunner(tether_answering_all, EvalStore(tmp_path / "e.db"), RunOptions(repeat=3))
    report = runner.run(cases, "cases.yaml")
    assert len(report.results) == 6
    assert report.summary.pass_at_n == 1.0 and report.summary.pass_all_n == 1.0
    assert report.summary.cached_turns == 0  # each repeat is its own sample
    again = runner.run(cases, "cases.yaml")
    assert again.summary.cached_turns == 6  # an unchanged re-run asks nothing


def test_feedback_thumbs_down_become_draft_cases_that_must_be_reviewed(tmp_path: Path) -> None:
    records = [
        Feedback(
            question="When do refunds close?",
            answer="Refunds close after 90 days. [1]",
            rating="down",
            reason="wrong number",
            correction="30 days",
        ),
        Feedback(
            question="Who is the CEO?",
            answer="Ada Lovelace is the CEO. [1]",
            rating="down",
            reason="not in our docs",
            expected_abstain=True,
        ),
        Feedback(
            question="Is parking free?", answer="Not in the documents.", rating="down", reason="it is in the handbook"
        ),
        Feedback(question="Fine answer", answer="ok", rating="up"),
    ]
    src = tmp_path / "feedback.jsonl"
    src.write_text("".join(r.model_dump_json() + "\n" for r in records), encoding="utf-8")
    drafts = draft_cases(load_feedback(src))
    assert len(drafts) == 3
    by_q = {d["input"]["user"]: d for d in drafts}  # type: ignore[index]
    assert by_q["When do refunds close?"]["expected"] == {  # type: ignore[index]
        "must_include": ["30 days"],
        "expect_abstain": False,
        "must_not_include": ["Refunds close after 90 days."],
    }
    assert by_q["Who is the CEO?"]["expected"] == {"expect_abstain": True}  # type: ignore[index]
    assert by_q["Is parking free?"]["expected"] == {"expect_abstain": False}  # type: ignore[index]
    out = tmp_path / "drafts.yaml"
    write_drafts(drafts, out)
    with pytest.raises(DataError, match="has not been reviewed"):
        load_cases(out)


def test_a_malformed_feedback_line_is_named(tmp_path: Path) -> None:
    src = tmp_path / "fb.jsonl"
    src.write_text(json.dumps({"question": "q", "answer": "a", "rating": "meh"}) + "\n")
    with pytest.raises(DataError, match=r"fb\.jsonl:1: not a feedback record"):
        load_feedback(src)


def test_a_multi_turn_case_scores_every_turn_against_its_own_expectations(
    tether_answering_all: Tether, tmp_path: Path
) -> None:
    p = tmp_path / "chat.yaml"
    p.write_text(
        """
id: chat
input:
  context_docs:
    - "The Orinoco ferry leaves the north pier at seven. Tickets are sold at the harbour office."
  turns:
    - user: "Where does the Orinoco ferry leave from?"
      expected: {must_include: ["north pier"]}
    - user: "Where are ferry tickets sold?"
      expected: {must_include: ["harbour office"]}
    - user: "How long should sourdough bread rise?"
      expected: {expect_abstain: true}
""",
        encoding="utf-8",
    )
    (case,) = load_cases(p)
    result = EvalRunner(tether_answering_all).run_case(case)
    assert [t.question for t in result.turns] == [s.user for s in case.steps()]
    assert [t.passed for t in result.turns] == [True, True, True], result.explain()
    assert {s.name for s in result.turns[2].scores} >= {"abstention"}


def test_a_follow_up_turn_is_asked_as_rewritten_from_the_conversation(
    tether_answering_all: Tether, tmp_path: Path
) -> None:
    p = tmp_path / "follow.yaml"
    p.write_text(
        """
id: follow
input:
  context_docs:
    - "The daily meal allowance is 40 euros in Lisbon. The daily meal allowance is 35 euros in Porto."
  turns:
    - user: "What is the daily meal allowance in Lisbon?"
      expected: {must_include: ["40 euros"]}
    - user: "and in Porto?"
      expected: {must_include: ["35 euros"]}
""",
        encoding="utf-8",
    )
    (case,) = load_cases(p)
    with_memory = EvalRunner(tether_answering_all).run_case(case)
    assert [t.standalone for t in with_memory.turns] == [
        "What is the daily meal allowance in Lisbon?",
        "What is the daily meal allowance in Porto?",
    ]
    assert [t.passed for t in with_memory.turns] == [True, True], with_memory.explain()
    alone = EvalRunner(tether_answering_all, options=RunOptions(memory=False)).run_case(case)
    assert alone.turns[1].standalone == "and in Porto?"  # asked as written: the comparison arm
