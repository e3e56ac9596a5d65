"""Guard rails around what Tether does: a tamper-evident audit log of tool calls and answers.

Entries form a SHA-256 hash chain; with a key (HMAC-SHA256, kept outside the log) each entry is signed, and
signed checkpoints of the head go to a second file. See docs/audit.md for what each protects against.
"""

from tether.guard._audit import DEFAULT_CHECKPOINT_EVERY, AuditLog, verify_file
from tether.guard._checkpoint import Checkpoint
from tether.guard._configured import audit_key_from_settings, checkpoint_path_from_settings, open_audit_log
from tether.guard._entries import GENESIS_HASH, AuditEntry, AuditHead, AuditReport, canonical_json, entry_hash
from tether.guard._errors import AuditKeyError, AuditLogError
from tether.guard._signing import DEFAULT_KEY_ENV, MIN_KEY_BYTES, AuditKey, key_from_env, load_key_file, write_new_key

__all__ = [
    "DEFAULT_CHECKPOINT_EVERY",
    "DEFAULT_KEY_ENV",
    "GENESIS_HASH",
    "MIN_KEY_BYTES",
    "AuditEntry",
    "AuditHead",
    "AuditKey",
    "AuditKeyError",
    "AuditLog",
    "AuditLogError",
    "AuditReport",
    "Checkpoint",
    "audit_key_from_settings",
    "canonical_json",
    "checkpoint_path_from_settings",
    "entry_hash",
    "key_from_env",
    "load_key_file",
    "open_audit_log",
    "verify_file",
    "write_new_key",
]
