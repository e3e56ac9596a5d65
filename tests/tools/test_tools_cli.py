"""The expense demo end to end from the CLI, then `tether audit verify` on an intact and a tampered log."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path


def tether(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tether", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_expense_demo_plans_approves_refuses_retries_once_and_verifies(tmp_path: Path) -> None:
    proc = tether(tmp_path, "tools", "demo", "--yes", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    steps = out["run"]["steps"]
    assert [s["status"] for s in steps] == ["done", "done", "done", "refused"]
    assert steps[1]["attempts"] == 2  # the lost acknowledgement was retried ...
    assert [row[2] for row in out["ledger"]] == [120.0, 900.0]  # ... and written once
    assert steps[2]["detail"].startswith("approved by cara (policy: rule big-expenses-need-approval")
    assert "outside ana's scopes" in steps[3]["detail"]
    assert out["audit"]["ok"]

    (tmp_path / "b").mkdir()
    denied = json.loads(tether(tmp_path / "b", "tools", "demo", "--no", "--json").stdout)
    assert [s["status"] for s in denied["run"]["steps"]] == ["done", "done", "denied", "pending"]

    log = tmp_path / ".tether" / "tools-demo" / "audit.db"
    ok = tether(tmp_path, "audit", "verify", str(log))
    assert ok.returncode == 0 and "chain intact" in ok.stdout
    with sqlite3.connect(log) as c:
        c.execute("DROP TRIGGER IF EXISTS entries_no_update")
        c.execute("UPDATE entries SET payload = replace(payload, '120', '12') WHERE seq = 6")
    bad = tether(tmp_path, "audit", "verify", str(log))
    assert bad.returncode == 1
    assert "entry 6" in bad.stdout and "Traceback" not in bad.stderr


def test_audit_verify_on_a_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    proc = tether(tmp_path, "audit", "verify", "nope.db")
    assert proc.returncode == 2 and "nope.db" in proc.stderr and "Traceback" not in proc.stderr
