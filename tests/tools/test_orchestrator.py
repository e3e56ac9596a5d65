"""Plan/execute on a real SQLite ledger: approvals, refusals, previews, idempotent retries, resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tether.guard import AuditLog
from tether.tools import Approvers, CallerProfile, Policy
from tether.tools._approvals import ApproverConfig, hash_secret
from tether.tools._ledger_demo import ledger_rows, ledger_tools
from tether.tools._orchestrator import Orchestrator, Plan, Step
from tether.tools._schema import Tool

APPROVERS = Approvers([ApproverConfig(id="cara", roles=["manager"], secret_sha256=hash_secret("cara-secret"))])
CLERK = CallerProfile(name="ana", role="clerk", scopes={"read", "write"})
FINANCE = CallerProfile(name="bo", role="finance", scopes={"read", "write", "external", "irreversible"})

POLICY = """
version: 1
default: allow
rules:
  - id: big-expenses-need-approval
    tool: record_expense
    when: {args: {amount: {gt: 500}}}
    action: require_approval
"""


def plan(*steps: tuple[str, dict[str, Any]]) -> Plan:
    return Plan(goal="test", steps=[Step(n=i, tool=t, args=a) for i, (t, a) in enumerate(steps, 1)])


class Approvals:
    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.seen: list[tuple[int, Any, str]] = []

    def __call__(self, step: Step, tool: Tool, preview: Any, reason: str) -> bool:
        self.seen.append((step.n, preview, reason))
        return self.answer


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    p = tmp_path / "policy.yaml"
    p.write_text(POLICY)
    return Policy.load(p)


def orchestrator(tmp_path: Path, profile: CallerProfile, **kw: Any) -> tuple[Orchestrator, Path]:
    ledger = tmp_path / "ledger.db"
    tools = ledger_tools(ledger, lose_first_ack=kw.pop("lose_first_ack", False))
    audit = AuditLog.open(tmp_path / "audit.db")
    return Orchestrator(tools, tmp_path / "runs.db", profile=profile, audit=audit, backoff_s=0.01, **kw), ledger


def test_a_plan_runs_step_by_step_with_validated_results(tmp_path: Path, policy: Policy) -> None:
    orch, ledger = orchestrator(tmp_path, CLERK, policy=policy)
    rec = orch.run(plan(("budget_left", {"employee": "E-1"}), ("record_expense", {"employee": "E-1", "amount": 120})))
    assert rec.status == "done"
    assert rec.steps[0].result == 2000.0
    assert rec.steps[1].result["amount"] == 120.0 and rec.steps[1].preview.startswith("would add")
    assert ledger_rows(ledger) == [(1, "E-1", 120.0, "approved")]
    assert AuditLog.open(tmp_path / "audit.db").verify().ok


def test_a_call_outside_the_grant_is_refused_logged_and_stops_the_run(tmp_path: Path) -> None:
    orch, ledger = orchestrator(tmp_path, CLERK)
    rec = orch.run(
        plan(
            ("record_expense", {"employee": "E-1", "amount": 50}),
            ("pay_out", {"entry_id": 1, "iban": "DE00"}),
            ("budget_left", {"employee": "E-1"}),
        )
    )
    assert rec.status == "stopped" and "refused" in rec.stopped_reason
    assert [s.status for s in rec.steps] == ["done", "refused", "pending"]
    kinds = [e.kind for e in AuditLog.open(tmp_path / "audit.db").entries()]
    assert "refusal" in kinds


def test_policy_approval_sees_the_preview_and_a_no_stops_before_the_side_effect(tmp_path: Path, policy: Policy) -> None:
    no = Approvals(False)
    orch, ledger = orchestrator(tmp_path, CLERK, policy=policy, approver=no)
    rec = orch.run(plan(("record_expense", {"employee": "E-2", "amount": 900, "note": "flight"})))
    assert rec.steps[0].status == "denied" and ledger_rows(ledger) == []
    assert no.seen == [
        (1, "would add an approved expense of 900.00 EUR for E-2 (flight)", "policy: rule big-expenses-need-approval")
    ]
    yes = Approvals(True)
    orch2, _ = orchestrator(tmp_path / "b", CLERK, policy=policy, approver=yes)
    assert orch2.run(plan(("record_expense", {"employee": "E-2", "amount": 900}))).status == "done"


def test_irreversible_tools_always_need_a_human_and_can_be_approved_by_api(tmp_path: Path) -> None:
    orch, ledger = orchestrator(tmp_path, FINANCE, approvers=APPROVERS)  # no policy, no callback: the API path
    rec = orch.run(plan(("pay_out", {"entry_id": 1, "iban": "DE00"}), ("budget_left", {"employee": "E-1"})))
    assert rec.status == "awaiting_approval"
    assert [s.status for s in rec.steps] == ["awaiting_approval", "pending"]
    assert "irreversible" in rec.steps[0].detail
    assert orch.resume(rec.run_id).status == "awaiting_approval"  # nothing moves until someone decides
    cara = APPROVERS.authenticate("cara", "cara-secret")
    done = orch.decide(rec.run_id, 1, approved=True, by=cara, step_hash=rec.steps[0].step_hash)
    assert done.status == "done" and [s.status for s in done.steps] == ["done", "done"]
    kinds = [(e.kind, e.payload.get("approver")) for e in AuditLog.open(tmp_path / "audit.db").entries()]
    assert ("approval", "cara") in kinds


def test_an_api_denial_stops_the_run_before_the_side_effect(tmp_path: Path) -> None:
    orch, ledger = orchestrator(tmp_path, FINANCE, approvers=APPROVERS)
    rec = orch.run(plan(("pay_out", {"entry_id": 1, "iban": "DE00"})))
    stopped = orch.decide(rec.run_id, 1, approved=False, by=APPROVERS.authenticate("cara", "cara-secret"))
    assert stopped.status == "stopped" and stopped.steps[0].status == "denied"
    with sqlite3.connect(ledger) as c:
        assert c.execute("SELECT COUNT(*) FROM payouts").fetchone()[0] == 0


def test_invalid_arguments_fail_the_step_with_structured_feedback(tmp_path: Path) -> None:
    orch, ledger = orchestrator(tmp_path, CLERK)
    rec = orch.run(plan(("record_expense", {"employee": "E-1", "amount": "a lot"})))
    assert rec.steps[0].status == "failed" and "amount" in rec.steps[0].detail
    entries = [e for e in AuditLog.open(tmp_path / "audit.db").entries() if e.kind == "tool_error"]
    assert entries[0].payload["feedback"][0]["field"] == "amount"
    assert ledger_rows(ledger) == []


def test_a_lost_acknowledgement_is_retried_with_the_same_key_and_writes_once(tmp_path: Path) -> None:
    orch, ledger = orchestrator(tmp_path, CLERK, lose_first_ack=True)
    rec = orch.run(plan(("record_expense", {"employee": "E-3", "amount": 75})))
    assert rec.status == "done" and rec.steps[0].attempts == 2
    assert ledger_rows(ledger) == [(1, "E-3", 75.0, "approved")]  # one write, not two
    calls = [e for e in AuditLog.open(tmp_path / "audit.db").entries() if e.kind == "tool_call"]
    assert len(calls) == 2 and calls[0].payload["idempotency_key"] == calls[1].payload["idempotency_key"]


CHILD = """
import functools, sys, time
from pathlib import Path
from tether.tools import CallerProfile
from tether.tools._ledger_demo import ledger_tools
from tether.tools._orchestrator import Orchestrator, Plan, Step

