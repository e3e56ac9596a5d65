"""The local trace store: one SQLite file (WAL) of traces and their spans, written by any number of threads and
processes, read by `tether trace list/show`.

Layout (``PRAGMA user_version`` = :data:`STORE_VERSION`)::

    traces(trace_id, name, started, ms, status, question, abstained, config_hash, attributes)  -- one per request
    spans(trace_id, span_id, parent, name, started, ms, status, error, attributes)             -- the root and stages

``started`` is UTC ISO-8601 text (``2025-01-31T12:00:00.000123Z``, so text order is time order); ``attributes``
is a JSON object. ``question``, ``abstained`` and ``config_hash`` are copies of the root span's attributes of
those names, kept in columns so that listing can filter on them.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel

from tether._sqlite import enable_wal
from tether.errors import TetherError

STORE_VERSION = 1
QUESTION = "question"
ABSTAINED = "abstained"
CONFIG_HASH = "config_hash"
"""Root attributes copied into columns of ``traces`` (set them on the request: ``tracing.request(name, {...})``)."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS traces (
        trace_id TEXT PRIMARY KEY, name TEXT NOT NULL, started TEXT NOT NULL, ms REAL NOT NULL,
        status TEXT NOT NULL, question TEXT, abstained INTEGER, config_hash TEXT, attributes TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS traces_started ON traces (started)",
    """CREATE TABLE IF NOT EXISTS spans (
        trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent TEXT, name TEXT NOT NULL, started TEXT NOT NULL,
        ms REAL NOT NULL, status TEXT NOT NULL, error TEXT, attributes TEXT NOT NULL,
        PRIMARY KEY (trace_id, span_id))""",
)
_BUSY_MS = 5000
_HEX = re.compile(r"[0-9a-f]{1,32}")


class TraceError(TetherError):
    """The trace store is missing, unreadable or not a trace store, or a trace id matches nothing (or too much)."""


class SpanRow(NamedTuple):
    """One finished span, as the store writes it."""

    trace_id: str
    span_id: str
    parent: str | None
    name: str
    started: str
    ms: float
    status: str
    error: str | None
    attributes: Mapping[str, Any]


