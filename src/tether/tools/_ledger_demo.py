"""A small expense ledger in SQLite with real side effects: the tools of the `tether tools demo` flow."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tether.errors import TetherError, TransientError
from tether.tools._schema import IdempotencyConflictError, Tool, tool, tool_sqlite


class Entry(BaseModel):
    id: int
    employee: str
    amount: float
    status: str


def ledger_tools(db: Path, *, lose_first_ack: bool = False) -> list[Tool]:
    """Tools over a ledger file. ``lose_first_ack`` makes the first write raise after committing, as when
    a network drops the reply: the retry must find the entry by its idempotency key, not write it twice."""
    db.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(db) as c:
        c.execute(
            "CREATE TABLE IF NOT EXISTS entries (id INTEGER PRIMARY KEY, employee TEXT NOT NULL, amount REAL NOT NULL,"
            " status TEXT NOT NULL, idempotency_key TEXT UNIQUE)"
        )
        c.execute("CREATE TABLE IF NOT EXISTS payouts (entry_id INTEGER NOT NULL, idempotency_key TEXT UNIQUE)")
    lost = {"done": not lose_first_ack}

    def _connect() -> Any:
        return tool_sqlite(db)  # read-only inside a tool declared `read` (and inside every preview)

    @tool(effects=["read"])
    def budget_left(employee: str) -> float:
        """Travel budget left this quarter for an employee.

        Args:
            employee: Employee id, like E-17.
        """
        with _connect() as c:
            spent = c.execute(
                "SELECT COALESCE(SUM(amount), 0) FROM entries WHERE employee=? AND status != 'rejected'", (employee,)
            ).fetchone()[0]
        return round(2000.0 - float(spent), 2)

    def _preview_record(employee: str, amount: float, note: str = "") -> str:
        return f"would add an approved expense of {amount:.2f} EUR for {employee} ({note or 'no note'})"

    @tool(effects=["write"], preview=_preview_record)
    def record_expense(employee: str, amount: float, note: str = "", idempotency_key: str | None = None) -> Entry:
        """Record an approved expense in the ledger.

        Args:
            employee: Employee id, like E-17.
            amount: Amount in EUR.
            note: What it was for.
        """
        if amount <= 0:
            raise TetherError(f"amount must be positive, not {amount}")
        idempotency_key = idempotency_key or uuid.uuid4().hex  # a direct call without a key is one write
        with _connect() as c:
            c.execute(
                "INSERT OR IGNORE INTO entries(employee, amount, status, idempotency_key) VALUES (?,?,?,?)",
                (employee, amount, "approved", idempotency_key),
            )
            row = c.execute(
                "SELECT id, employee, amount, status FROM entries WHERE idempotency_key=?", (idempotency_key,)
            ).fetchone()
            if (row[1], float(row[2])) != (employee, float(amount)):
                raise IdempotencyConflictError(
                    f"idempotency key {idempotency_key} already recorded {row[2]} for {row[1]}, "
                    f"not {amount} for {employee}"
                )
        if not lost["done"]:
            lost["done"] = True
            raise TransientError("connection reset after the write (the acknowledgement was lost)")
        return Entry(id=row[0], employee=row[1], amount=row[2], status=row[3])

    def _preview_payout(entry_id: int, iban: str) -> str:
        return f"would transfer entry {entry_id} to {iban} (cannot be undone)"

    @tool(effects=["external", "irreversible"], preview=_preview_payout)
    def pay_out(entry_id: int, iban: str, idempotency_key: str | None = None) -> str:
        """Transfer a recorded expense to the employee's bank account.

        Args:
            entry_id: Ledger entry id.
            iban: Destination account.
        """
        with _connect() as c:
            c.execute(
                "INSERT OR IGNORE INTO payouts(entry_id, idempotency_key) VALUES (?,?)", (entry_id, idempotency_key)
            )
        return f"transferred entry {entry_id}"

    return [budget_left, record_expense, pay_out]


def ledger_rows(db: Path) -> list[tuple[int, str, float, str]]:
    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT id, employee, amount, status FROM entries ORDER BY id").fetchall()
    return [(int(r[0]), str(r[1]), float(r[2]), str(r[3])) for r in rows]
