"""The service's own records: conversations and their turns, feedback, ingest jobs. Every row is a tenant's.

One SQLite file (``service.data_path``, mode 0600, WAL). Every read names the tenant in its WHERE clause, so a
conversation, feedback record or job id of another tenant reads as "not found", exactly like one that does not
exist: an id says nothing about whether it exists elsewhere.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from tether._sqlite import ThreadConnections, immediate
from tether.contracts import Feedback

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, user TEXT NOT NULL, created TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS conversations_owner ON conversations(tenant, user);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY, conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    question TEXT NOT NULL, standalone TEXT NOT NULL, rewrite_reason TEXT NOT NULL, answer TEXT NOT NULL,
    trace_id TEXT NOT NULL, created TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS turns_conversation ON turns(conversation_id);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, user TEXT NOT NULL, category TEXT NOT NULL,
    trace_id TEXT NOT NULL, record TEXT NOT NULL, created TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS feedback_tenant ON feedback(tenant);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, user TEXT NOT NULL, status TEXT NOT NULL, files TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '{}', summary TEXT, error TEXT, created TEXT NOT NULL, updated TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_tenant ON jobs(tenant);
"""

JobStatus = Literal["queued", "running", "done", "failed"]
FeedbackCategory = Literal["wrong", "unsupported", "incomplete", "should_abstain", "should_answer", "other"]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Turn(BaseModel):
    question: str = Field(description="as the user wrote it")
    standalone: str = Field(description="the question retrieval saw (the follow-up rewritten, or the same)")
    rewrite_reason: str = ""
    answer: dict[str, Any]
    trace_id: str = ""
    created: datetime


class Conversation(BaseModel):
    id: str
    created: datetime
    turns: list[Turn] = Field(default_factory=list)


class FeedbackRecord(BaseModel):
    id: int
    category: str
    trace_id: str
    created: datetime
    feedback: Feedback


class Job(BaseModel):
    """An ingest of uploaded files, run in the background; resumed after a restart."""

    id: str
    status: JobStatus
    files: list[str]
    progress: dict[str, Any] = Field(default_factory=dict)
    summary: dict[str, Any] | None = None
    error: str | None = None
    created: datetime
    updated: datetime