def iso_utc(ns: int) -> str:
    """Nanoseconds since the epoch as fixed-width UTC ISO-8601 text (microseconds)."""
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _create_private(path: Path) -> None:
    """Create the store file readable by its owner only (it holds questions and prompts)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


class TraceWriter:
    """Appends traces to the store at ``path``: one connection per process, guarded by a lock, opened (and the
    file created, mode 0600) at the first write. Each call to :meth:`write` is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        self._conn = None  # a connection inherited across fork() is never used
        _create_private(self.path)
        conn = sqlite3.connect(self.path, timeout=_BUSY_MS / 1000, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, STORE_VERSION):
                raise TraceError(
                    f"{self.path} is a trace store of format {version}; this Tether writes format {STORE_VERSION}"
                )
            if version == 0:
                enable_wal(conn)  # waits while another process creating the store holds its write lock
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for stmt in _SCHEMA:
                        conn.execute(stmt)
                    conn.execute(f"PRAGMA user_version = {STORE_VERSION}")
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL: durable across crashes of the process
        except BaseException:
            conn.close()
            raise
        self._conn, self._pid = conn, os.getpid()
        return conn

    def write(self, spans: Sequence[SpanRow], root: SpanRow | None = None) -> None:
        """Store ``spans`` and, when given, the request's root span as a row of ``traces``, in one transaction.

        Raises:
            sqlite3.Error, OSError, TraceError: the store cannot be opened or written (the caller counts it).
        """
        self.write_many([(spans, root)])

    def write_many(self, requests: Sequence[tuple[Sequence[SpanRow], SpanRow | None]]) -> None:
        """Store several requests (their spans, and their root span or None) in one transaction.

        Raises:
            sqlite3.Error, OSError, TraceError: the store cannot be opened or written (the caller counts it).
        """
        span_rows = [
            (s.trace_id, s.span_id, s.parent, s.name, s.started, s.ms, s.status, s.error, _dumps(s.attributes))
            for spans, _ in requests
            for s in spans
        ]
        trace_rows = [_trace_row(root) for _, root in requests if root is not None]
        with self._lock:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT OR REPLACE INTO spans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", span_rows)
                conn.executemany("INSERT OR REPLACE INTO traces VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", trace_rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


def _trace_row(root: SpanRow) -> tuple[object, ...]:
    a = root.attributes
    abstained, question, config_hash = a.get(ABSTAINED), a.get(QUESTION), a.get(CONFIG_HASH)
    return (
        root.trace_id,
        root.name,
        root.started,
        root.ms,
        root.status,
        question if isinstance(question, str) else None,
        int(abstained) if isinstance(abstained, bool) else None,
        config_hash if isinstance(config_hash, str) else None,
        _dumps(a),
    )


def _dumps(attributes: Mapping[str, Any]) -> str:
    return json.dumps(dict(attributes), ensure_ascii=False, separators=(",", ":"))


# -- reading ---------------------------------------------------------------------------------------------------


class TraceSummary(BaseModel):
    """One request, as `tether trace list` shows it."""

    trace_id: str
    name: str
    started: str
    ms: float
    status: str
    question: str | None
    abstained: bool | None
    config_hash: str | None


class SpanRecord(BaseModel):
    """One span of a trace: the request's root (``parent`` null) or a stage."""

    span_id: str
    parent: str | None
    name: str
    started: str
    ms: float
    status: str
    error: str | None
    attributes: dict[str, Any]


class TraceDetail(BaseModel):
    """A request and every span of it, in the order they started (`tether trace show`)."""

    trace_id: str
    name: str | None
    started: str
    ms: float | None
    status: str | None
    attributes: dict[str, Any]
    complete: bool
    """False when the root span was never stored (the process ended mid-request): only its stages are known."""
    spans: list[SpanRecord]


def _loads(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {"_unreadable": text}
    return value if isinstance(value, dict) else {"_unreadable": value}


class AskOutcome(BaseModel):
    """One ask as the monitor sees it: when, how long, what was asked, and what the stages decided."""

    trace_id: str
    started: str
    ms: float
    question: str
    abstained: bool
    policy_refused: bool = False  # a policy rule denied the answer or asked for an approval (before or after drafting)
    injection_flagged: bool = False  # a passage the answer could cite was flagged as a possible prompt injection
    claims_rejected: bool = False  # llm mode: the verifier rejected at least one drafted claim


def _outcome(row: tuple[Any, ...]) -> AskOutcome:
    policy = _loads(row[5] or "{}")
    answer = _loads(row[6] or "{}")
    refusals = ("deny", "require_approval")  # before drafting (the policy stage), or after (the answer stage)
    refused = policy.get("policy.action") in refusals or answer.get("policy.draft.action") in refusals
    rejected = False
    for key, value in answer.items():
        if key.startswith("step.verify"):
            text = value if isinstance(value, str) else json.dumps(value)
            labels = re.findall(r'"label":\s*"(\w+)"', text)
            rejected = rejected or any(label != "SUPPORTED" for label in labels)
    return AskOutcome(
        trace_id=row[0],
        started=row[1],
        ms=row[2],
        question=row[3],
        abstained=bool(row[4]),
        policy_refused=refused,
        injection_flagged=bool(answer.get("injection.flagged")),
        claims_rejected=rejected,
    )


class TraceReader:
    """Reads a trace store without changing it. Use as a context manager.

    Raises:
        TraceError: there is no file at ``path``, or it is not a trace store this Tether reads.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise TraceError(
                f"no trace store at {path}: nothing has been traced there yet (requests are traced while "
                "tracing.enabled is true; tracing.path says where)"
            )
        uri = path.resolve().as_uri()
        try:
            self._conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=_BUSY_MS / 1000)
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.OperationalError:
            # WAL in a folder we cannot write: read an immutable snapshot (no writer can be there either)
            self._conn = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True)
            version, tables = self._probe(path)
        except sqlite3.DatabaseError as e:
            raise TraceError(f"{path} is not a Tether trace store (not an SQLite database: {e})") from None
        if version != STORE_VERSION or not {"traces", "spans"} <= tables:
            self._conn.close()
            raise TraceError(f"{path} is not a Tether trace store of format {STORE_VERSION} (found format {version})")

    def _probe(self, path: Path) -> tuple[int, set[str]]:
        try:
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as e:
            raise TraceError(f"cannot read the trace store {path}: {e}") from None
        return int(version), tables

    def __enter__(self) -> TraceReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.close()

    def traces(
        self, *, since: str | None = None, abstained: bool | None = None, limit: int = 50, tenant: str | None = None
    ) -> list[TraceSummary]:
        """The newest traces first: started at or after ``since`` (UTC ISO text), abstained or not, of ``tenant``'s
        requests when given, at most ``limit`` (0 = all)."""
        where: list[str] = ["1"]
        args: list[object] = []
        if tenant is not None:
            where.append("json_extract(attributes, '$.\"caller.tenant\"') = ?")
            args.append(tenant)
        if since is not None:
            where.append("started >= ?")
            args.append(since)
        if abstained is not None:
            where.append("abstained = ?")
            args.append(int(abstained))
        sql = (
            "SELECT trace_id, name, started, ms, status, question, abstained, config_hash FROM traces "
            f"WHERE {' AND '.join(where)} ORDER BY started DESC, trace_id"
        )
        if limit > 0:
            sql += f" LIMIT {int(limit)}"
        rows = self._query(sql, args)
        return [
            TraceSummary(
                trace_id=r[0],
                name=r[1],
                started=r[2],
                ms=r[3],
                status=r[4],
                question=r[5],
                abstained=None if r[6] is None else bool(r[6]),
                config_hash=r[7],
            )
            for r in rows
        ]

    def _query(self, sql: str, args: Sequence[object]) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as e:
            raise TraceError(f"cannot read the trace store {self.path}: {e}") from None

    def ask_outcomes(self, *, since: str | None = None) -> list[AskOutcome]:
        """Every answered ask, oldest first, with what its stages decided (for `tether monitor`)."""
        where, args = "t.question IS NOT NULL AND t.abstained IS NOT NULL", []
        if since is not None:
            where += " AND t.started >= ?"
            args.append(since)
        spans = self._tables()
        if "spans" not in spans:
            return []
        rows = self._query(
            "SELECT t.trace_id, t.started, t.ms, t.question, t.abstained, p.attributes, a.attributes FROM traces t "
            "LEFT JOIN spans p ON p.trace_id = t.trace_id AND p.name = 'stage.policy' "
            "LEFT JOIN spans a ON a.trace_id = t.trace_id AND a.name = 'stage.answer' "
            f"WHERE {where} ORDER BY t.started, t.trace_id",
            args,
        )
        return [_outcome(r) for r in rows]

    def _tables(self) -> set[str]:
        return {r[0] for r in self._query("SELECT name FROM sqlite_master WHERE type = 'table'", [])}

    def resolve(self, prefix: str) -> str:
        """The one trace id that starts with ``prefix`` (hex, any case).

        Raises:
            TraceError: ``prefix`` is not hex, or matches no trace or several.
        """
        p = prefix.strip().lower()
        if not _HEX.fullmatch(p):
            raise TraceError(f"{prefix!r} is not a trace id: trace ids are 32 hex digits (a prefix will do)")
        ids = [
            r[0]
            for r in self._query(
                "SELECT trace_id FROM traces WHERE trace_id GLOB ? UNION SELECT trace_id FROM spans WHERE trace_id "
                "GLOB ? LIMIT 6",
                (p + "*", p + "*"),
            )
        ]
        if not ids:
            raise TraceError(f"no trace {p} in {self.path} (`tether trace list` shows the stored ones)")
        if len(ids) > 1:
            shown = ", ".join(i[:16] for i in ids[:5])
            many = "more than 5" if len(ids) > 5 else str(len(ids))
            raise TraceError(f"{p} matches {many} traces ({shown}…): give more digits")
        return str(ids[0])

    def get(self, prefix: str) -> TraceDetail:
        """The trace whose id starts with ``prefix``, with every span (see :meth:`resolve` for the errors)."""
        trace_id = self.resolve(prefix)
        spans = [
            SpanRecord(
                span_id=r[0],
                parent=r[1],
                name=r[2],
                started=r[3],
                ms=r[4],
                status=r[5],
                error=r[6],
                attributes=_loads(r[7]),
            )
            for r in self._query(
                "SELECT span_id, parent, name, started, ms, status, error, attributes FROM spans WHERE trace_id = ? "
                "ORDER BY started, span_id",
                (trace_id,),
            )
        ]
        head = self._query("SELECT name, started, ms, status, attributes FROM traces WHERE trace_id = ?", (trace_id,))
        if head:
            name, started, ms, status, attrs = head[0]
            return TraceDetail(
                trace_id=trace_id,
                name=name,
                started=started,
                ms=ms,
                status=status,
                attributes=_loads(attrs),
                complete=True,
                spans=spans,
            )
        return TraceDetail(
            trace_id=trace_id,
            name=None,
            started=spans[0].started if spans else "",
            ms=None,
            status=None,
            attributes={},
            complete=False,
            spans=spans,
        )
