"""SQLite helpers shared by the stores that several processes may create at once."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def enable_wal(conn: sqlite3.Connection, wait_s: float = 10.0) -> None:
    """Switch ``conn``'s database to WAL, waiting while another connection holds its lock.

    SQLite answers "database is locked" at once to a journal-mode switch while another connection holds the
    file's write lock (the busy timeout is not applied), which two processes creating one store together hit.

    Raises:
        sqlite3.OperationalError: still locked after ``wait_s``, or any other error.
    """
    deadline = time.monotonic() + wait_s
    pause = 0.01
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if not ("locked" in str(e) or "busy" in str(e)) or time.monotonic() >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.2)


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: BEGIN IMMEDIATE (waiting by the busy timeout), COMMIT when the block ends, ROLLBACK
    and re-raise on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class ThreadConnections:
    """One connection per thread to a WAL SQLite file (autocommit; write with :func:`immediate`), all closed by
    :meth:`close`. For the small stores that worker threads share (the service's records, the spend ledger)."""

    def __init__(self, path: Path, *, foreign_keys: bool = False) -> None:
        self.path = path
        self.foreign_keys = foreign_keys
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            if self.foreign_keys:
                conn.execute("PRAGMA foreign_keys=ON")
            enable_wal(conn)
            with self._lock:
                self._all.append(conn)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for c in conns:
            with contextlib.suppress(sqlite3.Error):
                c.close()
