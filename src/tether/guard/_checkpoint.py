"""Signed checkpoints of the audit log's head, appended as JSON lines to a file kept somewhere else.

A checkpoint says "on <ts>, log <log_id> held <entries> entries and the last one's hash was <head>", signed with
the audit key. A hash chain alone cannot show that its tail was cut off, or that everything after some entry was
rewritten; a checkpoint can: the log must still hold at least that many entries, and the entry at that count
must still have that hash. Keep the file where whoever can write the log cannot rewrite it (another disk or
host, an append-only file, or a system that collects ``tether audit checkpoint``'s output).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tether.guard._errors import AuditLogError
from tether.guard._signing import AuditKey


class Checkpoint(BaseModel):
    """One line of a checkpoint file.

    Attributes:
        log_id: The log it is about (a random id stored in the log when it was created).
        entries: How many entries the log held.
        head: The hash of entry ``entries`` (64 zeros for an empty log).
        ts: When it was taken (UTC, ISO 8601).
        key_id: Id of the key that signed it ("" when unsigned).
        sig: HMAC-SHA256 of the fields above ("" when unsigned).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    log_id: str = Field(min_length=1, max_length=64)
    entries: int = Field(ge=0)
    head: str = Field(pattern=r"^[0-9a-f]{64}$")
    ts: str = Field(max_length=64)
    key_id: str = Field("", max_length=64)
    sig: str = Field("", max_length=128)

    def signed_fields(self) -> dict[str, Any]:
        """What the signature covers (everything but ``sig``, under a domain label)."""
        return {
            "v": "tether-audit-checkpoint/1",
            "log_id": self.log_id,
            "entries": self.entries,
            "head": self.head,
            "ts": self.ts,
            "key_id": self.key_id,
        }


class CheckpointLine(NamedTuple):
    """A checkpoint and the line of the file it was read from (from 1)."""

    line: int
    checkpoint: Checkpoint


class CheckpointCheck(NamedTuple):
    """What :func:`check_checkpoints` found.

    Attributes:
        exists: Whether the file exists.
        valid: The checkpoints that passed (signature, key and log id when those can be checked).
        problem: The first line that is not a valid checkpoint of this log, in words; None when all are.
        warnings: What could not be checked (no key) or was skipped (a torn last line).
    """

    exists: bool
    valid: list[CheckpointLine]
    problem: str | None
    warnings: list[str]


def make_checkpoint(*, log_id: str, entries: int, head: str, key: AuditKey | None) -> Checkpoint:
    """A checkpoint of the given head, taken now, signed when ``key`` is given."""
    cp = Checkpoint(
        log_id=log_id,
        entries=entries,
        head=head,
        ts=datetime.now(UTC).isoformat(timespec="seconds"),
        key_id="" if key is None else key.key_id,
    )
    return cp if key is None else cp.model_copy(update={"sig": key.sign(cp.signed_fields())})


def checkpoint_line(cp: Checkpoint) -> str:
    """The checkpoint as one JSON line (with its newline)."""
    return json.dumps(cp.model_dump(), sort_keys=True, separators=(",", ":")) + "\n"


def append_checkpoint(path: Path, cp: Checkpoint, *, durable: bool = True) -> None:
    """Append one line to the checkpoint file with a single ``O_APPEND`` write (whole lines, even when several
    processes append at once), synced to disk when ``durable``.

    Raises:
        AuditLogError: The file cannot be written.
    """
    data = checkpoint_line(cp).encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        raise AuditLogError(f"cannot write the audit checkpoint file {path}: {e.strerror or e}") from e


def check_checkpoints(path: Path, *, key: AuditKey | None, log_id: str | None) -> CheckpointCheck:
    """Read a checkpoint file and check every line: a checkpoint, of this log, signed with ``key``.

    Without a key the signatures cannot be checked: the lines are used as they are, and a warning says so.

    Raises:
        AuditLogError: The file exists but cannot be read.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return CheckpointCheck(False, [], None, [])
    except OSError as e:
        raise AuditLogError(f"cannot read the audit checkpoint file {path}: {e.strerror or e}") from e
    lines = raw.split(b"\n")
    torn = lines[-1] != b""  # the last line has no newline: a write cut short (or an edit)
    valid: list[CheckpointLine] = []
    warnings: list[str] = []
    unchecked = 0

    def fail(n: int, why: str) -> CheckpointCheck:
        return CheckpointCheck(True, valid, f"checkpoint file {path} line {n}: {why}", warnings)

    for n, blob in enumerate(lines, start=1):
        if not blob.strip():
            continue
        try:
            cp = Checkpoint.model_validate(json.loads(blob.decode("utf-8")))
        except (UnicodeDecodeError, ValueError, ValidationError) as e:
            if torn and n == len(lines):
                warnings.append(f"checkpoint file {path} line {n}: an incomplete last line was skipped")
                continue
            reason = e.errors()[0]["msg"] if isinstance(e, ValidationError) else "not JSON"
            return fail(n, f"not a checkpoint ({reason}): the line was edited")
        if log_id is not None and cp.log_id != log_id:
            return fail(n, f"a checkpoint of another log (log id {cp.log_id}; this log is {log_id})")
        if key is not None:
            if not cp.sig:
                return fail(n, "not signed, but a key was given (written without the key, or edited)")
            if cp.key_id != key.key_id:
                return fail(
                    n,
                    f"signed with key id {cp.key_id}, not with the verifying key {key.key_id} "
                    "(written with another key, or forged)",
                )
            if not key.check(cp.signed_fields(), cp.sig):
                return fail(n, "signature does not match (the line was edited)")
        elif cp.sig:
            unchecked += 1
        valid.append(CheckpointLine(n, cp))
    if unchecked:
        warnings.append(f"{unchecked} checkpoint signatures not checked: no key was given")
    return CheckpointCheck(True, valid, None, warnings)
