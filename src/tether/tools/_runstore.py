"""The run state in SQLite: runs, steps, leases, and an outbox that keeps the audit log in step with the state.

* **One executor per run.** :meth:`RunStore.acquire` leases a run to one executor until an expiry; every
  state change checks and extends the lease in the same transaction, so an executor that lost its lease
  cannot write. Others wait for the lease or give up with :class:`RunBusyError`.
* **Audit entries commit with the state.** A state change and the audit entries that describe it are
  written in one transaction (the entries into ``outbox``); :meth:`RunStore.flush` then appends them to the
  audit log and records each entry's ``seq``. After a crash between the append and that record,
  :meth:`RunStore.flush` with ``reconcile=True`` finds the entry in the log by its ``event`` id instead of
  appending it twice. So every state change has exactly one audit entry, whenever a process dies.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from tether.errors import TetherError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, goal TEXT NOT NULL, caller TEXT NOT NULL, status TEXT NOT NULL,
    stopped_reason TEXT NOT NULL DEFAULT '', created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL REFERENCES runs(run_id), n INTEGER NOT NULL, tool TEXT NOT NULL, args TEXT NOT NULL,
    status TEXT NOT NULL, idempotency_key TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    result TEXT, preview TEXT, detail TEXT NOT NULL DEFAULT '', PRIMARY KEY (run_id, n)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, event TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
    actor TEXT NOT NULL, payload TEXT NOT NULL, config_hash TEXT NOT NULL, audit_seq INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(run_id, audit_seq);
CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, tool TEXT NOT NULL, args_hash TEXT NOT NULL);
"""
_ADDED_COLUMNS = {
    "runs": {
        "plan_hash": "TEXT NOT NULL DEFAULT ''",
        "lease_owner": "TEXT",
        "lease_until": "REAL NOT NULL DEFAULT 0",
        "audit_from": "INTEGER NOT NULL DEFAULT 1",
    },
    "steps": {
        "args_hash": "TEXT NOT NULL DEFAULT ''",
        "approval_hash": "TEXT",
        "approver_roles": "TEXT",
        "approved_hash": "TEXT",
        "approved_by": "TEXT",
        "origin": "TEXT NOT NULL DEFAULT '{}'",  # tether.tools._origin.Origin as JSON ('{}': planned before it)
    },
}


class RunBusyError(TetherError):
    """Another executor holds the run's lease (it is running it now)."""


class LeaseLostError(TetherError):
    """This executor's lease on a run expired and another executor took it: it must stop writing."""


class AuditSink(Protocol):
    def append(self, kind: str, actor: str, payload: dict[str, Any], config_hash: str = "") -> Any: ...


