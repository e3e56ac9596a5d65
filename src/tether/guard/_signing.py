"""The key that signs the audit log: HMAC-SHA256 over each entry's hash and over each checkpoint.

The key lives outside the log (a file or an environment variable), so someone who can write the log file but
does not hold the key cannot produce valid signatures: a rewrite with recomputed hashes shows as a signature
that does not match. Every message signed carries a domain label (``tether-audit-entry/1``, ...), so a
signature made for one purpose is never valid for another.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

from tether.guard._errors import AuditKeyError

MIN_KEY_BYTES = 32
"""Shortest key accepted: 32 bytes (e.g. 64 hex digits from ``tether audit keygen``)."""

DEFAULT_KEY_ENV = "TETHER_AUDIT_KEY"


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


class AuditKey:
    """A secret HMAC-SHA256 key and its public id.

    The id (16 hex digits) is itself an HMAC of a fixed label, so it names the key without revealing it; it is
    stored beside every signature so that a log signed with another key is named as such.

    Args:
        secret: The key bytes (at least :data:`MIN_KEY_BYTES`).
        source: Where it came from, for messages (a file path or ``$TETHER_AUDIT_KEY``); never the key itself.

    Raises:
        AuditKeyError: The key is shorter than 32 bytes.
    """

    __slots__ = ("_secret", "key_id", "source")

    def __init__(self, secret: bytes, source: str = "a key given in code") -> None:
        if len(secret) < MIN_KEY_BYTES:
            raise AuditKeyError(
                f"the audit key from {source} is {len(secret)} bytes; use at least {MIN_KEY_BYTES} random bytes "
                "(`tether audit keygen FILE` writes one)"
            )
        self._secret = secret
        self.source = source
        self.key_id = hmac.new(secret, b"tether-audit-key-id/1", hashlib.sha256).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"AuditKey(key_id={self.key_id!r}, source={self.source!r})"

    def sign(self, fields: dict[str, Any]) -> str:
        """HMAC-SHA256 (hex) of the canonical JSON of ``fields`` (which carry their own domain label ``v``)."""
        return hmac.new(self._secret, _canonical(fields), hashlib.sha256).hexdigest()

    def check(self, fields: dict[str, Any], sig: str) -> bool:
        """Whether ``sig`` is this key's signature of ``fields`` (constant-time comparison)."""
        return hmac.compare_digest(self.sign(fields), sig if isinstance(sig, str) else "")


def entry_signed_fields(*, key_id: str, seq: int, hash: str) -> dict[str, Any]:  # noqa: A002
    """What an entry's signature covers: its seq and hash (which covers every field and the previous hash)."""
    return {"v": "tether-audit-entry/1", "key_id": key_id, "seq": seq, "hash": hash}


def signed_from_fields(*, key_id: str, log_id: str, seq: int) -> dict[str, Any]:
    """What the record "this log is signed from entry ``seq`` on" covers."""
    return {"v": "tether-audit-signed-from/1", "key_id": key_id, "log_id": log_id, "seq": seq}


def load_key_file(path: str | Path) -> AuditKey:
    """Read a key file: its bytes with surrounding whitespace stripped.

    Raises:
        AuditKeyError: The file is missing, unreadable, or holds fewer than 32 bytes.
    """
    p = Path(path).expanduser()
    try:
        secret = p.read_bytes().strip()
    except FileNotFoundError:
        raise AuditKeyError(f"no audit key file at {p}; `tether audit keygen {p}` writes one") from None
    except OSError as e:
        raise AuditKeyError(f"cannot read the audit key file {p}: {e.strerror or e}") from None
    return AuditKey(secret, source=str(p))


def key_from_env(name: str = DEFAULT_KEY_ENV) -> AuditKey | None:
    """The key held by environment variable ``name``, or None when it is unset or empty.

    Raises:
        AuditKeyError: The variable is set but shorter than 32 bytes.
    """
    value = os.environ.get(name, "").strip()
    return AuditKey(value.encode("utf-8"), source=f"${name}") if value else None


def write_new_key(path: str | Path) -> AuditKey:
    """Write a new random key (64 hex digits) to ``path``, readable by its owner only; refuse to overwrite.

    Raises:
        AuditKeyError: The file exists or cannot be written.
    """
    p = Path(path).expanduser()
    secret = secrets.token_hex(32)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise AuditKeyError(f"{p} exists; a key is never overwritten (move it away first)") from None
    except OSError as e:
        raise AuditKeyError(f"cannot write the audit key file {p}: {e.strerror or e}") from None
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(secret + "\n")
    return AuditKey(secret.encode("ascii"), source=str(p))
