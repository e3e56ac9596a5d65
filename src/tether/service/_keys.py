"""API keys: each maps to a tenant and a role; stored as a SHA-256 digest, shown once, revocable.

A key reads ``tth_<id>_<secret>``: the id finds the row, the secret (256 random bits) is compared by digest in
constant time. The secret is never stored or shown again; a lost key is revoked and replaced. The store is a
SQLite file readable by its owner only (``service.keys_path``).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from tether._sqlite import enable_wal, immediate
from tether.errors import RequestError
from tether.tools._names import name_problem

if TYPE_CHECKING:
    from tether.config import Settings

PREFIX = "tth_"
_TOKEN = re.compile(r"tth_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_SCHEMA = """CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, tenant TEXT NOT NULL, role TEXT NOT NULL, digest BLOB NOT NULL,
    created TEXT NOT NULL, revoked TEXT, last_used TEXT)"""


class ApiKey(BaseModel):
    """A key as listed: never its secret."""

    id: str
    name: str
    tenant: str
    role: str
    created: datetime
    revoked: datetime | None = None
    last_used: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class KeyStore:
    """The key file. Safe to share between threads (one connection each) and processes (SQLite WAL)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # created private, once
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self._local = threading.local()
        with immediate(self._conn()) as c:
            c.execute(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
            enable_wal(conn)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def create(self, name: str, tenant: str, role: str) -> tuple[str, ApiKey]:
        """A new key for ``tenant`` acting as ``role``: (the key, to show once; its record).

        Raises:
            RequestError: a name, tenant or role that is empty, invisible or confusable.
        """
        for label, value in (("name", name), ("tenant", tenant), ("role", role)):
            problem = name_problem(value, label)
            if problem:
                raise RequestError(problem)
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        created = _now()
        with immediate(self._conn()) as c:
            c.execute(
                "INSERT INTO keys(id, name, tenant, role, digest, created) VALUES (?,?,?,?,?,?)",
                (key_id, name, tenant, role, _digest(secret), created),
            )
        record = ApiKey(id=key_id, name=name, tenant=tenant, role=role, created=datetime.fromisoformat(created))
        return f"{PREFIX}{key_id}_{secret}", record

    def _select(self, where: str, args: tuple[str, ...]) -> list[ApiKey]:
        rows = (
            self._conn()
            .execute(
                f"SELECT id, name, tenant, role, created, revoked, last_used FROM keys {where} ORDER BY rowid", args
            )
            .fetchall()
        )  # rowid: creation order
        return [
            ApiKey(id=r[0], name=r[1], tenant=r[2], role=r[3], created=r[4], revoked=r[5], last_used=r[6]) for r in rows
        ]

    def list(self, *, tenant: str | None = None) -> list[ApiKey]:
        """Every key (revoked ones too), oldest first; only ``tenant``'s when given."""
        return self._select("" if tenant is None else "WHERE tenant = ?", () if tenant is None else (tenant,))

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key by its id (revoking twice keeps the first time).

        Raises:
            RequestError: no key has this id.
        """
        with immediate(self._conn()) as c:
            n = c.execute("UPDATE keys SET revoked = COALESCE(revoked, ?) WHERE id = ?", (_now(), key_id)).rowcount
        if not n:
            raise RequestError(f"no API key with id {key_id!r} (`tether keys list` shows them)")
        return self._select("WHERE id = ?", (key_id,))[0]

    def authenticate(self, token: object) -> ApiKey | None:
        """The active key ``token`` is, or None (malformed, unknown, wrong secret or revoked: all the same answer)."""
        if not isinstance(token, str) or len(token) > 100:
            return None
        m = _TOKEN.fullmatch(token)
        if m is None:
            return None
        key_id, secret = m.groups()
        row = (
            self._conn()
            .execute(
                "SELECT id, name, tenant, role, created, revoked, last_used, digest FROM keys WHERE id = ?", (key_id,)
            )
            .fetchone()
        )
        if row is None or not hmac.compare_digest(bytes(row[7]), _digest(secret)) or row[5] is not None:
            return None
        used = _now()
        if row[6] != used:  # at most one write a key a second, not one a request
            self._conn().execute("UPDATE keys SET last_used = ? WHERE id = ?", (used, key_id))
        return ApiKey(id=row[0], name=row[1], tenant=row[2], role=row[3], created=row[4], last_used=used)


def open_key_store(settings: Settings) -> KeyStore:
    """The key store at ``service.keys_path`` (relative to tether.yaml)."""
    from tether.config._settings import resolve_path

    return KeyStore(resolve_path(settings.service.keys_path, settings.root))


def check_tenant(settings: Settings, tenant: str) -> None:
    """A key is for a configured tenant: its allowlist is what the key may read.

    Raises:
        RequestError: ``tenants:`` is empty, or does not name ``tenant``.
    """
    if not settings.tenants:
        raise RequestError("no tenants are configured: add `tenants:` to tether.yaml before creating API keys")
    if tenant not in settings.tenants:
        raise RequestError(f"unknown tenant {tenant!r} (tenants: {', '.join(sorted(settings.tenants))})")
