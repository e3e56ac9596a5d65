"""Walking the audit log: the hash chain, the signatures, the checkpoints and an anchor, entry by entry.

Checks, in order of seq, and stops at the first entry that fails one:

1. seqs run 1, 2, 3, ... without gaps (a deleted entry shows as a gap; a renumbered one as a moved entry);
2. each hash matches the entry's contents (an edit shows);
3. each ``prev_hash`` is the previous entry's hash (a deletion, reorder, or an edit with a recomputed hash shows);
4. with a key, each entry from where signing began carries a valid signature by that key (a rewrite with
   recomputed hashes shows: the attacker cannot sign without the key);
5. each entry a checkpoint or anchor names still has the hash recorded then (a rewritten tail shows);

and after the last entry: the log still holds as many entries as the largest checkpoint records (a cut-off tail
shows). Then a problem in the checkpoint file itself (a line edited, forged or for another log).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from tether.guard._checkpoint import CheckpointCheck, CheckpointLine
from tether.guard._entries import GENESIS_HASH, AuditHead, AuditReport, missing, row_hash
from tether.guard._signing import AuditKey, entry_signed_fields, signed_from_fields

UNSIGNED_WARNING = (
    "unsigned log: the chain shows edits, deletions and reorders, but anyone who can write the file can rewrite "
    "it with recomputed hashes; set a key (audit.key_file or $TETHER_AUDIT_KEY) to sign entries"
)
NO_KEY_WARNING = (
    "{n} signed entries, but no key was given: signatures not checked, so a rewrite with recomputed hashes "
    "would pass; give the key (--key, audit.key_file or $TETHER_AUDIT_KEY)"
)
NO_CHECKPOINT_WARNING = (
    "no checkpoint file: a cut-off tail (the last entries deleted, or all of them) cannot be detected; "
    "set audit.checkpoint_path or pass --checkpoint"
)


def signed_from(raw: str | None, key: AuditKey, log_id: str | None) -> int:
    """The first entry that must be signed: the log's signed record of where signing began, else entry 1.

    The record only relaxes the rule for entries written before a key was first used; one that is missing,
    malformed, or not signed by ``key`` is ignored (every entry must then be signed).
    """
    if raw is None or log_id is None:
        return 1
    try:
        rec = json.loads(raw)
        seq, key_id, sig = int(rec["seq"]), str(rec["key_id"]), str(rec["sig"])
    except (ValueError, TypeError, KeyError):
        return 1
    if key_id != key.key_id or not key.check(signed_from_fields(key_id=key_id, log_id=log_id, seq=seq), sig):
        return 1
    return max(seq, 1)


def verify_entries(
    conn: sqlite3.Connection,
    columns: str,
    *,
    page: int,
    expect_head: tuple[int, str] | None = None,
    key: AuditKey | None = None,
    log_id: str | None = None,
    signed_from_raw: str | None = None,
    checkpoints: CheckpointCheck | None = None,
    checkpoint_path: Path | None = None,
) -> AuditReport:
    """Walk the log in ``conn`` (inside one read transaction) and report the first problem.

    ``checkpoints`` must have been read *before* that transaction began, so that every checkpoint it holds
    describes entries the snapshot already contains.
    """
    count = int(conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
    last = conn.execute("SELECT hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
    head_hash = GENESIS_HASH if last is None else str(last[0])
    signed = int(conn.execute(f"SELECT COUNT(*) FROM ({_sig_select(columns)}) WHERE sig != ''").fetchone()[0])

    warnings: list[str] = []
    if key is None:
        warnings.append(NO_KEY_WARNING.format(n=signed) if signed else UNSIGNED_WARNING)
    cps: list[CheckpointLine] = []
    if checkpoints is None:
        if expect_head is None:
            warnings.append(NO_CHECKPOINT_WARNING)
    else:
        cps = checkpoints.valid
        warnings.extend(checkpoints.warnings)
    top = max(cps, key=lambda c: c.checkpoint.entries, default=None)

    def report(seq: int | None, problem: str | None) -> AuditReport:
        return AuditReport(
            ok=problem is None,
            entries=count,
            first_bad_seq=seq,
            problem=problem,
            head_hash=head_hash,
            signed_entries=signed,
            key_id=None if key is None else key.key_id,
            checkpoints=len(cps),
            checkpoint_entries=None if top is None else top.checkpoint.entries,
            warnings=warnings,
        )

    expected_at: dict[int, list[tuple[str, str, str]]] = {}  # seq -> [(hash, where it was recorded, short name)]
    for c in cps:
        if c.checkpoint.entries > 0:
            where = f"the checkpoint at line {c.line} of {checkpoint_path} ({c.checkpoint.ts})"
            expected_at.setdefault(c.checkpoint.entries, []).append((c.checkpoint.head, where, "that checkpoint"))
    if expect_head is not None:
        anchor = AuditHead(int(expect_head[0]), str(expect_head[1]))
        expected_at.setdefault(anchor.seq, []).append((anchor.hash, "the anchor taken earlier", "the anchor"))

    must_sign_from = 1 if key is None else signed_from(signed_from_raw, key, log_id)
    seen_signed = False
    expected = 1
    prev_hash = GENESIS_HASH
    cur = conn.execute(f"SELECT {columns} FROM entries ORDER BY seq")
    while rows := cur.fetchmany(page):
        for row in rows:
            seq, stored_prev, stored_hash = row[0], str(row[6]), str(row[7])
            key_id, sig = str(row[8]), str(row[9])
            if not isinstance(seq, int) or seq < expected:
                return report(int(seq) if isinstance(seq, int) else expected, f"entry {seq}: invalid seq")
            if seq > expected:
                where = f"the log starts at {seq}" if expected == 1 else f"seq jumps from {expected - 1} to {seq}"
                return report(expected, f"{missing(expected, seq - 1)} missing: {where} (deleted)")
            if row_hash(row) != stored_hash:
                moved = _moved_from(conn, row)
                if moved is not None:
                    return report(
                        seq, f"entry {seq}: holds the contents of entry {moved} (entries were reordered or renumbered)"
                    )
                return report(seq, f"entry {seq}: hash does not match its contents (edited?)")
            if stored_prev != prev_hash:
                if seq == 1:
                    return report(1, "entry 1: prev_hash is not the genesis value of 64 zeros (edited?)")
                return report(
                    seq,
                    f"entry {seq}: prev_hash does not match entry {seq - 1} (an entry was deleted or "
                    f"reordered, or entry {seq - 1} was edited and its hash recomputed)",
                )
            problem = _signature_problem(seq, stored_hash, key_id, sig, key, must_sign_from, seen_signed, signed)
            if problem is not None:
                return report(seq, problem)
            seen_signed = seen_signed or bool(sig)
            for h, where, short in expected_at.get(seq, ()):
                if stored_hash != h:
                    return report(
                        seq, f"entry {seq}: hash differs from {where} (the log was rewritten after {short} was taken)"
                    )
            prev_hash = stored_hash
            expected += 1
    last_seq = expected - 1
    ends = "the log is empty" if last_seq == 0 else f"the log ends at entry {last_seq}"
    if expect_head is not None and int(expect_head[0]) > last_seq:
        want = int(expect_head[0])
        return report(
            last_seq + 1,
            f"{missing(last_seq + 1, want)} missing: {ends} but the anchor expects entry {want} (truncated)",
        )
    if top is not None and top.checkpoint.entries > last_seq:
        want = top.checkpoint.entries
        return report(
            last_seq + 1,
            f"{missing(last_seq + 1, want)} missing: {ends} but the checkpoint at line {top.line} of "
            f"{checkpoint_path} ({top.checkpoint.ts}) records {want} entries (truncated)",
        )
    if checkpoints is not None:
        if checkpoints.problem is not None:
            return report(None, checkpoints.problem)
        if not checkpoints.exists and count:
            return report(
                None,
                f"no checkpoint file at {checkpoint_path}, but the log holds {count} entries (the file was deleted, "
                "or checkpoints were never written for this log: they are written on appends once a checkpoint "
                "file is set)",
            )
        if not cps and count:
            return report(
                None, f"the checkpoint file {checkpoint_path} holds no checkpoint, but the log holds {count} entries"
            )
    return report(None, None)


def _signature_problem(
    seq: int,
    stored_hash: str,
    key_id: str,
    sig: str,
    key: AuditKey | None,
    must_sign_from: int,
    seen_signed: bool,
    signed_total: int,
) -> str | None:
    if not sig:
        if seen_signed:  # no writer appends unsigned entries to a signed log: checked with or without a key
            return f"entry {seq}: not signed, though entries before it are (its signature was stripped)"
        if key is not None and seq >= must_sign_from:
            if signed_total == 0:
                return (
                    f"entry {seq}: not signed, but a key was given (the log was written without a key, "
                    "or its signatures were stripped)"
                )
            return f"entry {seq}: not signed, but a key was given (its signature was stripped)"
        return None
    if key is None:
        return None
    if key_id != key.key_id:
        return (
            f"entry {seq}: signed with key id {key_id}, not with the verifying key {key.key_id} "
            "(written with another key, or forged)"
        )
    if not key.check(entry_signed_fields(key_id=key_id, seq=seq, hash=stored_hash), sig):
        return f"entry {seq}: signature does not match (rewritten with a recomputed hash, without the key)"
    return None


def _sig_select(columns: str) -> str:
    return f"SELECT {columns} FROM entries"


def _moved_from(conn: sqlite3.Connection, row: tuple[Any, ...]) -> int | None:
    """If ``row`` is an intact entry that sits at the wrong seq, the seq it was written at."""
    seq, prev_hash, stored_hash = int(row[0]), str(row[6]), str(row[7])
    candidates = {seq - 1, seq + 1}
    if prev_hash == GENESIS_HASH:
        candidates.add(1)
    for (s,) in conn.execute("SELECT seq FROM entries WHERE hash = ?", (prev_hash,)):
        candidates.add(int(s) + 1)  # it followed the entry whose hash it points at
    for (s,) in conn.execute("SELECT seq FROM entries WHERE prev_hash = ?", (stored_hash,)):
        candidates.add(int(s) - 1)  # it preceded the entry that points at it
    for c in sorted(candidates):
        if c >= 1 and c != seq and row_hash(row, seq=c) == stored_hash:
            return c
    return None
