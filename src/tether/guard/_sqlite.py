"""The audit log's SQLite file: its schema, format versions, opening read-only, and the upgrade from format 1."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from tether._sqlite import enable_wal, immediate
from tether.guard._errors import AuditLogError

FORMAT_NAME = "tether-audit-log"
FORMAT_VERSION = 2
"""1: the hash chain; 2: adds ``key_id`` and ``sig`` to entries and a ``log_id`` (older logs are upgraded in
place when opened for writing, and read as they are)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    key_id TEXT NOT NULL DEFAULT '',
    sig TEXT NOT NULL DEFAULT ''
);
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only: entries cannot be changed');
END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only: entries cannot be deleted');
END;
"""
# The triggers only stop accidents (a stray UPDATE in a SQLite shell); anyone can drop them, which is why
# the hash chain, the signatures and the checkpoints, not the triggers, are what make tampering evident.

COLUMNS = "seq, ts, kind, actor, config_hash, payload, prev_hash, hash, key_id, sig"
V1_COLUMNS = "seq, ts, kind, actor, config_hash, payload, prev_hash, hash, '' AS key_id, '' AS sig"


def connect_read_only(p: Path) -> sqlite3.Connection:
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


_CREATE_WAIT_S = 10.0


def _create(conn: sqlite3.Connection, p: Path) -> None:
    """Create the schema in an empty database. Several processes may try at once (executors starting together):
    the switch to WAL waits while another holds the file (up to 10 s), BEGIN IMMEDIATE by the busy timeout, and
    the statements are idempotent, so whoever comes second finds the tables and the metadata already there
    (INSERT OR IGNORE keeps the first log id)."""
    try:
        enable_wal(conn, _CREATE_WAIT_S)
        with immediate(conn):  # executescript() would COMMIT: run the statements one by one
            for stmt in split_sql(SCHEMA):
                conn.execute(stmt)
            conn.execute(
                "INSERT OR IGNORE INTO audit_meta (key, value) VALUES ('format', ?), ('version', ?), ('log_id', ?)",
                (FORMAT_NAME, str(FORMAT_VERSION), uuid.uuid4().hex),
            )
    except sqlite3.Error as e:
        raise AuditLogError(f"cannot create the audit log {p}: {e}") from e


def check_or_create(conn: sqlite3.Connection, p: Path, *, create: bool) -> int:
    """Check that ``conn`` holds an audit log this Tether reads (creating one in an empty file); its version."""
    not_a_log = f"{p} is not a Tether audit log"
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as e:
        raise AuditLogError(f"{not_a_log} (not an SQLite database: {e})") from e
    if not tables and create:
        _create(conn, p)
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
    return version


def upgrade(conn: sqlite3.Connection, p: Path) -> None:
    """Version 1 -> 2: add the signature columns and a log id (existing entries stay unsigned)."""
    try:
        with immediate(conn):
            cols = {r[1] for r in conn.execute("PRAGMA table_info(entries)")}
            for col in ("key_id", "sig"):
                if col not in cols:
                    conn.execute(f"ALTER TABLE entries ADD COLUMN {col} TEXT NOT NULL DEFAULT ''")
            conn.execute("INSERT OR IGNORE INTO audit_meta (key, value) VALUES ('log_id', ?)", (uuid.uuid4().hex,))
            conn.execute("UPDATE audit_meta SET value = ? WHERE key = 'version'", (str(FORMAT_VERSION),))
    except sqlite3.Error as e:
        raise AuditLogError(f"cannot upgrade the audit log {p} to format {FORMAT_VERSION}: {e}") from e


def split_sql(script: str) -> list[str]:
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
