"""A tamper-evident, append-only audit log: one SQLite file whose entries form a SHA-256 hash chain.

Each entry stores ``seq`` (1, 2, 3, ... with no gaps), ``ts`` (UTC, ISO 8601), ``kind``, ``actor``,
``config_hash``, ``payload`` (canonical JSON), ``prev_hash`` and ``hash``, where ``hash`` is the SHA-256 of
the canonical JSON of every other field (``prev_hash`` included) and the first entry's ``prev_hash`` is 64
zeros. Editing, deleting or reordering entries therefore breaks the chain, and :meth:`AuditLog.verify` names
the first entry where it breaks and why.

A chain alone cannot reveal that its tail was cut off. For that, store :meth:`AuditLog.head` somewhere else
(an "anchor") and pass it back as ``verify(expect_head=...)``.

Appends run in one ``BEGIN IMMEDIATE`` transaction that reads the last entry and inserts the next, so
several processes writing the same file still build a single chain.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self

from pydantic import BaseModel, ConfigDict

from tether.errors import TetherError

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the first entry."""

FORMAT_NAME = "tether-audit-log"
FORMAT_VERSION = 1

_PAGE = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only: entries cannot be changed');
END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only: entries cannot be deleted');
END;
"""
# The triggers only stop accidents (a stray UPDATE in a SQLite shell); anyone can drop them, which is why
# the hash chain, not the triggers, is what makes tampering evident.

_COLUMNS = "seq, ts, kind, actor, config_hash, payload, prev_hash, hash"


class AuditLogError(TetherError):
    """The audit log file is missing, is not an audit log, or cannot be written."""


class AuditEntry(BaseModel):
    """One entry of the audit log, exactly as stored.

    Attributes:
        seq: Position in the log, from 1, without gaps.
        ts: When it was appended (UTC, ISO 8601 with microseconds).
        kind: What happened, e.g. ``"tool_call"``, ``"approval"``, ``"refusal"``, ``"answer"``, ``"policy"``.
        actor: Who caused it (caller or profile name).
        config_hash: Hash of the configuration in force ("" when not given).
        payload: The details, as a JSON object.
        prev_hash: ``hash`` of the previous entry (64 zeros for the first).
        hash: SHA-256 of the canonical JSON of all the other fields.
    """

    model_config = ConfigDict(frozen=True)

    seq: int
    ts: str
    kind: str
    actor: str
    config_hash: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    @property
    def time(self) -> datetime:
        """``ts`` as an aware datetime."""
        return datetime.fromisoformat(self.ts)


class AuditReport(BaseModel):
    """The outcome of :meth:`AuditLog.verify`.

    Attributes:
        ok: True when every entry checks out (and the anchor, when one was given, matches).
        entries: Number of entries stored in the log.
        first_bad_seq: The first entry that is wrong or missing, or None when ``ok``.
        problem: What is wrong with it, in words, or None when ``ok``.
        head_hash: ``hash`` of the last stored entry (64 zeros for an empty log).
    """

    model_config = ConfigDict(frozen=True)

    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str | None = None
    head_hash: str


class AuditHead(NamedTuple):
    """The last entry's (seq, hash): an anchor to keep somewhere else and pass to ``verify(expect_head=...)``."""

    seq: int
    hash: str


def canonical_json(value: Any) -> str:
    """The canonical JSON text of ``value``: sorted keys, no spaces, UTF-8 characters kept, no NaN.

    Raises:
        AuditLogError: When ``value`` cannot be represented as JSON.
    """
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise AuditLogError(f"audit payload is not plain JSON data: {e}") from e


def entry_hash(*, seq: int, ts: str, kind: str, actor: str, config_hash: str, payload: str, prev_hash: str) -> str:
    """SHA-256 (hex) of an entry: the canonical JSON of all its fields but ``hash``.

    Args:
        seq: The entry's position.
        ts: Its timestamp text, as stored.
        kind: Its kind.
        actor: Its actor.
        config_hash: Its configuration hash.
        payload: Its payload as the stored canonical JSON *text* (so any change to the stored bytes shows).
        prev_hash: The previous entry's hash.

    Returns:
        64 lowercase hex digits.
    """
    fields = {
        "seq": seq,
        "ts": ts,
        "kind": kind,
        "actor": actor,
        "config_hash": config_hash,
        "payload": payload,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(fields).encode("utf-8")).hexdigest()


