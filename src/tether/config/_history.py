"""Every config that produced something, kept with its full resolved settings: a history and diffs.

The store is ``configs.db`` in the folder of the index (``index.path``): with the default settings,
``.tether/configs.db`` next to tether.yaml. One row per config hash holds the settings as JSON (prompts
included: they are settings), when the config was first and last used, and how many times.

Recording is built to be called on every request: the first call for a config in a process writes one
row (one small SQLite transaction, so a process killed with -9 never leaves half a row); later calls only
count in memory, and the count and ``last_seen`` are written at most once a minute per config, on
:meth:`ConfigHistory.close` and at interpreter exit. A process killed with -9 therefore loses at most a
minute of use counts, never the record of a config.

Example:
    >>> history = ConfigHistory.for_settings(settings)  # doctest: +SKIP
    >>> history.record(settings)                         # doctest: +SKIP
    '3f2a9c0d1e4b5a67'
    >>> diff_settings(history.get("3f2a").settings, other.settings)  # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import builtins
import contextlib
import difflib
import hashlib
import json
import os
import re
import sqlite3
import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from tether._sqlite import enable_wal
from tether.config._settings import Settings
from tether.errors import ConfigError, DataError

STORE_NAME = "configs.db"
WRITE_EVERY_S = 60.0
"""``last_seen`` and the use count of a config are written at most this often by one process."""
_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS configs (
    hash TEXT PRIMARY KEY,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    uses INTEGER NOT NULL,
    settings TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS configs_first_seen ON configs(first_seen);
"""
# last_seen only moves forward, whichever process writes last; a conflicting row keeps its settings
_UPSERT = """
INSERT INTO configs(hash, first_seen, last_seen, uses, settings) VALUES (?, ?, ?, ?, ?)
ON CONFLICT(hash) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen), uses = uses + excluded.uses
"""
_COLUMNS = "hash, first_seen, last_seen, uses, settings"
_HEX = re.compile(r"[0-9a-f]{1,16}")
_TEXT_DIFF_MIN = 80
"""Strings at least this long (or with a line break) get a unified text diff: prompts, mostly."""


class ConfigRecord(BaseModel):
    """One config that produced an answer, a trace or an eval run."""

    config_hash: str
    first_seen: datetime
    last_seen: datetime
    uses: int
    settings: dict[str, Any]
    """The full resolved settings (``Settings.model_dump(mode="json")``), prompts included."""


class SettingChange(BaseModel):
    """One setting that differs between two configs, by its dotted key (``retrieval.alpha``)."""

    key: str
    change: Literal["changed", "added", "removed"] = "changed"
    before: Any = None
    after: Any = None
    text_diff: str | None = None
    """For long strings (prompts): a unified diff, one sentence a line, so the changed sentence stands out."""


def hash_settings_dict(settings: dict[str, Any]) -> str:
    """The config hash of settings given as a dict: the same value as :attr:`Settings.config_hash`."""
    blob = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")


# -- what this process remembers, per store -----------------------------------------------------------


@dataclass
class _Tally:
    written: float
    """time.monotonic() when this process last wrote the row."""
    pending: int = 0
    """uses counted since then, not yet written"""
    last_use: float = 0.0
    """time.time() of the latest of those uses"""
    settings_json: str = ""
    """the settings, to write the row again should it be gone"""


@dataclass
class _Memo:
    pid: int = field(default_factory=os.getpid)
    lock: threading.Lock = field(default_factory=threading.Lock)
    tallies: dict[str, _Tally] = field(default_factory=dict)


_MEMOS: dict[str, _Memo] = {}
_MEMOS_LOCK = threading.Lock()
_SHARED: dict[str, ConfigHistory] = {}
_HASHES: dict[int, tuple[weakref.ref[Settings], str]] = {}
"""id(settings) -> (the object, its hash): a Settings is frozen, so its hash is computed once (~40 us)."""


def _memo(path: Path) -> _Memo:
    key = str(path)
    memo = _MEMOS.get(key)
    if memo is None or memo.pid != os.getpid():  # a forked child starts afresh: the parent owns its counts
        with _MEMOS_LOCK:
            memo = _MEMOS.get(key)
            if memo is None or memo.pid != os.getpid():
                memo = _MEMOS[key] = _Memo()
    return memo


def _hash_of(settings: Settings) -> str:
    hit = _HASHES.get(id(settings))
    if hit is not None and hit[0]() is settings:
        return hit[1]
    h = settings.config_hash
    if len(_HASHES) > 256:
        _HASHES.clear()
    _HASHES[id(settings)] = (weakref.ref(settings), h)
    return h


