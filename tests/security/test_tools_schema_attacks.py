"""Red team: lax schemas. Hostile argument values get one clear validation error, never a crash or a write."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from tether.guard import AuditLog
from tether.tools import CallerProfile, ToolValidationError
from tether.tools._ledger_demo import ledger_rows, ledger_tools
from tether.tools._orchestrator import Orchestrator, Plan, PlanError, Step

FINANCE = CallerProfile(name="bo", role="finance", scopes={"read", "write", "external", "irreversible"})


def _tools(tmp_path: Path) -> dict[str, Any]:
    return {t.name: t for t in ledger_tools(tmp_path / "ledger.db")}


@pytest.mark.parametrize(
    ("amount", "problem"),
    [
        (math.inf, "finite"),
        (-math.inf, "finite"),
        (math.nan, "finite"),
        ("1e309", "valid number"),
        ("inf", "valid number"),
        (True, "valid number"),
        ("900", "valid number"),
        (2**70, "out of range"),
    ],
)
def test_hostile_numbers_are_refused_with_a_clear_error(tmp_path: Path, amount: Any, problem: str) -> None:
    record = _tools(tmp_path)["record_expense"]
    with pytest.raises(ToolValidationError) as e:
        record.call({"employee": "E-1", "amount": amount})
    assert e.value.feedback[0]["field"] == "amount" and problem in e.value.feedback[0]["problem"]
    assert ledger_rows(tmp_path / "ledger.db") == []


@pytest.mark.parametrize(
    ("employee", "problem"),
    [
        ("E-1\x00; DROP TABLE entries", "NUL"),
        ("E-1\u202egnp.exe", "bidirectional"),
        ("E-1\u2066", "bidirectional"),
        ("E-\x1b[31m1", "control"),
        ("E" * 10_000_001, "longer than"),
    ],
)
def test_hostile_strings_are_refused(tmp_path: Path, employee: str, problem: str) -> None:
    record = _tools(tmp_path)["record_expense"]
    with pytest.raises(ToolValidationError) as e:
        record.call({"employee": employee, "amount": 1.0})
    assert problem in e.value.feedback[0]["problem"]
    assert len(str(e.value)) < 500  # the error does not echo ten megabytes back


def test_an_integer_past_64_bits_is_a_validation_error_not_an_overflow(tmp_path: Path) -> None:
    pay = _tools(tmp_path)["pay_out"]
    with pytest.raises(ToolValidationError, match="out of range"):
        pay.call({"entry_id": 2**70, "iban": "DE00"})


def test_a_nan_in_a_plan_is_refused_before_it_is_stored_and_the_audit_log_stays_valid(tmp_path: Path) -> None:
    audit = AuditLog.open(tmp_path / "audit.db")
    orch = Orchestrator(ledger_tools(tmp_path / "ledger.db"), tmp_path / "runs.db", profile=FINANCE, audit=audit)
    for bad in (math.nan, math.inf, 2**70):
        with pytest.raises(PlanError, match="step 1"):
            orch.start(Plan(goal="g", steps=[Step(n=1, tool="record_expense", args={"employee": "E", "amount": bad})]))
    assert orch.store.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
    assert audit.verify().ok and ledger_rows(tmp_path / "ledger.db") == []


def test_an_infinite_budget_can_never_be_recorded_so_the_run_and_its_audit_stay_consistent(tmp_path: Path) -> None:
    audit = AuditLog.open(tmp_path / "audit.db")
    orch = Orchestrator(ledger_tools(tmp_path / "ledger.db"), tmp_path / "runs.db", profile=FINANCE, audit=audit)
    rec = orch.run(
        Plan(
            goal="g",
            steps=[
                Step(n=1, tool="record_expense", args={"employee": "E-1", "amount": "1e309"}),
                Step(n=2, tool="budget_left", args={"employee": "E-1"}),
            ],
        )
    )
    assert [s.status for s in rec.steps] == ["failed", "pending"] and rec.status == "stopped"
    assert ledger_rows(tmp_path / "ledger.db") == []
    assert audit.verify().ok
    assert [e.kind for e in audit.entries()] == ["plan", "tool_error"]
