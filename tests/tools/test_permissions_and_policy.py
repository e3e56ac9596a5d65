"""Least-privilege permissions and every kind of policy rule."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from tether.errors import ConfigError
from tether.tools import CallerProfile, Policy, PolicyContext, check_permission, tool


@tool(effects=["read"])
def read_ledger(account: str) -> float:
    """Balance of an account."""
    return 0.0


@tool(effects=["write", "irreversible"])
def pay_invoice(invoice: str, amount: float) -> str:
    """Pay an invoice."""
    return "paid"


def test_a_default_profile_may_only_read() -> None:
    clerk = CallerProfile(name="clerk")
    assert check_permission(clerk, read_ledger).allowed
    d = check_permission(clerk, pay_invoice)
    assert not d.allowed and "irreversible" in d.reason and "write" in d.reason


def test_a_tool_allowlist_narrows_even_granted_scopes() -> None:
    finance = CallerProfile(name="finance", scopes={"read", "write", "irreversible"}, tools={"pay_invoice"})
    assert check_permission(finance, pay_invoice).allowed
    assert not check_permission(finance, read_ledger).allowed


POLICY = """
version: 4
default: deny
roles: [intern, finance, user]
rules:
  - id: no-irreversible-for-interns
    when: {role: [intern], effects: [irreversible]}
    action: deny
  - id: big-payments-need-approval
    tool: pay_invoice
    when:
      args: {amount: {gt: 500}}
    action: require_approval
  - id: payments
    tool: [pay_invoice]
    action: allow
  - id: reads
    tool: read_ledger
    when:
      args: {account: {matches: "^ACC-"}}
    action: allow
  - id: secret-answers
    on: answer
    when: {classification: [secret]}
    action: deny
  - id: salary-questions
    on: answer
    when: {text_matches: "salar(y|ies)"}
    action: require_approval
  - id: custom
    on: answer
    hook: policy_hooks_for_tests:weekend_rule
"""

HOOKS = """
def weekend_rule(ctx):
    return "deny" if "weekend" in ctx.text else None
"""


@pytest.fixture
def policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Policy:
    (tmp_path / "policy_hooks_for_tests.py").write_text(HOOKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("policy_hooks_for_tests", None)
    p = tmp_path / "policy.yaml"
    p.write_text(POLICY)
    return Policy.load(p)


def call(t: object, args: dict[str, object], role: str = "finance") -> PolicyContext:
    return PolicyContext(tool=t.name, effects=sorted(t.effects), args=args, role=role)  # type: ignore[attr-defined]


def test_rules_by_role_and_effect(policy: Policy) -> None:
    d = policy.decide(call(pay_invoice, {"invoice": "I-1", "amount": 10}, role="intern"))
    assert d.action == "deny" and d.rule == "no-irreversible-for-interns"


def test_rules_by_argument_value(policy: Policy) -> None:
    assert policy.decide(call(pay_invoice, {"invoice": "I-1", "amount": 900})).action == "require_approval"
    small = policy.decide(call(pay_invoice, {"invoice": "I-1", "amount": 20}))
    assert small.action == "allow" and small.rule == "payments"
    assert policy.decide(call(read_ledger, {"account": "ACC-9"})).rule == "reads"


def test_the_default_applies_when_nothing_matches_and_says_so(policy: Policy) -> None:
    d = policy.decide(call(read_ledger, {"account": "other"}))
    assert d.action == "deny" and d.rule is None and "default" in d.reason


def test_answer_rules_by_classification_text_and_hook(policy: Policy) -> None:
    assert policy.decide(PolicyContext(on="answer", classification="secret")).rule == "secret-answers"
    assert policy.decide(PolicyContext(on="answer", text="What are the salaries?")).action == "require_approval"
    d = policy.decide(PolicyContext(on="answer", text="Who works this weekend?"))
    assert d.action == "deny" and d.rule == "custom" and "hook" in d.reason


def test_decisions_carry_the_policy_version_and_a_hash_that_follows_the_rules(policy: Policy, tmp_path: Path) -> None:
    d = policy.decide(PolicyContext(on="answer", classification="secret"))
    assert d.policy_version == "4" and d.policy_hash == policy.hash
    other = tmp_path / "other.yaml"
    other.write_text(POLICY.replace("gt: 500", "gt: 1000"))
    assert Policy.load(other).hash != policy.hash


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("rules:\n  - id: r1\n    action: maybe\n", r"rule r1: action"),
        ("rules:\n  - id: r2\n    when: {args: {amount: {bigger: 5}}}\n    action: deny\n", r"rule r2: .*bigger"),
        ("rules:\n  - id: r3\n    action: deny\n    hook: x:y\n", r"rule r3: .*exactly one"),
        ("rules:\n  - id: r4\n    hook: no_such_module_xyz:f\n", r"rule r4: cannot load hook"),
        ("rules: [\n", r"not valid YAML"),
    ],
)
def test_a_bad_policy_file_names_the_rule_and_the_problem(tmp_path: Path, body: str, message: str) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("default: deny\n" + textwrap.dedent(body))
    with pytest.raises(ConfigError, match=message):
        Policy.load(p)


@tool(effects=["read"], classification="confidential")
def read_salaries(team: str) -> float:
    """Total salaries of a team."""
    return 0.0


def test_a_tool_on_data_above_the_callers_clearance_is_refused() -> None:
    clerk = CallerProfile(name="clerk")
    d = check_permission(clerk, read_salaries)
    assert not d.allowed and "confidential" in d.reason
    hr = CallerProfile(name="hr", clearance={"internal", "confidential"})
    assert check_permission(hr, read_salaries).allowed


def test_policy_rules_see_the_tools_data_classification(tmp_path: Path) -> None:
    from tether.tools._orchestrator import Orchestrator, Plan, Step

    p = tmp_path / "policy.yaml"
    p.write_text(
        "default: allow\nrules:\n  - id: confidential-needs-approval\n    when: {classification: [confidential]}\n"
        "    action: require_approval\n"
    )
    hr = CallerProfile(name="hr", clearance={"internal", "confidential"})
    orch = Orchestrator(
        [read_salaries],
        tmp_path / "runs.db",
        profile=hr,
        policy=Policy.load(p),
        approver=lambda step, tool, preview, reason: False,
    )
    rec = orch.run(Plan(goal="g", steps=[Step(n=1, tool="read_salaries", args={"team": "ops"})]))
    assert rec.steps[0].status == "denied" and "confidential-needs-approval" in rec.steps[0].detail