root = Path(sys.argv[1])
tools = ledger_tools(root / "ledger.db")
slow = []
for t in tools:
    if t.name == "record_expense":
        inner = t.fn
        @functools.wraps(inner)  # keeps the signature, so the idempotency key is still passed
        def slowed(*a, _inner=inner, **k):
            r = _inner(*a, **k)
            time.sleep(0.4)  # the side effect is committed; the step is not yet acknowledged
            return r
        t.fn = slowed
orch = Orchestrator(tools, root / "runs.db", profile=CallerProfile(name="ana", scopes={"read", "write"}))
steps = [Step(n=i, tool="record_expense", args={"employee": f"E-{i}", "amount": 10 * i}) for i in range(1, 7)]
run_id = orch.start(Plan(goal="six expenses", steps=steps))
print(run_id, flush=True)
orch.resume(run_id)
"""


def test_a_run_killed_mid_way_resumes_without_repeating_finished_steps(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    ledger = tmp_path / "ledger.db"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if ledger.exists():
            with sqlite3.connect(ledger) as c:
                if c.execute("SELECT COUNT(*) FROM entries").fetchone()[0] >= 3:
                    break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    written_before = len(ledger_rows(ledger))
    assert 3 <= written_before < 6

    orch = Orchestrator(
        ledger_tools(ledger), tmp_path / "runs.db", profile=CallerProfile(name="ana", scopes={"read", "write"})
    )
    rec = orch.resume(run_id)
    assert rec.status == "done"
    rows = ledger_rows(ledger)
    assert [r[1] for r in rows] == [f"E-{i}" for i in range(1, 7)]  # each once, in order
    assert json.dumps([s.status for s in rec.steps]) == json.dumps(["done"] * 6)


def test_an_llm_planner_gets_feedback_on_an_invalid_plan_and_its_fixed_plan_runs(
    tmp_path: Path, model_server: Any
) -> None:
    from tether.models import OpenAICompatGenerator
    from tether.tools._orchestrator import LLMPlanner

    bad = {"steps": [{"tool": "wire_money", "args": {}}, {"tool": "budget_left", "args": {"employe": "E-1"}}]}
    good = {"steps": [{"tool": "budget_left", "args": {"employee": "E-1"}, "why": "check first"}]}
    model_server.script = [model_server.reply(json.dumps(bad)), model_server.reply(json.dumps(good))]
    orch, _ = orchestrator(tmp_path, CLERK)
    planner = LLMPlanner(OpenAICompatGenerator(model_server.url, "planner"))
    p = planner.plan("how much budget does E-1 have left?", list(orch.tools.values()))
    assert [s.tool for s in p.steps] == ["budget_left"]
    feedback = model_server.requests[1]["messages"][-1]["content"]
    assert "unknown tool 'wire_money'" in feedback and "employee" in feedback
    assert orch.run(p).steps[0].result == 2000.0
