"""LLM answers: quotes enforced verbatim against the sources, one stricter re-ask, abstention when nothing holds.

The model is played by a small real HTTP server on loopback (tests/conftest.py); the index, retrieval and
the HTTP client are real.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tether import Tether
from tether.answer._grounded import locate

DOC = "Expense policy\n\nReimbursements must be submitted\nwithin 30 days of travel. Hotels are capped at 200 EUR.\n"


def test_locate_matches_across_line_breaks_and_returns_the_original_span() -> None:
    span = locate("submitted within 30 days", DOC)
    assert span is not None and DOC[span[0] : span[1]] == "submitted\nwithin 30 days"
    assert locate("submitted within 60 days", DOC) is None
    assert locate("   ", DOC) is None


@pytest.fixture
def tether_llm(tmp_path: Path, model_server: Any, monkeypatch: pytest.MonkeyPatch) -> Tether:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "policy.md").write_text(DOC)
    (tmp_path / "tether.yaml").write_text("answer: {mode: llm}\njudge: {kind: llm}\n")
    monkeypatch.setenv("TETHER_LLM_URL", model_server.url)
    monkeypatch.setenv("TETHER_LLM_MODEL", "writer")
    t = Tether.open(tmp_path / "tether.yaml")
    t.ingest([tmp_path / "docs"])
    return t


def reply(answer: str, claims: list[dict[str, Any]]) -> str:
    return json.dumps({"answer": answer, "claims": claims})


def verdict(label: str, reason: str = "r") -> str:
    return json.dumps({"label": label, "reason": reason})


def test_valid_quotes_become_exact_citations(tether_llm: Tether, model_server: Any) -> None:
    model_server.script = [
        model_server.reply(
            reply(
                "Within 30 days.",
                [
                    {
                        "text": "Claims are due within 30 days.",
                        "citations": [{"source": 1, "quote": "submitted within 30 days"}],
                    }
                ],
            )
        ),
        model_server.reply(verdict("SUPPORTED")),
    ]
    a = tether_llm.ask("When must I submit a reimbursement?")
    assert not a.abstained and a.text == "Claims are due within 30 days. [1]"
    c = a.citations[0]
    assert tether_llm.store().document_text(c.doc_id)[c.start : c.end] == c.quote == "submitted\nwithin 30 days"
    sent = next(e for e in a.trace if e.stage == "generate#1").detail["prompt"]
    assert "<<source 1 id=" in sent[1]["content"] and "Hotels\u02c6are\u02c6capped" in sent[1]["content"]  # traced


def test_an_invented_quote_is_dropped_and_the_model_is_asked_again_strictly(
    tether_llm: Tether, model_server: Any
) -> None:
    model_server.script = [
        model_server.reply(
            reply("60 days", [{"text": "You have 60 days.", "citations": [{"source": 1, "quote": "within 60 days"}]}])
        ),
        model_server.reply(
            reply("30 days", [{"text": "You have 30 days.", "citations": [{"source": 1, "quote": "within 30 days"}]}])
        ),
        model_server.reply(verdict("SUPPORTED")),
    ]
    a = tether_llm.ask("How long do I have?")
    assert not a.abstained and "30 days" in a.text and "60" not in a.text
    retry = model_server.requests[1]["messages"][-1]["content"]
    assert "'within 60 days' is not in source [1]" in retry and "copied exactly" in retry


def test_nothing_grounded_after_the_re_ask_means_abstention(tether_llm: Tether, model_server: Any) -> None:
    model_server.script = [
        model_server.reply(reply("Yes", [{"text": "Flights are free.", "citations": [{"source": 3, "quote": "free"}]}]))
    ]
    a = tether_llm.ask("Are flights free?")
    assert a.abstained and a.text == "Not in the documents." and "no claim could be grounded" in a.reason
    assert len(model_server.requests) == 2


def test_an_empty_claim_list_is_an_honest_abstention(tether_llm: Tether, model_server: Any) -> None:
    model_server.script = [model_server.reply(reply("", []))]
    assert tether_llm.ask("What is the CEO's name?").abstained


def test_the_verifier_removes_unsupported_claims_and_abstains_when_none_is_left(
    tether_llm: Tether, model_server: Any
) -> None:
    two = reply(
        "30 days, 200 EUR",
        [
            {"text": "Claims are due within 30 days.", "citations": [{"source": 1, "quote": "within 30 days"}]},
            {"text": "Hotels are always free.", "citations": [{"source": 1, "quote": "Hotels are capped at 200 EUR"}]},
        ],
    )
    model_server.script = [
        model_server.reply(two),
        model_server.reply(verdict("SUPPORTED")),
        model_server.reply(verdict("CONTRADICTED", "the cap is 200 EUR")),
    ]
    a = tether_llm.ask("What are the rules?")
    assert not a.abstained and "30 days" in a.text and "free" not in a.text
    checks = next(e for e in a.trace if e.stage == "verify").detail["verdicts"]
    assert [v["label"] for v in checks] == ["SUPPORTED", "CONTRADICTED"]

    model_server.requests.clear()
    model_server.script = [model_server.reply(two), model_server.reply("not json")]
    b = tether_llm.ask("What are the rules, again?")
    assert b.abstained and "verified" in b.reason  # an unreadable check never keeps a claim


def _answer_yaml(tmp_path: Path, extra: str) -> None:
    (tmp_path / "tether.yaml").write_text(f"answer: {{mode: llm, {extra}}}\njudge: {{kind: llm}}\n")


def test_best_of_n_samples_drafts_and_keeps_the_one_the_judge_supports_most(
    tether_llm: Tether, model_server: Any, tmp_path: Path
) -> None:
    _answer_yaml(tmp_path, "compute: {strategy: best_of_n, n: 2, temperature: 0.9}")
    t = Tether.open(tmp_path / "tether.yaml")
    one = reply(
        "30 days", [{"text": "Claims are due within 30 days.", "citations": [{"source": 1, "quote": "within 30 days"}]}]
    )
    two = reply(
        "30 days and 200 EUR",
        [
            {"text": "Claims are due within 30 days.", "citations": [{"source": 1, "quote": "within 30 days"}]},
            {"text": "Hotels are capped at 200 EUR.", "citations": [{"source": 1, "quote": "capped at 200 EUR"}]},
        ],
    )
    model_server.requests.clear()
    model_server.script = [
        model_server.reply(one),
        model_server.reply(verdict("SUPPORTED")),
        model_server.reply(two),
        model_server.reply(verdict("SUPPORTED")),
        model_server.reply(verdict("SUPPORTED")),
    ]
    a = t.ask("What are the rules?")
    assert not a.abstained and "200 EUR" in a.text and len(a.citations) == 2  # the second draft won
    drafts = [r for r in model_server.requests if "claims" in json.dumps(r.get("response_format", {}))]
    assert len(drafts) == 2 and all(r["temperature"] == 0.9 for r in drafts)
    compute = next(e for e in a.trace if e.stage == "compute").detail
    assert compute["chosen"] == 1 and [d["supported_claims"] for d in compute["drafts"]] == [1, 2]


def test_the_call_budget_stops_sampling_and_says_so(tether_llm: Tether, model_server: Any, tmp_path: Path) -> None:
    _answer_yaml(tmp_path, "compute: {strategy: best_of_n, n: 5, max_calls: 2}")
    t = Tether.open(tmp_path / "tether.yaml")
    one = reply(
        "30 days", [{"text": "Claims are due within 30 days.", "citations": [{"source": 1, "quote": "within 30 days"}]}]
    )
    model_server.requests.clear()
    model_server.script = [model_server.reply(one), model_server.reply(verdict("SUPPORTED"))]
    a = t.ask("When?")
    assert not a.abstained
    drafts = [r for r in model_server.requests if "claims" in json.dumps(r.get("response_format", {}))]
    assert len(drafts) == 2  # 5 asked for, the budget allowed 2
    assert any(e.stage == "budget" and "call budget spent (2/2)" in e.detail["reason"] for e in a.trace)


def test_critique_then_revise_replaces_an_unsupported_draft(
    tether_llm: Tether, model_server: Any, tmp_path: Path
) -> None:
    _answer_yaml(tmp_path, "compute: {strategy: critique_revise, rounds: 2}")
    t = Tether.open(tmp_path / "tether.yaml")
    wrong = reply(
        "free", [{"text": "Hotels are free.", "citations": [{"source": 1, "quote": "Hotels are capped at 200 EUR"}]}]
    )
    fixed = reply(
        "200 EUR",
        [{"text": "Hotels are capped at 200 EUR.", "citations": [{"source": 1, "quote": "capped at 200 EUR"}]}],
    )
    model_server.requests.clear()
    model_server.script = [
        model_server.reply(wrong),
        model_server.reply(verdict("CONTRADICTED", "capped, not free")),
        model_server.reply("- 'Hotels are free' is not what the quote says: it says capped at 200 EUR"),
        model_server.reply(fixed),
        model_server.reply(verdict("SUPPORTED")),
        model_server.reply("OK"),
    ]
    a = t.ask("What about hotels?")
    assert not a.abstained and a.text.startswith("Hotels are capped at 200 EUR.")
    revise = model_server.requests[3]["messages"]
    assert "capped at 200 EUR" in revise[-2]["content"] and "Revise your answer" in revise[-1]["content"]
    stages = [e.stage for e in a.trace]
    assert "critique#1" in stages and "generate-revise1#1" in stages and "critique#2" in stages
    assert "generate-revise2#1" not in stages  # the second critique found nothing: no second revision


def test_the_learned_judge_is_the_offline_default(
    tmp_path: Path, model_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "policy.md").write_text(DOC)
    (tmp_path / "tether.yaml").write_text("answer: {mode: llm}\n")
    monkeypatch.setenv("TETHER_LLM_URL", model_server.url)
    t = Tether.open(tmp_path / "tether.yaml")
    t.ingest([tmp_path / "docs"])
    model_server.script = [
        model_server.reply(
            reply(
                "x",
                [
                    {
                        "text": "Reimbursements must be submitted within 30 days of travel.",
                        "citations": [
                            {"source": 1, "quote": "Reimbursements must be submitted within 30 days of travel."}
                        ],
                    },
                    {
                        "text": "The office cafeteria serves vegan sushi on Fridays.",
                        "citations": [{"source": 1, "quote": "Hotels are capped at 200 EUR."}],
                    },
                ],
            )
        )
    ]
    a = t.ask("What are the rules?")
    assert len(model_server.requests) == 1  # the judge asked no model
    verdicts = next(e for e in a.trace if e.stage == "verify").detail
    assert verdicts["verifier"].startswith("learned:")
    assert [v["label"] for v in verdicts["verdicts"]] == ["SUPPORTED", "UNSUPPORTED"]
    assert not a.abstained and "30 days" in a.text and "sushi" not in a.text


def test_the_money_budget_stops_sampling_at_the_endpoints_prices(
    tether_llm: Tether, model_server: Any, tmp_path: Path
) -> None:
    # every reply of the test server reports 50 prompt + 10 completion tokens: 0.05 + 0.02 = 0.07 a draft
    (tmp_path / "tether.yaml").write_text(
        "answer: {mode: llm, compute: {strategy: best_of_n, n: 5, max_cost: 0.1}}\njudge: {kind: llm}\n"
        "llm: {price_in_per_1k: 1.0, price_out_per_1k: 2.0}\n"
    )
    t = Tether.open(tmp_path / "tether.yaml")
    one = reply(
        "30 days", [{"text": "Claims are due within 30 days.", "citations": [{"source": 1, "quote": "within 30 days"}]}]
    )
    model_server.requests.clear()
    model_server.script = [model_server.reply(one), model_server.reply(verdict("SUPPORTED"))]
    a = t.ask("When?")
    assert not a.abstained
    drafts = [r for r in model_server.requests if "claims" in json.dumps(r.get("response_format", {}))]
    assert len(drafts) == 2  # 0.07 < 0.1 after one; 0.14 after two
    assert any(e.stage == "budget" and "money budget spent (0.1400/0.1)" in e.detail["reason"] for e in a.trace)