class ConfigHistory:
    """The configs used beside one index, each with its full settings. Safe across threads and processes.

    Args:
        path: the SQLite file; :meth:`for_settings` finds the one beside the configured index.
    """

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser().resolve()
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()

    @classmethod
    def for_settings(cls, settings: Settings) -> ConfigHistory:
        """The history beside the index of ``settings``: ``configs.db`` in the folder of ``index.path``.

        One instance per file and process, so calling this on every request costs a dict look-up and holds
        one connection at most; ``close`` on it only writes the counts and releases the file until next use.
        """
        path = (settings.index_path.parent / STORE_NAME).expanduser().resolve()
        key = str(path)
        found = _SHARED.get(key)
        if found is None or found._pid != os.getpid():  # a connection must not cross a fork
            with _MEMOS_LOCK:
                found = _SHARED.get(key)
                if found is None or found._pid != os.getpid():
                    found = _SHARED[key] = cls(path)
        return found

    # -- connection ----------------------------------------------------------------------------------
    def _connection(self, create: bool) -> sqlite3.Connection | None:
        """The open connection; None when the store does not exist and ``create`` is false (reading)."""
        with self._lock:
            if self._conn is not None:
                return self._conn
            if not create and not self.path.exists():
                return None
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False)
                try:
                    self._set_up(conn)
                except BaseException:
                    conn.close()
                    raise
            except (sqlite3.Error, OSError) as e:
                raise DataError(f"cannot open the config history {self.path}: {e}") from None
            self._conn = conn
            return conn

    def _set_up(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > _SCHEMA_VERSION:
            raise DataError(
                f"{self.path} was written by a newer Tether (config history format {version}, this one reads "
                f"{_SCHEMA_VERSION}); upgrade Tether"
            )
        if version == _SCHEMA_VERSION:
            return
        # a second process creating the store at the same moment waits its turn (the switch to WAL by retrying,
        # BEGIN IMMEDIATE by the busy timeout)
        enable_wal(conn)
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Write the uses counted since the last write, and close the file."""
        self.flush()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> ConfigHistory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------------------
    def record(self, settings: Settings) -> str:
        """Record that ``settings`` produced something (an answer, a trace, an eval run); returns its hash.

        Idempotent: a config has one row, whose ``uses`` counts the calls. After the first call in a process
        a call costs about a microsecond (no I/O): its use is counted in memory and written with ``last_seen``
        at most once a minute, on :meth:`close` and at exit.

        Raises:
            DataError: the store cannot be written (the message names the file and why).
        """
        h = _hash_of(settings)
        memo = _memo(self.path)
        now_wall = time.time()
        now = time.monotonic()
        with memo.lock:
            tally = memo.tallies.get(h)
            if tally is not None:
                tally.pending += 1
                tally.last_use = now_wall
                if now - tally.written < WRITE_EVERY_S:
                    return h
                uses, last_use = tally.pending, tally.last_use
                tally.pending, tally.written = 0, now
        if tally is not None:
            self._write_tally(h, uses, last_use, tally)
            return h
        stamp = _iso(now_wall)
        settings_json = json.dumps(settings.model_dump(mode="json"))
        self._write(h, stamp, stamp, 1, settings_json)
        with memo.lock:
            memo.tallies.setdefault(h, _Tally(written=now, settings_json=settings_json))
        return h

    def _write_tally(self, h: str, uses: int, last_use: float, tally: _Tally) -> None:
        stamp = _iso(last_use)
        try:
            self._write(h, stamp, stamp, uses, tally.settings_json)
        except BaseException:
            with _memo(self.path).lock:  # not written: count them again, and try again at the next call
                tally.pending += uses
                tally.written = 0.0
            raise

    def _write(self, h: str, first: str, last: str, uses: int, settings_json: str) -> None:
        """One statement, one transaction: the row is there whole or not at all, whatever kills the process."""
        try:
            with self._lock:
                conn = self._connection(create=True)
                assert conn is not None
                conn.execute(_UPSERT, (h, first, last, uses, settings_json))
        except sqlite3.Error as e:
            raise DataError(f"cannot record config {h} in {self.path}: {e}") from None

    def flush(self) -> None:
        """Write the uses counted in memory since the last write (``close`` and exit do this)."""
        memo = _memo(self.path)
        with memo.lock:
            due = [(h, t) for h, t in memo.tallies.items() if t.pending]
            taken = [(h, t, t.pending, t.last_use) for h, t in due]
            now = time.monotonic()
            for _, t in due:
                t.pending, t.written = 0, now
        for h, t, uses, last_use in taken:
            self._write_tally(h, uses, last_use, t)

    # -- reading -------------------------------------------------------------------------------------
    def get(self, hash_or_prefix: str) -> ConfigRecord:
        """The config whose hash is, or starts with, ``hash_or_prefix``.

        Raises:
            ConfigError: not hex, no such config, or a prefix that more than one config starts with.
            DataError: the stored settings do not hash to their key (the row was edited), or the file is unreadable.
        """
        prefix = hash_or_prefix.strip().lower()
        if not _HEX.fullmatch(prefix):
            raise ConfigError(
                f"{hash_or_prefix!r} is not a config hash: give 1-16 hex digits as `tether config history` shows them"
            )
        self.flush()
        rows = self._query(f"SELECT {_COLUMNS} FROM configs WHERE hash LIKE ? ORDER BY hash LIMIT 6", (prefix + "%",))
        if not rows:
            raise ConfigError(f"no config {prefix} in {self.path}; `tether config history` lists the recorded ones")
        if len(rows) > 1:
            shown = ", ".join(r[0] for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
            raise ConfigError(f"config prefix {prefix} is ambiguous: it starts {shown}; give more digits")
        return self._record(rows[0])

    def list(self, limit: int = 50) -> builtins.list[ConfigRecord]:
        """The recorded configs, newest (first seen) first."""
        if limit < 1:
            raise ConfigError(f"limit must be at least 1, not {limit}")
        self.flush()
        rows = self._query(f"SELECT {_COLUMNS} FROM configs ORDER BY first_seen DESC, hash LIMIT ?", (limit,))
        return [self._record(r) for r in rows]

    def _query(self, sql: str, args: tuple[Any, ...]) -> builtins.list[tuple[Any, ...]]:
        try:
            with self._lock:
                conn = self._connection(create=False)
                return [] if conn is None else conn.execute(sql, args).fetchall()
        except sqlite3.Error as e:
            raise DataError(f"cannot read the config history {self.path}: {e}") from None

    def _record(self, row: tuple[Any, ...]) -> ConfigRecord:
        h, first, last, uses, blob = row
        try:
            settings = json.loads(blob)
        except (TypeError, ValueError):
            settings = None
        if not isinstance(settings, dict) or hash_settings_dict(settings) != h:
            raise DataError(f"config {h} in {self.path} does not match its hash: the stored settings were altered")
        return ConfigRecord(
            config_hash=h,
            first_seen=datetime.fromisoformat(first),
            last_seen=datetime.fromisoformat(last),
            uses=uses,
            settings=settings,
        )


@atexit.register
def _flush_at_exit() -> None:
    """Best effort: a failure to write counts at exit must not turn a clean exit into a traceback."""
    for key, memo in list(_MEMOS.items()):
        if memo.pid == os.getpid() and any(t.pending for t in memo.tallies.values()):
            with contextlib.suppress(Exception):
                ConfigHistory(Path(key)).close()


# -- diffs ----------------------------------------------------------------------------------------------


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            flat.update(_flatten(v, key + "."))
        else:
            flat[key] = v
    return flat


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _sentences(text: str) -> builtins.list[str]:
    return [s for line in text.splitlines() for s in (_SENTENCE_END.split(line) if line.strip() else [line])]


def _is_long(before: str, after: str) -> bool:
    return max(len(before), len(after)) >= _TEXT_DIFF_MIN or "\n" in before + after


def _text_diff(key: str, before: str, after: str) -> str:
    lines = difflib.unified_diff(_sentences(before), _sentences(after), f"a/{key}", f"b/{key}", n=1, lineterm="")
    return "\n".join(lines)


def diff_settings(a: dict[str, Any], b: dict[str, Any]) -> builtins.list[SettingChange]:
    """What changed from settings ``a`` to ``b``, one entry per dotted key, sorted by key.

    Lists are compared whole (``ingest.extensions``). A key only one side has (a config written by another
    Tether version) is ``added`` or ``removed``. Long strings, prompts mostly, also get ``text_diff``.
    """
    fa, fb = _flatten(a), _flatten(b)
    changes: builtins.list[SettingChange] = []
    for key in sorted(fa.keys() | fb.keys()):
        if key not in fb:
            changes.append(SettingChange(key=key, change="removed", before=fa[key]))
        elif key not in fa:
            changes.append(SettingChange(key=key, change="added", after=fb[key]))
        elif fa[key] != fb[key] or type(fa[key]) is not type(fb[key]):
            before, after = fa[key], fb[key]
            long_text = isinstance(before, str) and isinstance(after, str) and _is_long(before, after)
            text = _text_diff(key, before, after) if long_text else None
            changes.append(SettingChange(key=key, before=before, after=after, text_diff=text))
    return changes
