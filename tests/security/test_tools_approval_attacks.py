"""Red team: approvals that did not bind. An approval is for one exact step, given by an authenticated identity."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tether.guard import AuditLog
from tether.tools import ApprovalError, CallerProfile, Identity, Policy, hash_secret
from tether.tools._ledger_demo import ledger_rows, ledger_tools
from tether.tools._orchestrator import Orchestrator, Plan, RunRecord, Step

CLERK = CallerProfile(name="ana", role="clerk", scopes={"read", "write"})
POLICY = f"""\
version: 1
default: allow
roles: [clerk, manager]
approval: {{separation_of_duties: true, roles: [manager]}}
approvers:
  - {{id: cara, roles: [manager], secret_sha256: {hash_secret("cara-secret")}}}
  - {{id: ana, roles: [manager], secret_sha256: {hash_secret("ana-secret")}}}
  - {{id: dan, roles: [clerk], secret_sha256: {hash_secret("dan-secret")}}}
rules:
  - id: big-expenses-need-approval
    tool: record_expense
    when: {{args: {{amount: {{gt: 500}}}}}}
    action: require_approval
"""


def _parked(tmp_path: Path) -> tuple[Orchestrator, Policy, RunRecord]:
    p = tmp_path / "policy.yaml"
    p.write_text(POLICY)
    policy = Policy.load(p)
    orch = Orchestrator(
        ledger_tools(tmp_path / "ledger.db"),
        tmp_path / "runs.db",
        profile=CLERK,
        policy=policy,
        audit=AuditLog.open(tmp_path / "audit.db"),
    )
    rec = orch.run(Plan(goal="g", steps=[Step(n=1, tool="record_expense", args={"employee": "E-17", "amount": 600})]))
    assert rec.status == "awaiting_approval" and rec.steps[0].preview.startswith("would add an approved expense of 600")
    return orch, policy, rec


def _tamper(tmp_path: Path, args: dict[str, object], *, fix_hash: bool) -> None:
    from tether.tools._orchestrator import _hash

    with sqlite3.connect(tmp_path / "runs.db") as c:
        c.execute("UPDATE steps SET args=? WHERE n=1", (json.dumps(args),))
        if fix_hash:  # an attacker who knows the scheme updates the stored argument hash too
            c.execute("UPDATE steps SET args_hash=? WHERE n=1", (_hash(args),))


@pytest.mark.parametrize("fix_hash", [False, True])
def test_arguments_changed_in_the_state_file_after_the_preview_void_the_approval(
    tmp_path: Path, fix_hash: bool
) -> None:
    orch, policy, rec = _parked(tmp_path)
    _tamper(tmp_path, {"employee": "E-99", "amount": 60000}, fix_hash=fix_hash)
    done = orch.decide(rec.run_id, 1, approved=True, by=policy.approvers.authenticate("cara", "cara-secret"))
    assert done.steps[0].status in ("denied", "refused") and done.status == "stopped"
    assert "changed" in done.steps[0].detail
    assert ledger_rows(tmp_path / "ledger.db") == []


def test_an_approval_for_a_step_hash_that_no_longer_matches_is_refused(tmp_path: Path) -> None:
    orch, policy, rec = _parked(tmp_path)
    with pytest.raises(ApprovalError, match="changed since"):
        orch.decide(rec.run_id, 1, True, policy.approvers.authenticate("cara", "cara-secret"), step_hash="0" * 64)
    assert ledger_rows(tmp_path / "ledger.db") == []


def test_the_approved_step_runs_once_with_the_hash_the_approver_saw(tmp_path: Path) -> None:
    orch, policy, rec = _parked(tmp_path)
    cara = policy.approvers.authenticate("cara", "cara-secret")
    done = orch.decide(rec.run_id, 1, True, cara, step_hash=rec.steps[0].step_hash)
    assert done.status == "done" and ledger_rows(tmp_path / "ledger.db") == [(1, "E-17", 600.0, "approved")]
    approvals = [e for e in AuditLog.open(tmp_path / "audit.db").entries() if e.kind == "approval"]
    assert approvals[0].actor == "cara" and approvals[0].payload["step_hash"] == rec.steps[0].step_hash


@pytest.mark.parametrize("who", ["CFO", "cara", None])
def test_an_approver_given_as_free_text_is_refused(tmp_path: Path, who: object) -> None:
    orch, _, rec = _parked(tmp_path)
    with pytest.raises(ApprovalError, match="authenticated"):
        orch.decide(rec.run_id, 1, approved=True, by=who)  # type: ignore[arg-type]
    assert ledger_rows(tmp_path / "ledger.db") == []


def test_a_hand_made_identity_or_a_wrong_secret_is_refused(tmp_path: Path) -> None:
    orch, policy, rec = _parked(tmp_path)
    with pytest.raises(ApprovalError, match="not authenticated"):
        orch.decide(rec.run_id, 1, True, Identity(id="cara", roles=("manager",)))
    with pytest.raises(ApprovalError, match="could not be authenticated"):
        policy.approvers.authenticate("cara", "guess")
    assert ledger_rows(tmp_path / "ledger.db") == []


def test_the_requester_cannot_approve_her_own_step(tmp_path: Path) -> None:
    orch, policy, rec = _parked(tmp_path)
    with pytest.raises(ApprovalError, match="separation of duties"):
        orch.decide(rec.run_id, 1, True, policy.approvers.authenticate("ana", "ana-secret"))
    assert ledger_rows(tmp_path / "ledger.db") == []


def test_an_approver_without_the_required_role_is_refused(tmp_path: Path) -> None:
    orch, policy, rec = _parked(tmp_path)
    with pytest.raises(ApprovalError, match="needs one of manager"):
        orch.decide(rec.run_id, 1, True, policy.approvers.authenticate("dan", "dan-secret"))


def test_a_bare_true_from_a_callback_is_not_an_approval_when_approvers_are_configured(tmp_path: Path) -> None:
    p = tmp_path / "policy.yaml"
    p.write_text(POLICY)
    orch = Orchestrator(
        ledger_tools(tmp_path / "ledger.db"),
        tmp_path / "runs.db",
        profile=CLERK,
        policy=Policy.load(p),
        approver=lambda step, tool, preview, reason: True,
    )
    rec = orch.run(Plan(goal="g", steps=[Step(n=1, tool="record_expense", args={"employee": "E-1", "amount": 900})]))
    assert rec.steps[0].status == "denied" and "authenticated" in rec.steps[0].detail
    assert ledger_rows(tmp_path / "ledger.db") == []


def test_the_demo_enforces_separation_of_duties(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tether", "tools", "demo", "--yes", "--approve-as", "ana", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["run"]["steps"][2]["status"] == "denied" and "separation of duties" in out["run"]["steps"][2]["detail"]
    assert [row[2] for row in out["ledger"]] == [120.0]
