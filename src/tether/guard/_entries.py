"""What the audit log stores and reports: entries, their hashes, the head and the verification report."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from tether.guard._errors import AuditLogError

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the first entry."""


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
        hash: SHA-256 of the canonical JSON of all the other fields above.
        key_id: Id of the key that signed it ("" when unsigned).
        sig: HMAC-SHA256 of its seq and hash with that key ("" when unsigned).
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
    key_id: str = ""
    sig: str = ""

    @property
    def time(self) -> datetime:
        """``ts`` as an aware datetime."""
        return datetime.fromisoformat(self.ts)


class AuditReport(BaseModel):
    """The outcome of :meth:`AuditLog.verify`.

    Attributes:
        ok: True when every entry checks out, and so do the signatures, checkpoints and anchor that were given.
        entries: Number of entries stored in the log.
        first_bad_seq: The first entry that is wrong or missing, or None when ``ok`` (or when the problem is in
            the checkpoint file, not in an entry).
        problem: What is wrong, in words, or None when ``ok``.
        head_hash: ``hash`` of the last stored entry (64 zeros for an empty log).
        signed_entries: Entries that carry a signature.
        key_id: Id of the key the signatures were checked with; None when none was given (not checked).
        checkpoints: Checkpoints the log was compared against.
        checkpoint_entries: The most entries any of those checkpoints records (None without checkpoints).
        warnings: What this verification could not rule out (unsigned log, no key, no checkpoints).
    """

    model_config = ConfigDict(frozen=True)

    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str | None = None
    head_hash: str
    signed_entries: int = 0
    key_id: str | None = None
    checkpoints: int = 0
    checkpoint_entries: int | None = None
    warnings: list[str] = Field(default_factory=list)


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
    """SHA-256 (hex) of an entry: the canonical JSON of all its fields but ``hash`` (and the signature).

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


def row_hash(row: tuple[Any, ...], seq: int | None = None) -> str:
    """Recompute the hash of a raw row (tampered rows may hold odd types, so everything is coerced)."""
    s, ts, kind, actor, config_hash, payload, prev_hash = row[:7]
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


def entry_from_row(row: tuple[Any, ...]) -> AuditEntry:
    """An :class:`AuditEntry` from a stored row (seq, ts, kind, actor, config_hash, payload, prev_hash, hash,
    key_id, sig).

    Raises:
        AuditLogError: The row cannot be read as an entry (it was altered).
    """
    seq, ts, kind, actor, config_hash, payload, prev_hash, hash_, key_id, sig = row
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
            key_id=key_id,
            sig=sig,
        )
    except (TypeError, ValueError) as e:  # pydantic's ValidationError is a ValueError
        raise AuditLogError(
            f"entry {seq} of the audit log cannot be read ({e.__class__.__name__}); it was altered: run verify"
        ) from e


def missing(first: int, last: int) -> str:
    """``"entry 7"`` or ``"entries 7–9"``."""
    return f"entry {first}" if first == last else f"entries {first}–{last}"
