"""Each scorer on hand-built answers: passes what it should, fails what it should, skips what it must."""

from __future__ import annotations

from tether.contracts import Answer, Citation
from tether.evals import Expected, OfflineSupportJudge, ScoreContext
from tether.evals._scorers import SCORERS, score_answer

DOC = "Company Travel Policy v3.2\n\nReimbursements must be submitted within 30 days of travel."
QUOTE = "Reimbursements must be submitted within 30 days of travel."


def answer(text: str = QUOTE + " [1]", *, abstained: bool = False, support: float = 0.9, quote: str = QUOTE) -> Answer:
    start = DOC.find(quote)
    cites = (
        []
        if abstained
        else [
            Citation(
                n=1,
                doc_id=1,
                path="/docs/01-company-travel-policy.txt",
                title="01-company-travel-policy",
                section=[],
                start=start,
                end=start + len(quote),
                quote=quote,
            )
        ]
    )
    return Answer(
        question="q", text=text, abstained=abstained, citations=cites, support=support, threshold=0.6, config_hash="h"
    )


def ctx() -> ScoreContext:
    docs = {1: DOC}
    return ScoreContext(document_text=lambda i: docs[i], judge=OfflineSupportJudge())


def test_must_include_and_must_not_include_compare_normalised_text() -> None:
    ok = SCORERS["must_include"](Expected(must_include=["30  DAYS"]), answer(), ctx())
    bad = SCORERS["must_include"](Expected(must_include=["60 days", "30 days"]), answer(), ctx())
    assert ok is not None and ok.passed
    assert bad is not None and not bad.passed and bad.value == 0.5 and "60 days" in bad.reason
    forbidden = SCORERS["must_not_include"](Expected(must_not_include=["within 30"]), answer(), ctx())
    assert forbidden is not None and not forbidden.passed


def test_must_cite_matches_a_cited_documents_first_line_or_file_name() -> None:
    by_title = SCORERS["must_cite"](Expected(must_cite=["Company Travel Policy v3.2"]), answer(), ctx())
    by_file = SCORERS["must_cite"](Expected(must_cite=["company-travel-policy"]), answer(), ctx())
    other = SCORERS["must_cite"](Expected(must_cite=["Expense Handbook"]), answer(), ctx())
    assert by_title is not None and by_title.passed
    assert by_file is not None and by_file.passed
    assert other is not None and not other.passed


def test_citations_valid_catches_a_quote_that_is_not_at_its_offsets() -> None:
    good = SCORERS["citations_valid"](Expected(), answer(), ctx())
    forged = answer()
    forged.citations[0] = forged.citations[0].model_copy(update={"quote": "Reimbursements are guaranteed."})
    bad = SCORERS["citations_valid"](Expected(), forged, ctx())
    assert good is not None and good.passed
    assert bad is not None and not bad.passed and "not found" in bad.reason


def test_abstention_is_scored_against_the_expectation() -> None:
    refused = answer("Not in the documents.", abstained=True, support=0.1)
    assert SCORERS["abstention"](Expected(expect_abstain=True), refused, ctx()).passed  # type: ignore[union-attr]
    assert not SCORERS["abstention"](Expected(expect_abstain=True), answer(), ctx()).passed  # type: ignore[union-attr]
    # a case that expects content expects an answer
    assert not SCORERS["abstention"](Expected(must_include=["x"]), refused, ctx()).passed  # type: ignore[union-attr]
    assert SCORERS["abstention"](Expected(), answer(), ctx()) is None


def test_json_schema_validates_structure_and_skips_without_a_schema() -> None:
    schema = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}
    assert SCORERS["json_schema"](Expected(json_schema=schema), answer('{"answer": "30 days"}'), ctx()).passed  # type: ignore[union-attr]
    wrong = SCORERS["json_schema"](Expected(json_schema=schema), answer('{"answer": 30}'), ctx())
    assert wrong is not None and not wrong.passed and "answer" in wrong.reason
    not_json = SCORERS["json_schema"](Expected(json_schema=schema), answer("thirty days"), ctx())
    assert not_json is not None and not not_json.passed and "not JSON" in not_json.reason
    skipped = SCORERS["json_schema"](Expected(), answer(), ctx())
    assert skipped is not None and skipped.passed is None and "no json_schema" in skipped.reason


def test_the_offline_judge_names_itself_and_needs_valid_quotes_and_support() -> None:
    judge = OfflineSupportJudge()
    good = judge.faithfulness(answer(), ctx())
    weak = judge.faithfulness(answer(support=0.2), ctx())
    assert good.passed and good.judge == "offline-support-checker"
    assert not weak.passed and "below" not in weak.reason and "<" in weak.reason


def test_scoring_names_metrics_and_a_broken_scorer_is_a_counted_error() -> None:
    scores = score_answer(
        Expected(must_include=["30 days"], json_schema={"type": "nonsense-type"}),
        {"faithfulness": "llm_judge", "format_valid": "json_schema"},
        answer('{"a": 1}'),
        ctx(),
    )
    by_name = {s.name: s for s in scores}
    assert by_name["faithfulness"].judge == "offline-support-checker"
    assert by_name["format_valid"].error  # an invalid schema is a scorer error, not a pass
    assert by_name["format_valid"].passed is not True
    from tether.evals import TurnResult

    assert not TurnResult(question="q", scores=scores).passed