def _row_hash(row: tuple[Any, ...], seq: int | None = None) -> str:
    """Recompute the hash of a raw row (tampered rows may hold odd types, so everything is coerced)."""
    s, ts, kind, actor, config_hash, payload, prev_hash, _ = row
    try:
        return entry_hash(
            seq=int(s if seq is None else seq),
            ts=str(ts),
            kind=str(kind),
            actor=str(actor),
            config_hash=str(config_hash),
            payload=str(payload),
            prev_hash=str(prev_hash),
        )
    except (TypeError, ValueError, AuditLogError):
        return ""


def _entry(row: tuple[Any, ...]) -> AuditEntry:
    seq, ts, kind, actor, config_hash, payload, prev_hash, hash_ = row
    try:
        return AuditEntry(
            seq=seq,
            ts=ts,
            kind=kind,
            actor=actor,
            config_hash=config_hash,
            payload=json.loads(payload),
            prev_hash=prev_hash,
            hash=hash_,
        )
    except (TypeError, ValueError) as e:  # pydantic's ValidationError is a ValueError
        raise AuditLogError(
            f"entry {seq} of the audit log cannot be read ({e.__class__.__name__}); it was altered: run verify"
        ) from e


def _missing(first: int, last: int) -> str:
    return f"entry {first}" if first == last else f"entries {first}–{last}"


