"""PII redaction at ingest (ingest.redact_pii) and in answers by role (safety.pii.answers), as an attacker probes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether import Tether
from tether.config import default_yaml
from tether.contracts import Block, ParsedDocument
from tether.safety import PatternRedactor, PiiSpan, redact_parsed

HR = (
    "# Payroll record\n\nEmployee Dana Whitfield is paid by transfer to IBAN GB82 WEST 1234 5698 7654 32 "
    "every month.\n\n"
    "Her social security number is 536-22-8726 and her corporate card is 4111 1111 1111 1111.\n"
)
GARDEN = "Tomatoes need six hours of sun. The shed key code is 4111 1111 1111 1111 for the test.\n"


def test_redacted_blocks_point_at_the_same_content() -> None:
    text = "Call +44 20 7946 0958 now.\n\nMail a@example.com or b@example.org today.\n"
    cut = text.index("\n\n") + 2
    parsed = ParsedDocument(
        text=text,
        title="Contact a@example.com",
        blocks=[
            Block(start=0, end=cut - 2, kind="paragraph", section=["Reach b@example.org"]),
            Block(start=cut, end=len(text) - 1, kind="paragraph"),
        ],
    )
    red, spans = redact_parsed(parsed)
    assert [s.kind for s in spans] == ["PHONE_NUMBER", "EMAIL_ADDRESS", "EMAIL_ADDRESS"]
    assert red.text == "Call <PHONE_NUMBER> now.\n\nMail <EMAIL_ADDRESS> or <EMAIL_ADDRESS> today.\n"
    assert [red.text[b.start : b.end] for b in red.blocks] == [
        "Call <PHONE_NUMBER> now.",
        "Mail <EMAIL_ADDRESS> or <EMAIL_ADDRESS> today.",
    ]
    assert red.title == "Contact <EMAIL_ADDRESS>" and red.blocks[0].section == ["Reach <EMAIL_ADDRESS>"]


def test_a_block_edge_inside_an_entity_moves_to_the_placeholder_edge() -> None:
    text = "key 4111 1111 1111 1111 end"
    at = text.index("1111 1111 1111")  # a block that starts inside the card number
    red, _ = redact_parsed(
        ParsedDocument(text=text, title="t", blocks=[Block(start=at, end=len(text), kind="paragraph")])
    )
    b = red.blocks[0]
    assert red.text[b.start : b.end] == "<CREDIT_CARD> end"


def _tether(tmp_path: Path, extra: str = "", ingest_redact: str = "[]", answers: str = "[]") -> Tether:
    docs = tmp_path / "docs"
    (docs / "hr").mkdir(parents=True)
    (docs / "hr" / "payroll.md").write_text(HR, encoding="utf-8")
    (docs / "garden.txt").write_text(GARDEN, encoding="utf-8")
    yaml = (
        default_yaml()
        .replace("  redact_pii: []", f"  redact_pii: {ingest_redact}")
        .replace("    answers: []", f"    answers: {answers}")
    ) + extra
    (tmp_path / "tether.yaml").write_text(yaml, encoding="utf-8")
    t = Tether.open(tmp_path / "tether.yaml")
    t.ingest([docs])
    return t


def test_ingest_redaction_keeps_values_out_of_the_index_and_citations_exact(tmp_path: Path) -> None:
    t = _tether(tmp_path, ingest_redact="['hr/*']")
    raw = (tmp_path / "tether.yaml").parent / ".tether" / "index.db"
    blob = raw.read_bytes()
    assert b"536-22-8726" not in blob and b"GB82 WEST" not in blob  # not in any table, not in the FTS index
    a = t.ask("What is her social security number?")
    assert "536-22-8726" not in a.text
    for c in a.citations:
        doc = t.store().document_text(c.doc_id)
        assert doc[c.start : c.end] == c.quote and not c.redacted  # the stored text is the redacted one
    hits = t.search("IBAN transfer every month")
    payroll = [h for h in hits if h.path.endswith("payroll.md")]
    assert payroll and "<IBAN_CODE>" in payroll[0].text
    garden = [h for h in t.search("shed key code") if h.path.endswith("garden.txt")]
    assert garden and "4111 1111 1111 1111" in garden[0].text  # only the sources the globs name are redacted


def test_answers_are_redacted_for_the_named_roles_only(tmp_path: Path) -> None:
    t = _tether(tmp_path, answers="[clerk]")
    q = "What is her social security number?"
    clerk = t.ask(q, role="clerk")
    assert not clerk.abstained and "536-22-8726" not in clerk.text and "<US_SSN>" in clerk.text
    assert any("redacted for role clerk" in w for w in clerk.warnings)
    c = clerk.citations[0]
    assert c.redacted and "<US_SSN>" in c.quote
    assert t.store().document_text(c.doc_id)[c.start : c.end] != c.quote  # span kept, quote redacted
    manager = t.ask(q, role="manager")
    assert "536-22-8726" in manager.text and not manager.citations[0].redacted


def test_a_redactor_that_fails_withholds_the_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    t = _tether(tmp_path, answers="['*']")

    class Broken(PatternRedactor):
        def find(self, text: str) -> list[PiiSpan]:
            raise RuntimeError("engine down")

    monkeypatch.setattr(t, "redactor", Broken)  # the answer's redactor only; traces keep the built-in one
    a = t.ask("What is her social security number?")
    assert a.abstained and not a.citations and "536-22-8726" not in a.model_dump_json()
    assert "redaction failed" in a.reason and "engine down" in a.reason


def test_the_citation_scorer_accepts_a_redacted_quote_only_where_the_rest_is_verbatim() -> None:
    from tether.evals._scorers import _quote_matches

    span = "Her social security number is 536-22-8726 and her card is 4111 1111 1111 1111."
    red = "Her social security number is <US_SSN> and her card is <CREDIT_CARD>."
    assert _quote_matches(span, red, redacted=True)
    assert not _quote_matches(span, red, redacted=False)
    assert not _quote_matches(span, red.replace("card", "loan"), redacted=True)  # the rest must be the source's
    assert not _quote_matches(span, span, redacted=True)  # marked redacted, yet nothing was: not a valid quote
