"""The audit log as tether.yaml configures it: ``audit.path``, its key and its checkpoint file."""

from __future__ import annotations

from pathlib import Path

from tether.config import Settings, resolve_path
from tether.guard._audit import AuditLog
from tether.guard._signing import AuditKey, key_from_env, load_key_file


def audit_key_from_settings(settings: Settings) -> AuditKey | None:
    """The configured audit key: the variable ``audit.key_env`` names if set, else ``audit.key_file``, else None.

    Raises:
        AuditKeyError: A key is configured but missing, unreadable or too short (never a silent fallback to
            unsigned).
    """
    a = settings.audit
    key = key_from_env(a.key_env)
    if key is None and a.key_file:
        key = load_key_file(resolve_path(a.key_file, settings.root))
    return key


def checkpoint_path_from_settings(settings: Settings) -> Path | None:
    """``audit.checkpoint_path`` resolved against the config's folder, or None."""
    cp = settings.audit.checkpoint_path
    return None if cp is None else resolve_path(cp, settings.root)


def open_audit_log(settings: Settings, *, read_only: bool = False, durable: bool = True) -> AuditLog:
    """Open the configured audit log (``audit.path``) with its key and checkpoint file.

    Raises:
        AuditLogError: The log cannot be opened (see :meth:`AuditLog.open`).
        AuditKeyError: The configured key cannot be loaded, or is not the key the log is signed with.
    """
    return AuditLog.open(
        resolve_path(settings.audit.path, settings.root),
        read_only=read_only,
        durable=durable,
        key=audit_key_from_settings(settings),
        checkpoint_path=checkpoint_path_from_settings(settings),
        checkpoint_every=settings.audit.checkpoint_every,
    )