def jsonable(value: Any) -> Any:
    """``value`` as finite JSON data (non-finite numbers and unknown types become text)."""

    def fix(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return repr(v)
        if isinstance(v, dict):
            return {str(k): fix(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [fix(x) for x in v]
        return v

    return json.loads(json.dumps(fix(value), default=str))


def new_owner(label: str) -> str:
    """An executor id: ``label@host:pid:random`` (a lease whose process died on this host is free at once)."""
    return f"{label}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _holder_dead(owner: str) -> bool:
    """Whether ``owner`` was a process on this host that no longer runs (its lease need not be waited out)."""
    try:
        where = owner.rsplit("@", 1)[1]
        host, pid, _ = where.rsplit(":", 2)
        if host != socket.gethostname() or int(pid) == os.getpid():
            return False
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (IndexError, ValueError, PermissionError, OSError):
        return False
    return False


class RunStore:
    """SQLite state of runs, leased to one executor (``owner``, from :func:`new_owner`) at a time.

    A lease ends when its holder releases it, when it expires (``lease_s`` without progress), or at once
    when its holder was a process on this host that has died (a crash, kill -9).
    """

    def __init__(self, path: Path, *, owner: str, lease_s: float, fault: Callable[[str], None] | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.owner = owner
        self.lease_s = lease_s
        self.fault = fault
        self.db = sqlite3.connect(str(path), isolation_level=None, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)
        self._migrate()
        self._held: dict[str, int] = {}

    def _migrate(self) -> None:
        with self.tx():
            for table, cols in _ADDED_COLUMNS.items():
                have = {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}
                for name, decl in cols.items():
                    if name not in have:
                        self.db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")

    def close(self) -> None:
        self.db.close()

    def point(self, name: str) -> None:
        """A crash-test boundary (the fault hook may kill the process here)."""
        if self.fault is not None:
            self.fault(name)

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        self.point("commit")

    @contextmanager
    def leased(self, run_id: str) -> Iterator[sqlite3.Connection]:
        """A transaction that only commits while this executor holds the run's lease (and extends it)."""
        with self.tx() as db:
            row = db.execute("SELECT lease_owner, lease_until FROM runs WHERE run_id=?", (run_id,)).fetchone()
            if row is None or row[0] != self.owner:
                raise LeaseLostError(f"run {run_id}: this executor no longer holds the lease; another one took over")
            db.execute("UPDATE runs SET lease_until=? WHERE run_id=?", (time.time() + self.lease_s, run_id))
            yield db

    # -- leases --------------------------------------------------------------------
    def acquire(self, run_id: str, wait_s: float) -> None:
        """Lease ``run_id`` to this executor (re-entrant); wait up to ``wait_s`` for another holder to finish."""
        if self._held.get(run_id):
            self._held[run_id] += 1
            return
        deadline = time.monotonic() + wait_s
        delay = 0.01
        while True:
            now = time.time()
            with self.tx() as db:
                row = db.execute("SELECT lease_owner, lease_until FROM runs WHERE run_id=?", (run_id,)).fetchone()
                if row is None:
                    raise TetherError(f"no tool run {run_id!r}")
                free = row[0] is None or row[0] == self.owner or float(row[1]) < now or _holder_dead(str(row[0]))
                if free:
                    db.execute(
                        "UPDATE runs SET lease_owner=?, lease_until=? WHERE run_id=?",
                        (self.owner, now + self.lease_s, run_id),
                    )
            if free:
                self._held[run_id] = 1
                return
            if time.monotonic() >= deadline:
                raise RunBusyError(
                    f"run {run_id} is being executed by another executor (lease held until "
                    f"{time.strftime('%H:%M:%S', time.localtime(float(row[1])))}); try again later"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def release(self, run_id: str) -> None:
        n = self._held.get(run_id, 0) - 1
        if n > 0:
            self._held[run_id] = n
            return
        self._held.pop(run_id, None)
        with self.tx() as db:
            db.execute(
                "UPDATE runs SET lease_owner=NULL, lease_until=0 WHERE run_id=? AND lease_owner=?", (run_id, self.owner)
            )

    # -- the audit outbox --------------------------------------------------------------
    @staticmethod
    def emit(
        db: sqlite3.Connection, run_id: str, kind: str, actor: str, payload: dict[str, Any], config_hash: str
    ) -> None:
        """Queue an audit entry in the current transaction (it commits, or not, with the state change)."""
        event = uuid.uuid4().hex
        body = jsonable({**payload, "event": event})
        db.execute(
            "INSERT INTO outbox(run_id, event, kind, actor, payload, config_hash) VALUES (?,?,?,?,?,?)",
            (run_id, event, kind, actor, json.dumps(body, sort_keys=True), config_hash),
        )

    def flush(self, run_id: str, audit: AuditSink | None, *, reconcile: bool = False) -> None:
        """Append the run's queued entries to the audit log, in order, each exactly once.

        With ``reconcile``, entries a crashed executor appended without recording so are found in the log
        (by their ``event`` id) rather than appended again.
        """
        if audit is None:
            return
        pending = self.db.execute(
            "SELECT id, event, kind, actor, payload, config_hash FROM outbox WHERE run_id=? AND audit_seq IS NULL"
            " ORDER BY id",
            (run_id,),
        ).fetchall()
        if not pending:
            return
        if reconcile and hasattr(audit, "entries"):
            row = self.db.execute(
                "SELECT COALESCE(MAX(o.audit_seq) + 1, r.audit_from) FROM runs r LEFT JOIN outbox o"
                " ON o.run_id = r.run_id WHERE r.run_id=?",
                (run_id,),
            ).fetchone()
            wanted = {r[1] for r in pending}
            found: dict[str, int] = {}
            for entry in audit.entries(since=int(row[0] or 1)):
                ev = entry.payload.get("event") if isinstance(entry.payload, dict) else None
                if isinstance(ev, str) and ev in wanted:
                    found[ev] = int(entry.seq)
            if found:
                with self.tx() as db:
                    for ev, seq in found.items():
                        db.execute("UPDATE outbox SET audit_seq=? WHERE event=?", (seq, ev))
                pending = [r for r in pending if r[1] not in found]
        for oid, _event, kind, actor, payload, config_hash in pending:
            entry = audit.append(kind, actor, json.loads(payload), config_hash)
            self.point("audit_appended")
            seq = getattr(entry, "seq", 0)
            self.db.execute("UPDATE outbox SET audit_seq=? WHERE id=?", (int(seq) if seq else 0, oid))
