"""Red team: several executors on one run, reused idempotency keys, malformed plans."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tether.guard import AuditLog
from tether.tools import CallerProfile, tool
from tether.tools._ledger_demo import ledger_rows, ledger_tools
from tether.tools._orchestrator import IdempotencyConflictError, Orchestrator, Plan, PlanError, Step

ANA = CallerProfile(name="ana", scopes={"read", "write"})


def counting_tool(db: Path):  # type: ignore[no-untyped-def]
    """An unkeyed side effect: every call adds a row, so a repeated step shows up as an extra row."""
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE IF NOT EXISTS calls (step INTEGER)")

    @tool(effects=["write"])
    def bump(step: int) -> int:
        """Count one call."""
        with sqlite3.connect(db, timeout=30) as c:
            c.execute("INSERT INTO calls(step) VALUES (?)", (step,))
        time.sleep(0.02)
        return step

    return bump


def calls(db: Path) -> list[int]:
    with sqlite3.connect(db) as c:
        return [r[0] for r in c.execute("SELECT step FROM calls ORDER BY rowid")]


PLAN = Plan(goal="five bumps", steps=[Step(n=i, tool="bump", args={"step": i}) for i in range(1, 6)])


@pytest.mark.parametrize("executors", [2, 4, 8])
def test_concurrent_executors_in_threads_run_each_step_once(tmp_path: Path, executors: int) -> None:
    counter = tmp_path / "calls.db"
    first = Orchestrator([counting_tool(counter)], tmp_path / "runs.db", profile=ANA)
    run_id = first.start(PLAN)
    barrier = threading.Barrier(executors)
    statuses: list[str] = []

    def work() -> None:
        orch = Orchestrator(
            [counting_tool(counter)], tmp_path / "runs.db", profile=ANA, audit=AuditLog.open(tmp_path / "audit.db")
        )
        barrier.wait()
        statuses.append(orch.resume(run_id).status)
        orch.close()

    threads = [threading.Thread(target=work) for _ in range(executors)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert statuses == ["done"] * executors
    assert calls(counter) == [1, 2, 3, 4, 5]
    results = [e for e in AuditLog.open(tmp_path / "audit.db").entries() if e.kind == "tool_result"]
    assert sorted(e.payload["step"] for e in results) == [1, 2, 3, 4, 5]


CHILD = """
import sys, time, sqlite3
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from test_tools_concurrency import ANA, counting_tool
from tether.guard import AuditLog
from tether.tools._orchestrator import Orchestrator
root = Path(sys.argv[1])
orch = Orchestrator([counting_tool(root / "calls.db")], root / "runs.db", profile=ANA,
                    audit=AuditLog.open(root / "audit.db"))
while not (root / "go").exists():
    time.sleep(0.005)
print(orch.resume(sys.argv[2]).status)
"""


@pytest.mark.parametrize("executors", [2, 4, 8])
def test_concurrent_executor_processes_run_each_step_once(tmp_path: Path, executors: int) -> None:
    counter = tmp_path / "calls.db"
    run_id = Orchestrator([counting_tool(counter)], tmp_path / "runs.db", profile=ANA).start(PLAN)
    here = str(Path(__file__).parent)
    procs = [
        subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), run_id, here], stdout=subprocess.PIPE, text=True)
        for _ in range(executors)
    ]
    time.sleep(1.0)  # let every process import and wait at the start line
    (tmp_path / "go").touch()
    outs = [p.communicate(timeout=180)[0].strip() for p in procs]
    assert outs == ["done"] * executors
    assert calls(counter) == [1, 2, 3, 4, 5]
    results = [e for e in AuditLog.open(tmp_path / "audit.db").entries() if e.kind == "tool_result"]
    assert sorted(e.payload["step"] for e in results) == [1, 2, 3, 4, 5]


def test_an_idempotency_key_reused_with_other_arguments_is_a_conflict(tmp_path: Path) -> None:
    record = next(t for t in ledger_tools(tmp_path / "ledger.db") if t.name == "record_expense")
    first = record.call({"employee": "E-1", "amount": 10.0}, idempotency_key="k-1")
    assert record.call({"employee": "E-1", "amount": 10.0}, idempotency_key="k-1") == first  # a true retry
    with pytest.raises(IdempotencyConflictError, match="already recorded"):
        record.call({"employee": "E-2", "amount": 99.0}, idempotency_key="k-1")
    assert ledger_rows(tmp_path / "ledger.db") == [(1, "E-1", 10.0, "approved")]


def test_the_orchestrator_refuses_a_key_whose_arguments_changed(tmp_path: Path) -> None:
    counter = tmp_path / "calls.db"
    orch = Orchestrator([counting_tool(counter)], tmp_path / "runs.db", profile=ANA)
    a = orch.start(Plan(goal="g", steps=[Step(n=1, tool="bump", args={"step": 1})]))
    b = orch.start(Plan(goal="g", steps=[Step(n=1, tool="bump", args={"step": 2})]))
    with sqlite3.connect(tmp_path / "runs.db") as c:  # an insider copies run a's key onto run b's step
        key = c.execute("SELECT idempotency_key FROM steps WHERE run_id=?", (a,)).fetchone()[0]
        c.execute("UPDATE steps SET idempotency_key=? WHERE run_id=?", (key, b))
    assert orch.resume(a).status == "done"
    rec = orch.resume(b)
    assert rec.steps[0].status == "failed" and "other arguments" in rec.steps[0].detail
    assert calls(counter) == [1]


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([], "no steps"),
        ([Step(n=0, tool="bump", args={"step": 1})], "numbered 1..1"),
        ([Step(n=1, tool="bump", args={"step": 1}), Step(n=3, tool="bump", args={"step": 1})], "numbered 1..2"),
        ([Step(n=1, tool="bump", args={"step": 1}), Step(n=1, tool="bump", args={"step": 1})], "numbered 1..2"),
        ([Step(n=2, tool="bump", args={"step": 1}), Step(n=1, tool="bump", args={"step": 1})], "numbered 1..2"),
        ([Step(n=1, tool="wire_money", args={})], "unknown tool 'wire_money'"),
        ([Step(n=1, tool="bump\u200b", args={"step": 1})], "unknown tool"),
    ],
)
def test_a_malformed_plan_is_rejected_before_it_is_stored(tmp_path: Path, steps: list[Step], message: str) -> None:
    orch = Orchestrator([counting_tool(tmp_path / "calls.db")], tmp_path / "runs.db", profile=ANA)
    with pytest.raises(PlanError, match=message):
        orch.start(Plan(goal="g", steps=steps))
    with sqlite3.connect(tmp_path / "runs.db") as c:
        assert c.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
        assert c.execute("SELECT COUNT(*) FROM steps").fetchone()[0] == 0
    assert json.dumps(calls(tmp_path / "calls.db")) == "[]"
