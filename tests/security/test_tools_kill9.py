"""kill -9 at every boundary of a run (each commit, each audit append, before and after each tool call).

Not at random moments: a first run counts the boundaries, then one real subprocess per boundary kills itself
with SIGKILL exactly there. After each, a fresh executor resumes the run, and then every done step has exactly
one result entry in the audit log, the plan has exactly one entry, the chain verifies, and the ledger holds
each write once.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tether.guard import AuditLog
from tether.tools import CallerProfile, Policy
from tether.tools._ledger_demo import ledger_rows, ledger_tools
from tether.tools._orchestrator import Orchestrator, Plan, Step

ANA = CallerProfile(name="ana", role="clerk", scopes={"read", "write"})
POLICY = (
    "default: allow\nroles: [clerk]\nrules:\n  - id: big\n    tool: record_expense\n"
    "    when: {args: {amount: {gt: 5000}}}\n    action: deny\n"
)
STEPS: list[tuple[str, dict[str, Any]]] = [
    ("budget_left", {"employee": "E-1"}),
    ("record_expense", {"employee": "E-1", "amount": 100}),
    ("record_expense", {"employee": "E-2", "amount": 200}),
    ("budget_left", {"employee": "E-2"}),
]

CHILD = """
import os, signal, sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from test_tools_kill9 import build, PLAN
root, kill_at = Path(sys.argv[1]), int(sys.argv[2])
orch = build(root)
seen = []
def fault(point):
    seen.append(point)
    if len(seen) == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
orch.store.fault = fault
orch.run(PLAN)
print(len(seen), flush=True)
"""

PLAN = Plan(goal="kill me", steps=[Step(n=i, tool=t, args=a) for i, (t, a) in enumerate(STEPS, 1)])


def build(root: Path) -> Orchestrator:
    p = root / "policy.yaml"
    if not p.exists():
        p.write_text(POLICY)
    return Orchestrator(
        ledger_tools(root / "ledger.db"),
        root / "runs.db",
        profile=ANA,
        policy=Policy.load(p),
        audit=AuditLog.open(root / "audit.db"),
        lease_wait_s=5,
    )


def _child(root: Path, kill_at: int) -> subprocess.CompletedProcess[str]:
    root.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(root), str(kill_at), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _check_after_resume(root: Path) -> None:
    orch = build(root)
    run_ids = [r[0] for r in orch.store.db.execute("SELECT run_id FROM runs")]
    if not run_ids:  # killed before the plan was stored: nothing happened, nothing was logged
        assert ledger_rows(root / "ledger.db") == [] and len(AuditLog.open(root / "audit.db")) == 0
        rec = orch.run(PLAN)
    else:
        rec = orch.resume(run_ids[0])
    assert rec.status == "done", rec.stopped_reason
    audit = AuditLog.open(root / "audit.db")
    assert audit.verify().ok
    entries = [e for e in audit.entries() if e.payload.get("run_id") == rec.run_id]
    kinds = Counter(e.kind for e in entries)
    assert kinds["plan"] == 1
    results = Counter(e.payload["step"] for e in entries if e.kind == "tool_result")
    assert results == Counter({s.n: 1 for s in rec.steps}), results  # every done step: exactly one result entry
    for s in rec.steps:
        tool_calls = [e for e in entries if e.kind == "tool_call" and e.payload["step"] == s.n]
        assert len(tool_calls) == s.attempts  # each attempt logged once, before the call
    assert len({e.payload["event"] for e in entries}) == len(entries)  # no entry appended twice
    assert ledger_rows(root / "ledger.db") == [(1, "E-1", 100.0, "approved"), (2, "E-2", 200.0, "approved")]
    orch.close()


def test_a_kill_at_every_boundary_leaves_one_result_entry_per_done_step_and_each_write_once(tmp_path: Path) -> None:
    clean = _child(tmp_path / "count", 0)
    assert clean.returncode == 0, clean.stderr
    boundaries = int(clean.stdout.strip())
    assert boundaries >= 30  # commits, audit appends, before/after each tool call, leases
    killed = 0
    for k in range(1, boundaries + 1):
        root = tmp_path / f"k{k}"
        proc = _child(root, k)
        assert proc.returncode == -9, (k, proc.stderr[-2000:])
        killed += 1
        _check_after_resume(root)
    assert killed == boundaries
