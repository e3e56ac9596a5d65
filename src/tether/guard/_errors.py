"""The audit log's errors (a small module of its own, so that every part of the guard can raise them)."""

from __future__ import annotations

from tether.errors import TetherError


class AuditLogError(TetherError):
    """The audit log file is missing, is not an audit log, or cannot be written."""


class AuditKeyError(AuditLogError):
    """The audit key is missing, unreadable or too short, or is not the key the log is signed with."""
