"""PII and secrets: found by pattern and checked, and never written to traces or the audit log."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether import Tether
from tether.guard import AuditLog
from tether.safety import PatternRedactor, redact_json, redact_text

EMAIL = "jane.roe@example.org"
SSN = "536-22-8726"
IBAN = "DE89 3704 0044 0532 0130 00"
CARD = "4111 1111 1111 1111"
KEY = "AKIAIOSFODNN7EXAMPLE"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (f"write to {EMAIL} today", "EMAIL_ADDRESS"),
        (f"SSN {SSN}.", "US_SSN"),
        (f"pay to {IBAN} now", "IBAN_CODE"),
        ("pay to gb42nawi04454264788619 now", "IBAN_CODE"),
        (f"card {CARD}", "CREDIT_CARD"),
        ("card 3782 822463 10005", "CREDIT_CARD"),
        ("call +1 (415) 555-2671", "PHONE_NUMBER"),
        ("call +41 (0)96 471 07 95", "PHONE_NUMBER"),
        ("host 10.20.30.40 is down", "IP_ADDRESS"),
        (f"aws key {KEY}", "API_KEY"),
        ("token ghp_" + "a1B2" * 9, "API_KEY"),
        ("password = hunter2-correct-horse", "SECRET"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "PRIVATE_KEY"),
    ],
)
def test_each_kind_is_found(text: str, kind: str) -> None:
    assert [s.kind for s in PatternRedactor().find(text)] == [kind]
    assert f"<{kind}>" in redact_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112",  # fails the Luhn check
        "pay to DE89 3704 0044 0532 0130 01",  # fails the IBAN checksum
        "SSN 000-12-3456 and 666-12-3456",  # never issued
        "paid $2,099.00 on 2023-05-11 at 14:30",
        "version 3.8.18, section 4.2.1, 15 days",
        "run 20261207-164900-a1b2c3, event b970ca9b93844f77894eb4cecad6aaff",
        "host 999.1.1.1 is not an address",
        "the token limit is 4096",
    ],
)
def test_near_misses_are_left_alone(text: str) -> None:
    assert PatternRedactor().find(text) == []
    assert redact_text(text) == text


def test_json_values_are_redacted_and_keys_kept() -> None:
    got = redact_json({"to": EMAIL, "rows": [{"iban": IBAN, "amount": 900}], "ok": True})
    assert got == {"to": "<EMAIL_ADDRESS>", "rows": [{"iban": "<IBAN_CODE>", "amount": 900}], "ok": True}


def _raw(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*") if p.is_file())


def test_traces_never_hold_pii_from_questions_or_documents(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "hr.md").write_text(
        f"# Payroll\n\nQuestions about payroll go to {EMAIL}.\n\nThe test employee's SSN is {SSN}.\n"
    )
    (tmp_path / "tether.yaml").write_text("{}\n")
    t = Tether.open(tmp_path / "tether.yaml")
    t.ingest([tmp_path / "docs"])
    a = t.ask(f"Who should {EMAIL} contact about payroll questions?")
    assert EMAIL in a.question  # the caller gets what it asked and what the documents say
    trace_db = t.settings.root / t.settings.tracing.path
    t.close()
    raw = _raw(trace_db)
    assert raw, "the trace store was written"
    for secret in (EMAIL, SSN):
        assert secret.encode() not in raw
    assert b"<EMAIL_ADDRESS>" in raw


def test_the_audit_log_never_holds_pii_and_its_chain_verifies(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    with AuditLog.open(path) as log:
        entry = log.append("tool_call", "clerk", {"tool": "pay", "args": {"iban": IBAN, "note": f"mail {EMAIL}"}})
        assert entry.payload["args"] == {"iban": "<IBAN_CODE>", "note": "mail <EMAIL_ADDRESS>"}
        assert log.verify().ok
    raw = _raw(path)
    assert IBAN.encode() not in raw and EMAIL.encode() not in raw


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("DB_PASSWORD=kestrel5779#Orbit", "DB_"),
        ("export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "export AWS_"),
        ("GITLAB_TOKEN: glpat-Ab3dEf6hIj9kLm2nOp5q", "GITLAB_"),
    ],
)
def test_secrets_in_environment_variable_names_are_redacted(text: str, kept: str) -> None:
    out = redact_text(text)
    assert out.startswith(kept) and "<" in out and text.split("=")[-1].split(": ")[-1] not in out


def test_token_counts_are_not_secrets() -> None:
    for text in ("max_tokens=600", "completion_tokens: 12345678", "my_token_count = 12"):
        assert redact_text(text) == text


# random uuid4 hex ids that passed the IBAN checksum before IBAN lengths were checked per country
HEX_IDS = ["da7612271b544da1b95188ef4d537d46", "ce797c4ec2be41b49484956a84436d74", "fc68a77c9224497e89f91f5dd8bc9fbb"]


@pytest.mark.parametrize("ident", HEX_IDS)
def test_hex_identifiers_are_not_ibans(ident: str) -> None:
    assert redact_text(ident) == ident
    assert redact_text(f"run {ident} done") == f"run {ident} done"


def test_identifier_keys_are_kept_exact_in_json() -> None:
    got = redact_json({"event": "GB82WEST12345698765432", "run_id": "x", "note": "GB82WEST12345698765432"})
    assert got == {"event": "GB82WEST12345698765432", "run_id": "x", "note": "<IBAN_CODE>"}


def test_an_audit_entry_keeps_its_event_id(tmp_path: Path) -> None:
    from tether.guard import AuditLog

    log = AuditLog.open(tmp_path / "audit.db")
    log.append("tool_result", "ana", {"event": "da7612271b544da1b95188ef4d537d46", "iban": "DE89370400440532013000"})
    (entry,) = list(log.entries())
    assert entry.payload["event"] == "da7612271b544da1b95188ef4d537d46" and entry.payload["iban"] == "<IBAN_CODE>"