class AuditLog:
    """An append-only, hash-chained audit log in its own SQLite file (WAL mode).

    Open it with :meth:`open`; one instance may be shared between threads, and any number of processes may
    append to the same file.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, *, read_only: bool) -> None:
        """Use :meth:`open` instead."""
        self._conn = conn
        self.path = path
        self.read_only = read_only
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, path: str | Path, *, read_only: bool = False, durable: bool = True) -> AuditLog:
        """Open the audit log at ``path``, creating it (and its folder) when it does not exist.

        Args:
            path: The SQLite file.
            read_only: Open without the right to append; the file must then exist.
            durable: Sync every append to disk (``synchronous=FULL``). With False an append survives a
                crash of the process but may be lost on power failure (``synchronous=NORMAL``); faster.

        Returns:
            The open log.

        Raises:
            AuditLogError: The file is missing (read-only), is not an SQLite database, is another kind of
                database, or was written by a newer Tether.
        """
        p = Path(path)
        if read_only:
            conn = cls._connect_read_only(p)
        else:
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(p, timeout=60.0, isolation_level=None, check_same_thread=False)
            except (OSError, sqlite3.Error) as e:
                raise AuditLogError(f"cannot open the audit log {p}: {e}") from e
        try:
            cls._check_or_create(conn, p, create=not read_only)
            if not read_only:
                conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        except BaseException:
            conn.close()
            raise
        return cls(conn, p, read_only=read_only)

    @staticmethod
    def _connect_read_only(p: Path) -> sqlite3.Connection:
        if not p.is_file():
            raise AuditLogError(f"no audit log at {p}: the file does not exist")
        uri = p.resolve().as_uri()
        try:
            conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=60.0, isolation_level=None)
        except sqlite3.Error as e:
            raise AuditLogError(f"cannot open the audit log {p} for reading: {e}") from e
        try:
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.OperationalError:
            # A WAL database in a folder we cannot write (no -shm file to create): read it as an immutable
            # snapshot instead. Nobody can be appending there, since appending needs that folder too.
            conn.close()
            try:
                conn = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None)
            except sqlite3.Error as e:
                raise AuditLogError(f"cannot open the audit log {p} for reading: {e}") from e
        except sqlite3.DatabaseError:
            pass  # not a database at all: _check_or_create says so
        return conn

    @staticmethod
    def _check_or_create(conn: sqlite3.Connection, p: Path, *, create: bool) -> None:
        not_a_log = f"{p} is not a Tether audit log"
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as e:
            raise AuditLogError(f"{not_a_log} (not an SQLite database: {e})") from e
        if not tables and create:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("BEGIN IMMEDIATE")  # executescript() would COMMIT: run the statements one by one
                try:
                    for stmt in _split_sql(_SCHEMA):
                        conn.execute(stmt)
                    conn.execute(
                        "INSERT OR IGNORE INTO audit_meta (key, value) VALUES ('format', ?), ('version', ?)",
                        (FORMAT_NAME, str(FORMAT_VERSION)),
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise AuditLogError(f"cannot create the audit log {p}: {e}") from e
            tables = {"audit_meta", "entries"}
        if "audit_meta" not in tables or "entries" not in tables:
            what = "an empty SQLite database" if not tables else "an SQLite database of another kind"
            raise AuditLogError(f"{not_a_log} ({what}: no audit_meta/entries tables)")
        try:
            meta = dict(conn.execute("SELECT key, value FROM audit_meta").fetchall())
        except sqlite3.Error as e:
            raise AuditLogError(f"{not_a_log} (cannot read audit_meta: {e})") from e
        if meta.get("format") != FORMAT_NAME:
            raise AuditLogError(f"{not_a_log} (audit_meta says format {meta.get('format')!r})")
        try:
            version = int(meta.get("version", "0"))
        except ValueError:
            version = 0
        if version > FORMAT_VERSION:
            raise AuditLogError(
                f"the audit log {p} has format version {version}, newer than this Tether reads "
                f"({FORMAT_VERSION}); upgrade Tether"
            )
        if version < 1:
            raise AuditLogError(f"{not_a_log} (audit_meta has no valid version)")

    def close(self) -> None:
        """Close the file. The log cannot be used afterwards."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ writing

    def append(self, kind: str, actor: str, payload: dict[str, Any], config_hash: str = "") -> AuditEntry:
        """Append one entry, chained to the current last entry, in a single transaction.

        Args:
            kind: What happened (non-empty), e.g. ``"tool_call"``, ``"approval"``, ``"refusal"``.
            actor: Who caused it (caller or profile name).
            payload: The details; must be a JSON object (nested dicts, lists, str, numbers, bools, None).
            config_hash: Hash of the configuration in force.

        Returns:
            The entry as stored.

        Raises:
            AuditLogError: The log is read-only, ``kind`` is empty, the payload is not JSON data, or the
                write failed.
        """
        if self.read_only:
            raise AuditLogError(f"the audit log {self.path} was opened read-only; cannot append")
        if not kind:
            raise AuditLogError("an audit entry needs a kind (e.g. 'tool_call')")
        if not isinstance(payload, dict):
            raise AuditLogError(f"an audit payload must be a JSON object (a dict), not {type(payload).__name__}")
        payload_json = canonical_json(payload)
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    last = self._conn.execute("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
                    seq, prev_hash = (1, GENESIS_HASH) if last is None else (int(last[0]) + 1, str(last[1]))
                    ts = datetime.now(UTC).isoformat(timespec="microseconds")
                    h = entry_hash(
                        seq=seq,
                        ts=ts,
                        kind=kind,
                        actor=actor,
                        config_hash=config_hash,
                        payload=payload_json,
                        prev_hash=prev_hash,
                    )
                    self._conn.execute(
                        f"INSERT INTO entries ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (seq, ts, kind, actor, config_hash, payload_json, prev_hash, h),
                    )
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise AuditLogError(f"could not append to the audit log {self.path}: {e}") from e
        return _entry((seq, ts, kind, actor, config_hash, payload_json, prev_hash, h))

    # ------------------------------------------------------------------ reading

    def entries(self, since: int = 1) -> Iterator[AuditEntry]:
        """Yield the stored entries with ``seq >= since``, in order.

        Entries are read a page at a time, so appending while iterating is safe (new entries may appear).
        """
        nxt = since
        while True:
            with self._lock:
                rows = self._conn.execute(
                    f"SELECT {_COLUMNS} FROM entries WHERE seq >= ? ORDER BY seq LIMIT ?", (nxt, _PAGE)
                ).fetchall()
            for row in rows:
                yield _entry(row)
            if len(rows) < _PAGE:
                return
            nxt = int(rows[-1][0]) + 1

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def head(self) -> AuditHead:
        """The last entry's (seq, hash), ``(0, "0" * 64)`` for an empty log.

        Store it outside the log (another system, a signed receipt) and pass it to
        ``verify(expect_head=...)`` later to detect a cut-off tail.
        """
        with self._lock:
            row = self._conn.execute("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        return AuditHead(0, GENESIS_HASH) if row is None else AuditHead(int(row[0]), str(row[1]))

    # ------------------------------------------------------------------ verifying

    def verify(self, expect_head: tuple[int, str] | None = None) -> AuditReport:
        """Check the whole chain and name the first entry that is wrong or missing.

        Checks, entry by entry: seqs run 1, 2, 3, ... without gaps; each hash matches the entry's contents;
        each ``prev_hash`` equals the previous entry's hash. With ``expect_head`` (an earlier :meth:`head`),
        also checks that the anchored entry is still there, unchanged.

        Args:
            expect_head: An anchor ``(seq, hash)`` taken earlier, or None.

        Returns:
            The report; ``problem`` says what is wrong in words, e.g.
            ``"entry 7: hash does not match its contents (edited?)"``.
        """
        with self._lock:
            self._conn.execute("BEGIN")  # one snapshot: concurrent appends do not disturb the walk
            try:
                return self._verify(expect_head)
            finally:
                self._conn.execute("COMMIT")

    def _verify(self, expect_head: tuple[int, str] | None) -> AuditReport:
        conn = self._conn
        count = int(conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
        last = conn.execute("SELECT hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        head_hash = GENESIS_HASH if last is None else str(last[0])

        def bad(seq: int, problem: str) -> AuditReport:
            return AuditReport(ok=False, entries=count, first_bad_seq=seq, problem=problem, head_hash=head_hash)

        anchor: AuditHead | None = None
        if expect_head is not None:
            anchor = AuditHead(int(expect_head[0]), str(expect_head[1]))

        expected = 1
        prev_hash = GENESIS_HASH
        cur = conn.execute(f"SELECT {_COLUMNS} FROM entries ORDER BY seq")
        while rows := cur.fetchmany(_PAGE):
            for row in rows:
                seq, stored_hash, stored_prev = row[0], str(row[7]), str(row[6])
                if not isinstance(seq, int) or seq < expected:
                    return bad(int(seq) if isinstance(seq, int) else expected, f"entry {seq}: invalid seq")
                if seq > expected:
                    where = f"the log starts at {seq}" if expected == 1 else f"seq jumps from {expected - 1} to {seq}"
                    return bad(expected, f"{_missing(expected, seq - 1)} missing: {where} (deleted)")
                if _row_hash(row) != stored_hash:
                    moved = self._moved_from(row)
                    if moved is not None:
                        return bad(
                            seq,
                            f"entry {seq}: holds the contents of entry {moved} (entries were reordered or renumbered)",
                        )
                    return bad(seq, f"entry {seq}: hash does not match its contents (edited?)")
                if stored_prev != prev_hash:
                    if seq == 1:
                        return bad(1, "entry 1: prev_hash is not the genesis value of 64 zeros (edited?)")
                    return bad(
                        seq,
                        f"entry {seq}: prev_hash does not match entry {seq - 1} (an entry was deleted or "
                        f"reordered, or entry {seq - 1} was edited and its hash recomputed)",
                    )
                if anchor is not None and seq == anchor.seq and stored_hash != anchor.hash:
                    return bad(
                        seq,
                        f"entry {seq}: hash differs from the anchor taken earlier "
                        "(the log was rewritten after the anchor was taken)",
                    )
                prev_hash = stored_hash
                expected += 1
        last_seq = expected - 1
        if anchor is not None and anchor.seq > last_seq:
            return bad(
                last_seq + 1,
                f"{_missing(last_seq + 1, anchor.seq)} missing: the log ends at entry {last_seq} but the anchor "
                f"expects entry {anchor.seq} (truncated)",
            )
        return AuditReport(ok=True, entries=count, head_hash=head_hash)

    def _moved_from(self, row: tuple[Any, ...]) -> int | None:
        """If ``row`` is an intact entry that sits at the wrong seq, the seq it was written at."""
        seq, prev_hash, stored_hash = int(row[0]), str(row[6]), str(row[7])
        candidates = {seq - 1, seq + 1}
        if prev_hash == GENESIS_HASH:
            candidates.add(1)
        for (s,) in self._conn.execute("SELECT seq FROM entries WHERE hash = ?", (prev_hash,)):
            candidates.add(int(s) + 1)  # it followed the entry whose hash it points at
        for (s,) in self._conn.execute("SELECT seq FROM entries WHERE prev_hash = ?", (stored_hash,)):
            candidates.add(int(s) - 1)  # it preceded the entry that points at it
        for c in sorted(candidates):
            if c >= 1 and c != seq and _row_hash(row, seq=c) == stored_hash:
                return c
        return None


def _split_sql(script: str) -> list[str]:
    """Split the schema into statements (``sqlite3.complete_statement`` keeps trigger bodies whole)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


def verify_file(path: str | Path, expect_head: tuple[int, str] | None = None) -> AuditReport:
    """Open the audit log at ``path`` read-only and verify it.

    Args:
        path: The audit log's SQLite file.
        expect_head: An anchor ``(seq, hash)`` taken earlier with :meth:`AuditLog.head`, or None.

    Returns:
        The report of :meth:`AuditLog.verify`.

    Raises:
        AuditLogError: The file does not exist or is not a Tether audit log.
    """
    with AuditLog.open(path, read_only=True) as log:
        return log.verify(expect_head=expect_head)
