"""Per-tenant budgets over a rolling window (``budgets:``): model calls, tokens, seconds and money. Each answer's model
spend is written to a small SQLite ledger (it survives restarts); before model work the tenant's spend is summed,
and a spent budget degrades the request to the free extractive answer or a refusal, which the answer says."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tether._sqlite import ThreadConnections, immediate
from tether.contracts import TraceEvent

if TYPE_CHECKING:
    from tether._api import Tether

_SCHEMA = """CREATE TABLE IF NOT EXISTS spend (
    tenant TEXT NOT NULL, at REAL NOT NULL, calls INTEGER NOT NULL, tokens INTEGER NOT NULL, cost REAL NOT NULL,
    seconds REAL NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS spend_tenant_at ON spend(tenant, at);"""


class SpendLedger:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conns = ThreadConnections(path)
        self._conn.executescript(_SCHEMA)
        columns = {r[1] for r in self._conn.execute("PRAGMA table_info(spend)")}
        if "seconds" not in columns:  # a ledger written before model seconds were counted
            with immediate(self._conn) as c:
                c.execute("ALTER TABLE spend ADD COLUMN seconds REAL NOT NULL DEFAULT 0")

    @property
    def _conn(self) -> sqlite3.Connection:
        return self._conns.get()

    def close(self) -> None:
        self._conns.close()

    def charge(self, tenant: str, calls: int, tokens: int, cost: float, seconds: float = 0.0) -> None:
        if calls or tokens or cost or seconds:
            with immediate(self._conn) as c:
                c.execute(
                    "INSERT INTO spend(tenant, at, calls, tokens, cost, seconds) VALUES (?,?,?,?,?,?)",
                    (tenant, time.time(), calls, tokens, cost, seconds),
                )

    def spent(self, tenant: str, window_s: float) -> tuple[int, int, float, float]:
        """(calls, tokens, cost, model seconds) of ``tenant`` in the last ``window_s`` seconds."""
        row = self._conn.execute(
            "SELECT COALESCE(SUM(calls), 0), COALESCE(SUM(tokens), 0), COALESCE(SUM(cost), 0),"
            " COALESCE(SUM(seconds), 0) FROM spend WHERE tenant = ? AND at >= ?",
            (tenant, time.time() - window_s),
        ).fetchone()
        return int(row[0]), int(row[1]), float(row[2]), float(row[3])


def model_spend(t: Tether, trace: list[TraceEvent]) -> tuple[int, int, float, float]:
    """(calls, tokens, cost, seconds) of the model calls in an answer's trace: cost from the cascade's route when
    there is one (each tier at its own prices), else every call at ``llm``'s prices."""
    route = next((e for e in trace if e.stage == "route"), None)
    calls = [e for e in trace if "prompt_tokens" in e.detail]
    tokens = sum(
        int(str(e.detail.get("prompt_tokens", 0))) + int(str(e.detail.get("completion_tokens", 0))) for e in calls
    )
    if route is not None:
        cost = float(str(route.detail.get("cost", 0.0)))
    else:
        llm = t.settings.llm
        cost = sum(
            int(str(e.detail.get("prompt_tokens", 0))) / 1000 * llm.price_in_per_1k
            + int(str(e.detail.get("completion_tokens", 0))) / 1000 * llm.price_out_per_1k
            for e in calls
        )
    return len(calls), tokens, cost, sum(e.ms for e in calls) / 1000


def exhausted(t: Tether, tenant: str) -> str | None:
    """Why the tenant's budget is spent (naming which and how much), or None."""
    b = t.settings.budgets
    if b.max_calls is None and b.max_tokens is None and b.max_cost is None and b.max_seconds is None:
        return None
    calls, tokens, cost, seconds = t.spend_ledger().spent(tenant, b.window_s)
    who = f"tenant {tenant!r}" if tenant else "this index"
    window = f"the last {b.window_s:g} s"
    if b.max_calls is not None and calls >= b.max_calls:
        return f"{who} made {calls} model calls in {window} (budgets.max_calls {b.max_calls})"
    if b.max_tokens is not None and tokens >= b.max_tokens:
        return f"{who} used {tokens} model tokens in {window} (budgets.max_tokens {b.max_tokens})"
    if b.max_cost is not None and cost >= b.max_cost:
        return f"{who} spent {cost:.4f} in {window} (budgets.max_cost {b.max_cost:g})"
    if b.max_seconds is not None and seconds >= b.max_seconds:
        return f"{who} used {seconds:.1f} s of model time in {window} (budgets.max_seconds {b.max_seconds:g})"
    return None
