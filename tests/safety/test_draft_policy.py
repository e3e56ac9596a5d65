"""Answer rules that see the draft and the passages it cites (answer_matches / evidence_matches), end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether import Tether
from tether.config import default_yaml
from tether.errors import ConfigError
from tether.tools import Policy, PolicyContext

DOCS = {
    "pay.txt": "Salaries are paid on the 25th of each month by bank transfer.\n",
    "vendor.txt": (
        "Our vendor portal is open from 8:00 to 17:00 on weekdays. "
        "Invoices above 10,000 EUR need a purchase order number.\n"
    ),
    "garden.md": "# Garden\n\nTomatoes need six hours of sun and deep, infrequent watering.\n",
}
POLICY = """version: 1
default: allow
rules:
  - id: no-amounts-over-chat
    on: answer
    when: {answer_matches: "\\\\d[\\\\d,.]* ?EUR"}
    action: require_approval
  - id: vendor-texts-are-internal
    on: answer
    when: {evidence_matches: "vendor portal"}
    action: deny
"""


def _tether(tmp_path: Path, policy: str = POLICY, audit: bool = True) -> Tether:
    (tmp_path / "docs").mkdir()
    for name, text in DOCS.items():
        (tmp_path / "docs" / name).write_text(text, encoding="utf-8")
    (tmp_path / "policy.yaml").write_text(policy, encoding="utf-8")
    yaml = default_yaml().replace("  path: null                    # policy YAML", "  path: policy.yaml  # policy YAML")
    if audit:
        yaml = yaml.replace("audit:\n  enabled: false", "audit:\n  enabled: true")
    (tmp_path / "tether.yaml").write_text(yaml, encoding="utf-8")
    t = Tether.open(tmp_path / "tether.yaml")
    t.ingest([tmp_path / "docs"])
    return t


def test_a_rule_on_the_evidence_withholds_an_answer_drawn_from_it(tmp_path: Path) -> None:
    t = _tether(tmp_path)
    a = t.ask("When is the vendor portal open?")
    assert a.abstained and a.text == "Withheld by policy." and "vendor-texts-are-internal" in a.reason
    assert not a.citations  # the drafted quote is not returned
    ok = t.ask("How much sun do tomatoes need?")
    assert not ok.abstained and "six hours" in ok.text


def test_a_rule_on_the_drafted_answer_sees_what_the_question_does_not_say(tmp_path: Path) -> None:
    t = _tether(tmp_path, POLICY.replace("vendor portal", "no such text"))
    a = t.ask("Which invoices need a purchase order number?")  # no amount asked; the draft names one
    assert a.abstained and a.text == "Withheld: this answer needs approval." and "no-amounts-over-chat" in a.reason


def test_the_refusal_after_drafting_is_audited(tmp_path: Path) -> None:
    t = _tether(tmp_path)
    t.ask("When is the vendor portal open?")
    from tether.guard import AuditLog

    t.close()
    with AuditLog.open(t.settings.root / t.settings.audit.path, read_only=True) as log:
        entries = list(log.entries())
    assert entries and entries[-1].kind == "refusal"
    assert "vendor-texts-are-internal" in str(entries[-1].payload)


def test_draft_conditions_are_checked_when_the_file_loads(tmp_path: Path) -> None:
    head = "version: 1\ndefault: allow\nrules:\n  - id: r\n"
    bad = head + "    on: answer\n    when: {evidence_matches: '('}\n    action: deny\n"
    (tmp_path / "p.yaml").write_text(bad)
    with pytest.raises(ConfigError, match="evidence_matches is not a valid regular expression"):
        Policy.load(tmp_path / "p.yaml")
    tool = head + "    tool: '*'\n    when: {answer_matches: x}\n    action: deny\n"
    (tmp_path / "q.yaml").write_text(tool)
    with pytest.raises(ConfigError, match="'answer_matches' applies to answers only"):
        Policy.load(tmp_path / "q.yaml")


def test_before_drafting_the_draft_rules_do_not_match(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(POLICY)
    policy = Policy.load(tmp_path / "p.yaml")
    before = policy.decide(PolicyContext(on="answer", text="When is the vendor portal open?"))
    assert before.action == "allow"
    after = policy.decide(
        PolicyContext(
            on="answer",
            text="When is the vendor portal open?",
            draft=True,
            answer="Our vendor portal is open from 8:00 to 17:00 on weekdays. [1]",
            evidence=[DOCS["vendor.txt"]],
        )
    )
    assert after.action == "deny" and after.rule == "vendor-texts-are-internal"


def test_a_draft_rule_that_cannot_be_evaluated_denies(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(POLICY)
    policy = Policy.load(tmp_path / "p.yaml")
    weird = PolicyContext.model_construct(
        on="answer", text="q", draft=True, answer=None, evidence=[], role="user", classification="internal"
    )
    d = policy.decide(weird)  # type: ignore[arg-type]
    assert d.action == "deny" and "could not be evaluated" in d.reason
