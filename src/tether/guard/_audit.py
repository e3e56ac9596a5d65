"""A tamper-evident, append-only audit log: one SQLite file whose entries form a SHA-256 hash chain, optionally
signed with a key kept outside the log and checkpointed to a second place.

Each entry stores ``seq`` (1, 2, 3, ... with no gaps), ``ts`` (UTC, ISO 8601), ``kind``, ``actor``,
``config_hash``, ``payload`` (canonical JSON), ``prev_hash`` and ``hash``, where ``hash`` is the SHA-256 of
the canonical JSON of every other field (``prev_hash`` included) and the first entry's ``prev_hash`` is 64
zeros. Editing, deleting or reordering entries therefore breaks the chain, and :meth:`AuditLog.verify` names
the first entry where it breaks and why.

A chain alone does not stop someone who can write the file from rewriting it and recomputing every hash, nor
show that its tail was cut off. Two things do (see docs/audit.md for the threat model):

- a **key** (:class:`AuditKey`, HMAC-SHA256): each entry also stores ``key_id`` and ``sig``, the key's
  signature of its seq and hash; without the key a rewritten entry cannot be signed;
- **checkpoints**: every ``checkpoint_every`` entries, after an instance's first append and on close, a signed
  line "the log held N entries, the last one's hash was H" is appended to a checkpoint file kept elsewhere;
  a log shorter than a checkpoint, or whose entry N differs from it, fails verification.

Appends run in one ``BEGIN IMMEDIATE`` transaction that reads the last entry and inserts the next, so
several processes writing the same file still build a single chain.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from tether.guard._checkpoint import Checkpoint, append_checkpoint, check_checkpoints, make_checkpoint
from tether.guard._entries import (
    GENESIS_HASH,
    AuditEntry,
    AuditHead,
    AuditReport,
    canonical_json,
    entry_from_row,
    entry_hash,
)
from tether.guard._errors import AuditKeyError, AuditLogError
from tether.guard._signing import AuditKey, entry_signed_fields, signed_from_fields
from tether.guard._sqlite import (
    COLUMNS,
    FORMAT_VERSION,
    V1_COLUMNS,
    check_or_create,
    connect_read_only,
    upgrade,
)
from tether.guard._verify import verify_entries
from tether.safety._pii import redact_json

__all__ = [
    "GENESIS_HASH",
    "AuditEntry",
    "AuditHead",
    "AuditLog",
    "AuditLogError",
    "AuditReport",
    "canonical_json",
    "entry_hash",
    "verify_file",
]

_log = logging.getLogger(__name__)

DEFAULT_CHECKPOINT_EVERY = 100

_PAGE = 1000


class AuditLog:
    """An append-only, hash-chained audit log in its own SQLite file (WAL mode), signed when given a key.

    Open it with :meth:`open`; one instance may be shared between threads, and any number of processes may
    append to the same file.

    Example:
        >>> key = load_key_file("/etc/tether/audit.key")  # doctest: +SKIP
        >>> with AuditLog.open("audit.db", key=key, checkpoint_path="/mnt/other/audit.ckpt") as log:  # doctest: +SKIP
        ...     log.append("tool_call", "ana", {"tool": "record_expense", "amount": 120})
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        *,
        read_only: bool,
        key: AuditKey | None = None,
        checkpoint_path: Path | None = None,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        durable: bool = True,
    ) -> None:
        """Use :meth:`open` instead."""
        self._conn = conn
        self.path = path
        self.read_only = read_only
        self.key = key
        self.checkpoint_path = checkpoint_path
        self.checkpoint_every = checkpoint_every
        self._durable = durable
        self._lock = threading.Lock()
        self._closed = False
        self._columns = COLUMNS
        self._meta: dict[str, str] = {}
        self._last_checkpoint_seq: int | None = None  # seq of this instance's last checkpoint
        self._appended_to: int | None = None  # seq of this instance's last append
        self._checkpoint_failed = False  # the last checkpoint due could not be written

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        read_only: bool = False,
        durable: bool = True,
        key: AuditKey | None = None,
        checkpoint_path: str | Path | None = None,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    ) -> AuditLog:
        """Open the audit log at ``path``, creating it (and its folder) when it does not exist.

        Args:
            path: The SQLite file.
            read_only: Open without the right to append; the file must then exist.
            durable: Sync every append (and checkpoint) to disk (``synchronous=FULL``). With False an append
                survives a crash of the process but may be lost on power failure (``synchronous=NORMAL``).
            key: Sign every appended entry (and checkpoint) with this key, and check signatures with it in
                :meth:`verify`. None: entries are unsigned (a log already signed then refuses appends).
            checkpoint_path: A JSON-lines file to append signed checkpoints of the head to (keep it where the
                log's writers cannot rewrite it); :meth:`verify` compares the log against it. None: no checkpoints.
            checkpoint_every: Write a checkpoint whenever an appended entry's seq is a multiple of this (and
                after an instance's first append, and on close).

        Returns:
            The open log.

        Raises:
            AuditLogError: The file is missing (read-only), is not an SQLite database, is another kind of
                database, or was written by a newer Tether.
            AuditKeyError: Opened for appending, the log is signed with another key, or is signed and no key
                was given.
        """
        p = Path(path)
        if checkpoint_every < 1:
            raise AuditLogError(f"checkpoint_every must be at least 1, not {checkpoint_every}")
        if read_only:
            conn = connect_read_only(p)
        else:
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(p, timeout=60.0, isolation_level=None, check_same_thread=False)
            except (OSError, sqlite3.Error) as e:
                raise AuditLogError(f"cannot open the audit log {p}: {e}") from e
        log = cls(
            conn,
            p,
            read_only=read_only,
            key=key,
            checkpoint_path=None if checkpoint_path is None else Path(checkpoint_path),
            checkpoint_every=checkpoint_every,
            durable=durable,
        )
        try:
            version = check_or_create(conn, p, create=not read_only)
            if not read_only:
                conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                if version < FORMAT_VERSION:
                    upgrade(conn, p)
            log._load_meta()
            if not read_only:
                with log._lock:
                    log._check_key_fits(log._last_signature())
        except BaseException:
            conn.close()
            raise
        return log

    def _load_meta(self) -> None:
        try:
            self._meta = dict(self._conn.execute("SELECT key, value FROM audit_meta").fetchall())
            cols = {r[1] for r in self._conn.execute("PRAGMA table_info(entries)")}
        except sqlite3.Error as e:
            raise AuditLogError(f"cannot read the audit log {self.path}: {e}") from e
        self._columns = COLUMNS if {"key_id", "sig"} <= cols else V1_COLUMNS

    @property
    def log_id(self) -> str | None:
        """The random id given to the log when it was created (None for a format-1 log opened read-only)."""
        return self._meta.get("log_id")

    def _last_signature(self) -> tuple[int, str, str] | None:
        """(seq, key_id, sig) of the last entry, or None for an empty log. Call with the lock held."""
        row = self._conn.execute(
            f"SELECT seq, key_id, sig FROM ({self._select()}) ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]), str(row[2]))

    def _check_key_fits(self, last: tuple[int, str, str] | None) -> None:
        """Refuse to append where the result could not verify: unsigned after signed, or under another key."""
        if last is None or not last[2]:
            return
        if self.key is None:
            raise AuditKeyError(
                f"the audit log {self.path} is signed (key id {last[1]}); open it with its key (audit.key_file or "
                "$TETHER_AUDIT_KEY): an unsigned entry would break it"
            )
        if last[1] != self.key.key_id:
            raise AuditKeyError(
                f"the audit log {self.path} is signed with key id {last[1]}, not with the key from "
                f"{self.key.source} (key id {self.key.key_id}); use its key, or start a new log for a new key"
            )

    def _select(self) -> str:
        return f"SELECT {self._columns} FROM entries"

    def close(self) -> None:
        """Write a last checkpoint (when this instance appended since its last one) and close the file.

        The log cannot be used afterwards.

        Raises:
            AuditLogError: The checkpoint could not be written (the file is closed all the same).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._appended_to is not None and self._last_checkpoint_seq != self._appended_to:
                    self._write_checkpoint(self._head())
            finally:
                self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ writing

    def append(self, kind: str, actor: str, payload: dict[str, Any], config_hash: str = "") -> AuditEntry:
        """Append one entry, chained to the current last entry (and signed, with a key), in one transaction.

        Args:
            kind: What happened (non-empty), e.g. ``"tool_call"``, ``"approval"``, ``"refusal"``.
            actor: Who caused it (caller or profile name).
            payload: The details; must be a JSON object (nested dicts, lists, str, numbers, bools, None).
            config_hash: Hash of the configuration in force.

        Returns:
            The entry as stored.

        Raises:
            AuditLogError: The log is read-only, ``kind`` is empty, the payload is not JSON data, or the write
                failed. (A checkpoint due after the entry that cannot be written is logged as a warning and
                retried on the next append; :meth:`close` raises if it still cannot be written.)
        """
        if self.read_only:
            raise AuditLogError(f"the audit log {self.path} was opened read-only; cannot append")
        if not kind:
            raise AuditLogError("an audit entry needs a kind (e.g. 'tool_call')")
        if not isinstance(payload, dict):
            raise AuditLogError(f"an audit payload must be a JSON object (a dict), not {type(payload).__name__}")
        payload_json = canonical_json(redact_json(payload))  # PII and secrets never enter the log (docs/safety.md)
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    row = self._insert(kind, actor, payload_json, config_hash)
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise AuditLogError(f"could not append to the audit log {self.path}: {e}") from e
            due = self._appended_to is None or row[0] % self.checkpoint_every == 0 or self._checkpoint_failed
            self._appended_to = row[0]
            if self.checkpoint_path is not None and due:
                # The entry is committed: a checkpoint that cannot be written is retried on the next append and
                # on close (which raises), not reported as a failed append (a caller would append it twice).
                try:
                    self._write_checkpoint(AuditHead(row[0], row[7]))
                    self._checkpoint_failed = False
                except AuditLogError as e:
                    self._checkpoint_failed = True
                    _log.warning("%s; entry %d is stored, the checkpoint is retried on the next append", e, row[0])
        return entry_from_row(row)

    def _insert(self, kind: str, actor: str, payload_json: str, config_hash: str) -> tuple[Any, ...]:
        """Insert the next entry inside the caller's write transaction; the stored row."""
        last = self._conn.execute("SELECT seq, hash, key_id, sig FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        if last is not None:
            self._check_key_fits((int(last[0]), str(last[2]), str(last[3])))
        seq, prev_hash = (1, GENESIS_HASH) if last is None else (int(last[0]) + 1, str(last[1]))
        ts = datetime.now(UTC).isoformat(timespec="microseconds")
        h = entry_hash(
            seq=seq, ts=ts, kind=kind, actor=actor, config_hash=config_hash, payload=payload_json, prev_hash=prev_hash
        )
        key_id, sig = "", ""
        if self.key is not None:
            key_id = self.key.key_id
            sig = self.key.sign(entry_signed_fields(key_id=key_id, seq=seq, hash=h))
            self._record_signed_from(seq)
        row = (seq, ts, kind, actor, config_hash, payload_json, prev_hash, h, key_id, sig)
        self._conn.execute(f"INSERT INTO entries ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
        return row

    def _record_signed_from(self, seq: int) -> None:
        """Store, signed, where signing began: the first entry a key signs (any before it were written without
        one; the chain up to the first signed entry is covered by its signature). Inside the append's
        transaction."""
        if self.key is None or self.log_id is None:
            raise AuditLogError(f"the audit log {self.path} has no log id; cannot sign it")
        if self._conn.execute("SELECT 1 FROM audit_meta WHERE key = 'signed_from'").fetchone() is not None:
            return
        fields = signed_from_fields(key_id=self.key.key_id, log_id=self.log_id, seq=seq)
        value = json.dumps({"seq": seq, "key_id": self.key.key_id, "sig": self.key.sign(fields)})
        self._conn.execute("INSERT INTO audit_meta (key, value) VALUES ('signed_from', ?)", (value,))

    def checkpoint(self) -> Checkpoint:
        """Take a checkpoint of the current head now (signed with the key, if any) and append it to the
        checkpoint file, if one was given.

        Returns:
            The checkpoint, e.g. to hand to an external system (``tether audit checkpoint`` prints it).

        Raises:
            AuditLogError: The log has no id (a format-1 log opened read-only), or the file cannot be written.
        """
        with self._lock:
            return self._write_checkpoint(self._head())

    def _write_checkpoint(self, head: AuditHead) -> Checkpoint:
        if self.log_id is None:
            raise AuditLogError(f"the audit log {self.path} has no log id yet (format 1): open it for writing once")
        cp = make_checkpoint(log_id=self.log_id, entries=head.seq, head=head.hash, key=self.key)
        if self.checkpoint_path is not None:
            append_checkpoint(self.checkpoint_path, cp, durable=self._durable)
            self._last_checkpoint_seq = head.seq
        return cp

    # ------------------------------------------------------------------ reading

    def entries(self, since: int = 1) -> Iterator[AuditEntry]:
        """Yield the stored entries with ``seq >= since``, in order.

        Entries are read a page at a time, so appending while iterating is safe (new entries may appear).
        """
        nxt = since
        while True:
            with self._lock:
                rows = self._conn.execute(
                    f"{self._select()} WHERE seq >= ? ORDER BY seq LIMIT ?", (nxt, _PAGE)
                ).fetchall()
            for row in rows:
                yield entry_from_row(row)
            if len(rows) < _PAGE:
                return
            nxt = int(rows[-1][0]) + 1

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def head(self) -> AuditHead:
        """The last entry's (seq, hash), ``(0, "0" * 64)`` for an empty log.

        Store it outside the log (another system, a signed receipt) and pass it to
        ``verify(expect_head=...)`` later to detect a cut-off tail; a checkpoint file does this for you.
        """
        with self._lock:
            return self._head()

    def _head(self) -> AuditHead:
        row = self._conn.execute("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        return AuditHead(0, GENESIS_HASH) if row is None else AuditHead(int(row[0]), str(row[1]))

    # ------------------------------------------------------------------ verifying

    def verify(
        self,
        expect_head: tuple[int, str] | None = None,
        *,
        key: AuditKey | None = None,
        checkpoint_path: str | Path | None = None,
    ) -> AuditReport:
        """Check the whole log and name the first entry that is wrong or missing.

        Checks, entry by entry: seqs run 1, 2, 3, ... without gaps; each hash matches the entry's contents;
        each ``prev_hash`` equals the previous entry's hash; with a key, each signature; each entry that a
        checkpoint or ``expect_head`` names still has the hash recorded then; and the log still holds as many
        entries as they record. Then every line of the checkpoint file.

        Args:
            expect_head: An anchor ``(seq, hash)`` taken earlier with :meth:`head`, or None.
            key: The key to check signatures with (default: the key the log was opened with; none: signatures
                are not checked and ``warnings`` says so).
            checkpoint_path: The checkpoint file to compare with (default: the one the log was opened with).

        Returns:
            The report; ``problem`` says what is wrong in words, e.g.
            ``"entry 7: hash does not match its contents (edited?)"``.

        Raises:
            AuditLogError: The checkpoint file exists but cannot be read.
        """
        key = key or self.key
        cp_path = Path(checkpoint_path) if checkpoint_path is not None else self.checkpoint_path
        # Read the checkpoints before the snapshot: each describes entries committed before it was written.
        checkpoints = None if cp_path is None else check_checkpoints(cp_path, key=key, log_id=self.log_id)
        with self._lock:
            self._conn.execute("BEGIN")  # one snapshot: concurrent appends do not disturb the walk
            try:
                signed_from_row = self._conn.execute(
                    "SELECT value FROM audit_meta WHERE key = 'signed_from'"
                ).fetchone()
                return verify_entries(
                    self._conn,
                    self._columns,
                    page=_PAGE,
                    expect_head=expect_head,
                    key=key,
                    log_id=self.log_id,
                    signed_from_raw=None if signed_from_row is None else str(signed_from_row[0]),
                    checkpoints=checkpoints,
                    checkpoint_path=cp_path,
                )
            finally:
                self._conn.execute("COMMIT")


def verify_file(
    path: str | Path,
    expect_head: tuple[int, str] | None = None,
    *,
    key: AuditKey | None = None,
    checkpoint_path: str | Path | None = None,
) -> AuditReport:
    """Open the audit log at ``path`` read-only and verify it.

    Args:
        path: The audit log's SQLite file.
        expect_head: An anchor ``(seq, hash)`` taken earlier with :meth:`AuditLog.head`, or None.
        key: The key to check signatures with; None: signatures are not checked (``warnings`` says so).
        checkpoint_path: The checkpoint file to compare the log with, or None.

    Returns:
        The report of :meth:`AuditLog.verify`.

    Raises:
        AuditLogError: The file does not exist or is not a Tether audit log, or the checkpoint file cannot be read.
    """
    with AuditLog.open(path, read_only=True) as log:
        return log.verify(expect_head=expect_head, key=key, checkpoint_path=checkpoint_path)
