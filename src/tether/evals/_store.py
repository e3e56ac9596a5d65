"""Every eval run is stored in SQLite: summary, per-case results, and a cache of answers by content hash."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from tether.contracts import Answer
from tether.errors import DataError
from tether.evals._results import CaseResult, RunReport, RunSummary

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, created TEXT NOT NULL, config_hash TEXT NOT NULL, summary TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    case_id TEXT NOT NULL, repeat INTEGER NOT NULL, passed INTEGER NOT NULL, result TEXT NOT NULL,
    PRIMARY KEY (run_id, case_id, repeat)
);
CREATE TABLE IF NOT EXISTS answer_cache (key TEXT PRIMARY KEY, answer TEXT NOT NULL);
"""


class EvalStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # one connection shared by the runner's workers: the lock keeps a transaction (save) from taking in
        # another thread's statements, and statements from interleaving on the connection
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- cache -------------------------------------------------------------------
    def cached(self, key: str) -> Answer | None:
        with self._lock:
            row = self._conn.execute("SELECT answer FROM answer_cache WHERE key=?", (key,)).fetchone()
        return None if row is None else Answer.model_validate_json(row[0])

    def cache(self, key: str, answer: Answer) -> None:
        data = answer.model_dump_json()
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO answer_cache(key, answer) VALUES (?, ?)", (key, data))

    # -- runs --------------------------------------------------------------------
    def save(self, report: RunReport) -> None:
        s = report.summary
        rows = [(s.run_id, r.case_id, r.repeat, int(r.passed), r.model_dump_json()) for r in report.results]
        with self._lock:
            c = self._conn
            c.execute("BEGIN IMMEDIATE")
            try:
                c.execute(
                    "INSERT INTO runs(run_id, created, config_hash, summary) VALUES (?,?,?,?)",
                    (s.run_id, s.created.isoformat(), s.config_hash, s.model_dump_json()),
                )
                c.executemany("INSERT INTO results(run_id, case_id, repeat, passed, result) VALUES (?,?,?,?,?)", rows)
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

    def runs(self, limit: int = 20) -> list[RunSummary]:
        with self._lock:
            rows = self._conn.execute("SELECT summary FROM runs ORDER BY created DESC LIMIT ?", (limit,)).fetchall()
        return [RunSummary.model_validate_json(r[0]) for r in rows]

    def load(self, run_id: str) -> RunReport:
        """A stored run by id, by unique id prefix, or 'latest' / 'previous'."""
        with self._lock:
            rid = self._resolve(run_id)
            summary = self._conn.execute("SELECT summary FROM runs WHERE run_id=?", (rid,)).fetchone()
            rows = self._conn.execute(
                "SELECT result FROM results WHERE run_id=? ORDER BY case_id, repeat", (rid,)
            ).fetchall()
        results = [CaseResult.model_validate_json(r[0]) for r in rows]
        return RunReport(summary=RunSummary.model_validate_json(summary[0]), results=results)

    def _resolve(self, run_id: str) -> str:
        if run_id in ("latest", "previous"):
            rows = self._conn.execute("SELECT run_id FROM runs ORDER BY created DESC LIMIT 2").fetchall()
            i = 0 if run_id == "latest" else 1
            if len(rows) <= i:
                raise DataError(f"no {run_id} run in {self.path}; run `tether eval PATH` first")
            return str(rows[i][0])
        rows = self._conn.execute("SELECT run_id FROM runs WHERE run_id LIKE ?", (run_id + "%",)).fetchall()
        if not rows:
            raise DataError(f"no eval run {run_id!r} in {self.path}; `tether eval runs` lists them")
        if len(rows) > 1:
            raise DataError(f"run id {run_id!r} is ambiguous ({len(rows)} runs); give more characters")
        return str(rows[0][0])


def dump_report(report: RunReport) -> str:
    return json.dumps(json.loads(report.model_dump_json()), indent=2)