class ServiceData:
    """Conversations, feedback and jobs in one SQLite file; thread-safe (a connection per thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.exists()
        if fresh:
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)  # readable by its owner only, from the start
            os.close(fd)
        self._conns = ThreadConnections(path, foreign_keys=True)
        self._conn.executescript(_SCHEMA)

    @property
    def _conn(self) -> sqlite3.Connection:
        return self._conns.get()

    def close(self) -> None:
        self._conns.close()

    # -- conversations ---------------------------------------------------------
    def new_conversation(self, tenant: str, user: str) -> Conversation:
        cid = "c_" + secrets.token_hex(12)
        now = _now()
        with immediate(self._conn) as c:
            c.execute("INSERT INTO conversations VALUES (?,?,?,?)", (cid, tenant, user, now))
        return Conversation(id=cid, created=datetime.fromisoformat(now))

    def conversation(self, tenant: str, user: str, cid: str) -> Conversation | None:
        """The conversation ``cid`` if it is this tenant's and this user's, with its turns (oldest first)."""
        row = self._conn.execute(
            "SELECT created FROM conversations WHERE id=? AND tenant=? AND user=?", (cid, tenant, user)
        ).fetchone()
        if row is None:
            return None
        turns = [
            Turn(
                question=r[0],
                standalone=r[1],
                rewrite_reason=r[2],
                answer=json.loads(r[3]),
                trace_id=r[4],
                created=datetime.fromisoformat(r[5]),
            )
            for r in self._conn.execute(
                "SELECT question, standalone, rewrite_reason, answer, trace_id, created FROM turns"
                " WHERE conversation_id=? ORDER BY id",
                (cid,),
            )
        ]
        return Conversation(id=cid, created=datetime.fromisoformat(row[0]), turns=turns)

    def add_turn(self, cid: str, turn: Turn) -> None:
        with immediate(self._conn) as c:
            c.execute(
                "INSERT INTO turns(conversation_id, question, standalone, rewrite_reason, answer, trace_id, created)"
                " VALUES (?,?,?,?,?,?,?)",
                (
                    cid,
                    turn.question,
                    turn.standalone,
                    turn.rewrite_reason,
                    json.dumps(turn.answer),
                    turn.trace_id,
                    turn.created.isoformat(),
                ),
            )

    def delete_conversation(self, tenant: str, user: str, cid: str) -> bool:
        with immediate(self._conn) as c:
            return (
                c.execute("DELETE FROM conversations WHERE id=? AND tenant=? AND user=?", (cid, tenant, user)).rowcount
                > 0
            )

    # -- feedback ----------------------------------------------------------------
    def add_feedback(self, tenant: str, user: str, category: str, trace_id: str, record: Feedback) -> int:
        with immediate(self._conn) as c:
            cur = c.execute(
                "INSERT INTO feedback(tenant, user, category, trace_id, record, created) VALUES (?,?,?,?,?,?)",
                (tenant, user, category, trace_id, record.model_dump_json(), _now()),
            )
            return int(cur.lastrowid or 0)

    def feedback(self, tenant: str | None, limit: int = 1000) -> list[FeedbackRecord]:
        """A tenant's feedback, newest first (``tenant=None``: every tenant's, for the operator's CLI)."""
        where, args = ("WHERE tenant=?", [tenant]) if tenant is not None else ("", [])
        return [
            FeedbackRecord(
                id=r[0],
                category=r[1],
                trace_id=r[2],
                created=datetime.fromisoformat(r[4]),
                feedback=Feedback.model_validate_json(r[3]),
            )
            for r in self._conn.execute(
                f"SELECT id, category, trace_id, record, created FROM feedback {where} ORDER BY id DESC LIMIT ?",
                [*args, limit],
            )
        ]

    # -- ingest jobs ------------------------------------------------------------
    def new_job(self, tenant: str, user: str, files: list[str]) -> Job:
        jid = "j_" + secrets.token_hex(12)
        now = _now()
        with immediate(self._conn) as c:
            c.execute(
                "INSERT INTO jobs(id, tenant, user, status, files, created, updated) VALUES (?,?,?,?,?,?,?)",
                (jid, tenant, user, "queued", json.dumps(files), now, now),
            )
        got = self.job(tenant, jid)
        assert got is not None
        return got

    def job(self, tenant: str, jid: str) -> Job | None:
        row = self._conn.execute(
            "SELECT id, status, files, progress, summary, error, created, updated FROM jobs WHERE id=? AND tenant=?",
            (jid, tenant),
        ).fetchone()
        return None if row is None else _job(row)

    def jobs(self, tenant: str, limit: int = 50) -> list[Job]:
        return [
            _job(r)
            for r in self._conn.execute(
                "SELECT id, status, files, progress, summary, error, created, updated FROM jobs WHERE tenant=?"
                " ORDER BY created DESC LIMIT ?",
                (tenant, limit),
            )
        ]

    def unfinished_jobs(self) -> list[tuple[str, str]]:
        """(tenant, job id) of jobs queued or running when the service last stopped, oldest first."""
        return [
            (str(r[0]), str(r[1]))
            for r in self._conn.execute(
                "SELECT tenant, id FROM jobs WHERE status IN ('queued', 'running') ORDER BY created"
            )
        ]

    def update_job(
        self,
        jid: str,
        *,
        status: JobStatus | None = None,
        progress: dict[str, Any] | None = None,
        summary: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        sets, args = ["updated=?"], [_now()]
        for col, val in (("status", status), ("progress", progress), ("summary", summary), ("error", error)):
            if val is not None:
                sets.append(f"{col}=?")
                args.append(val if isinstance(val, str) else json.dumps(val))
        with immediate(self._conn) as c:
            c.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id=?", [*args, jid])


def _job(row: tuple[Any, ...]) -> Job:
    return Job(
        id=row[0],
        status=row[1],
        files=json.loads(row[2]),
        progress=json.loads(row[3] or "{}"),
        summary=json.loads(row[4]) if row[4] else None,
        error=row[5],
        created=datetime.fromisoformat(row[6]),
        updated=datetime.fromisoformat(row[7]),
    )
