"""Guard rails around what Tether does: a tamper-evident, hash-chained audit log of tool calls and answers."""

from tether.guard._audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditHead,
    AuditLog,
    AuditLogError,
    AuditReport,
    canonical_json,
    entry_hash,
    verify_file,
)

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
