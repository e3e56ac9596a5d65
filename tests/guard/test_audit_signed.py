"""The audit log with a key and checkpoints: keys, format-1 logs upgraded in place, checkpoint cadence, no false
alarms after kill -9 or under concurrent writers, the configured log, and what `show` prints."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tether.config import load_settings
from tether.guard import (
    AuditKey,
    AuditKeyError,
    AuditLog,
    AuditLogError,
    entry_hash,
    key_from_env,
    load_key_file,
    open_audit_log,
    verify_file,
    write_new_key,
)

KEY = AuditKey(b"0123456789abcdef0123456789abcdef-test", source="test")


# ---------------------------------------------------------------------------------------------- keys


def test_a_short_key_is_refused_and_a_key_never_shows_its_secret(tmp_path: Path) -> None:
    with pytest.raises(AuditKeyError, match="is 9 bytes; use at least 32"):
        AuditKey(b"too short")
    assert "0123456789" not in repr(KEY) and KEY.key_id in repr(KEY)
    assert len(KEY.key_id) == 16 and KEY.key_id == AuditKey(b"0123456789abcdef0123456789abcdef-test").key_id


def test_key_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "k" / "audit.key"
    written = write_new_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key_file(path).key_id == written.key_id  # the trailing newline is not part of the key
    with pytest.raises(AuditKeyError, match="never overwritten"):
        write_new_key(path)
    with pytest.raises(AuditKeyError, match=r"no audit key file at .*nope\.key"):
        load_key_file(tmp_path / "nope.key")
    monkeypatch.delenv("TETHER_AUDIT_KEY", raising=False)
    assert key_from_env() is None
    monkeypatch.setenv("TETHER_AUDIT_KEY", path.read_text())
    env_key = key_from_env()
    assert env_key is not None and env_key.key_id == written.key_id and env_key.source == "$TETHER_AUDIT_KEY"
    monkeypatch.setenv("TETHER_AUDIT_KEY", "short")
    with pytest.raises(AuditKeyError, match=r"\$TETHER_AUDIT_KEY is 5 bytes"):
        key_from_env()


def test_signed_entries_carry_the_key_id(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path / "a.db", key=KEY) as log:
        e = log.append("answer", "me", {"q": 1})
        assert e.key_id == KEY.key_id and len(e.sig) == 64
        assert list(log.entries()) == [e]
        assert log.verify().ok and log.verify().key_id == KEY.key_id


def test_a_signed_log_read_without_the_key_says_signatures_were_not_checked(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path / "a.db", key=KEY) as log:
        log.append("answer", "me", {"q": 1})
    report = verify_file(tmp_path / "a.db")
    assert report.ok and report.key_id is None and report.signed_entries == 1
    assert any("signatures not checked" in w for w in report.warnings)
    unsigned = AuditLog.open(tmp_path / "u.db")
    unsigned.append("answer", "me", {})
    assert any(w.startswith("unsigned log") for w in unsigned.verify().warnings)
    unsigned.close()


def test_a_log_signed_with_one_key_refuses_another(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path / "a.db", key=KEY) as log:
        log.append("answer", "me", {})
    other = AuditKey(b"another key, also long enough to be accepted", source="other.key")
    with pytest.raises(AuditKeyError, match="not with the key from other.key"):
        AuditLog.open(tmp_path / "a.db", key=other)


# ---------------------------------------------------------------------------------------------- format 1


def make_v1_log(path: Path, n: int) -> None:
    """A log as Tether wrote it before signatures (format 1), built by hand."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("CREATE TABLE audit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    con.execute(
        "CREATE TABLE entries (seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, kind TEXT NOT NULL, actor TEXT NOT NULL, "
        "config_hash TEXT NOT NULL, payload TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)"
    )
    con.execute("INSERT INTO audit_meta VALUES ('format', 'tether-audit-log'), ('version', '1')")
    prev = "0" * 64
    for seq in range(1, n + 1):
        ts, payload = "2025-01-01T00:00:00.000000+00:00", json.dumps({"i": seq})
        h = entry_hash(seq=seq, ts=ts, kind="answer", actor="old", config_hash="", payload=payload, prev_hash=prev)
        con.execute("INSERT INTO entries VALUES (?, ?, 'answer', 'old', '', ?, ?, ?)", (seq, ts, payload, prev, h))
        prev = h
    con.close()


def test_a_format_1_log_is_read_as_it_is_and_upgraded_when_written(tmp_path: Path) -> None:
    path, ckpt = tmp_path / "v1.db", tmp_path / "v1.ckpt"
    make_v1_log(path, 5)
    report = verify_file(path)
    assert report.ok and report.entries == 5
    with AuditLog.open(path, read_only=True) as log:
        assert [e.sig for e in log.entries()] == [""] * 5 and log.log_id is None
    with AuditLog.open(path, key=KEY, checkpoint_path=ckpt) as log:  # upgraded in place, then signed from 6 on
        assert log.log_id is not None
        log.append("answer", "new", {"i": 6})
    report = verify_file(path, key=KEY, checkpoint_path=ckpt)
    assert report.ok and report.signed_entries == 1, report.problem
    # The record of where signing began is what lets entries 1-5 be unsigned: without it, all must be signed.
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("DELETE FROM audit_meta WHERE key = 'signed_from'")
    con.close()
    report = verify_file(path, key=KEY, checkpoint_path=ckpt)
    assert not report.ok and report.first_bad_seq == 1 and "not signed" in (report.problem or "")


# ---------------------------------------------------------------------------------------------- checkpoints


def test_checkpoints_after_the_first_append_every_n_and_on_close(tmp_path: Path) -> None:
    path, ckpt = tmp_path / "a.db", tmp_path / "c" / "a.ckpt"
    with AuditLog.open(path, key=KEY, checkpoint_path=ckpt, checkpoint_every=10) as log:
        for i in range(25):
            log.append("tool_call", "me", {"i": i})
    counts = [json.loads(line)["entries"] for line in ckpt.read_text().splitlines()]
    assert counts == [1, 10, 20, 25]
    with AuditLog.open(path, key=KEY, checkpoint_path=ckpt, checkpoint_every=10) as log:
        log.append("tool_call", "me", {})
    counts = [json.loads(line)["entries"] for line in ckpt.read_text().splitlines()]
    assert counts == [1, 10, 20, 25, 26]  # the close after it adds none: its head is already checkpointed
    report = verify_file(path, key=KEY, checkpoint_path=ckpt)
    assert report.ok and report.checkpoints == 5 and report.checkpoint_entries == 26


def test_checkpoint_on_demand_and_a_torn_last_line(tmp_path: Path) -> None:
    path, ckpt = tmp_path / "a.db", tmp_path / "a.ckpt"
    with AuditLog.open(path, key=KEY) as log:
        log.append("tool_call", "me", {})
    with AuditLog.open(path, read_only=True, key=KEY, checkpoint_path=ckpt) as log:
        cp = log.checkpoint()
    assert cp.entries == 1 and cp.key_id == KEY.key_id and KEY.check(cp.signed_fields(), cp.sig)
    with ckpt.open("a") as f:
        f.write('{"entries":1,"he')  # a write cut short by a crash: ignored, with a warning
    report = verify_file(path, key=KEY, checkpoint_path=ckpt)
    assert report.ok and any("incomplete last line" in w for w in report.warnings)


def test_checkpoint_every_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(AuditLogError, match="checkpoint_every"):
        AuditLog.open(tmp_path / "a.db", checkpoint_every=0)


_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tether.guard import AuditKey, AuditLog
    path, ckpt, n, ready = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    key = AuditKey(b"0123456789abcdef0123456789abcdef-test")
    log = AuditLog.open(path, key=key, checkpoint_path=ckpt, checkpoint_every=10)
    for i in range(n):
        log.append("tool_call", sys.argv[5], {"i": i})
    ready.touch()
    time.sleep(60)  # killed here, without close
    """
)


def test_a_writer_killed_between_checkpoints_leaves_a_log_that_verifies(tmp_path: Path) -> None:
    path, ckpt, ready = tmp_path / "k.db", tmp_path / "k.ckpt", tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(ckpt), "57", str(ready), "w"])
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    report = verify_file(path, key=KEY, checkpoint_path=ckpt)
    assert report.ok and report.entries == 57 and report.checkpoint_entries == 50, report.problem
    with AuditLog.open(path, key=KEY, checkpoint_path=ckpt) as log:  # the next writer carries on
        log.append("tool_call", "next", {})
    assert verify_file(path, key=KEY, checkpoint_path=ckpt).checkpoint_entries == 58


def test_two_signing_processes_write_one_chain_and_consistent_checkpoints(tmp_path: Path) -> None:
    path, ckpt = tmp_path / "c.db", tmp_path / "c.ckpt"
    AuditLog.open(path).close()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), str(ckpt), "120", str(tmp_path / f"{a}.ready"), a],
            stderr=subprocess.PIPE,
        )
        for a in ("p0", "p1")
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"{a}.ready").exists() for a in ("p0", "p1")):
        assert all(p.poll() is None for p in procs) and time.monotonic() < deadline
        time.sleep(0.01)
    for p in procs:
        p.kill()
        p.wait()
    report = verify_file(path, key=KEY, checkpoint_path=ckpt)
    assert report.ok and report.entries == 240 and report.signed_entries == 240, report.problem
    assert report.checkpoints >= 2 * (1 + 120 // 10) - 2  # one per multiple of 10 each writer reached, + firsts


# ---------------------------------------------------------------------------------------------- the configured log


def test_the_configured_log_uses_its_key_and_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TETHER_AUDIT_KEY", raising=False)
    key = write_new_key(tmp_path / "cfg" / "audit.key")
    (tmp_path / "cfg" / "tether.yaml").write_text(
        "audit:\n  enabled: true\n  key_file: audit.key\n  checkpoint_path: ckpt/audit.jsonl\n"
    )
    settings = load_settings(tmp_path / "cfg" / "tether.yaml")
    with open_audit_log(settings) as log:  # relative paths are taken from the config's folder
        assert log.path == tmp_path / "cfg" / ".tether" / "audit.db"
        assert log.key is not None and log.key.key_id == key.key_id
        log.append("answer", "tether", {})
    assert (tmp_path / "cfg" / "ckpt" / "audit.jsonl").is_file()
    monkeypatch.setenv("TETHER_AUDIT_KEY", "an environment key that is long enough to use")
    with pytest.raises(AuditKeyError, match=r"\$TETHER_AUDIT_KEY"):  # the variable wins, and is not this log's key
        open_audit_log(settings)


def test_a_configured_key_that_is_missing_is_an_error_not_an_unsigned_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TETHER_AUDIT_KEY", raising=False)
    (tmp_path / "tether.yaml").write_text("audit:\n  key_file: gone.key\n")
    with pytest.raises(AuditKeyError, match=r"gone\.key"):
        open_audit_log(load_settings(tmp_path / "tether.yaml"))
    assert not (tmp_path / ".tether" / "audit.db").exists()


# ---------------------------------------------------------------------------------------------- show


def test_show_lines_escape_control_and_bidi_characters(tmp_path: Path) -> None:
    from tether.cli._audit import _show_line

    with AuditLog.open(tmp_path / "a.db", key=KEY) as log:
        e = log.append("tool\x1b[2J", "ana\u202e", {"tool": "pay_out", "note": "red \x1b[31m text"})
    line = _show_line(e)
    assert "\x1b" not in line and "\u202e" not in line
    assert "\\u001b[2J" in line and "\\u202e" in line and "signed" in line and "tool=pay_out" in line


def test_a_checkpoint_that_cannot_be_written_does_not_fail_the_append_but_fails_close(tmp_path: Path) -> None:
    blocked = tmp_path / "ckpt-is-a-folder"
    blocked.mkdir()
    log = AuditLog.open(tmp_path / "a.db", key=KEY, checkpoint_path=blocked)
    e = log.append("tool_call", "me", {})  # stored, even though its checkpoint could not be written
    assert e.seq == 1 and len(log) == 1
    with pytest.raises(AuditLogError, match="cannot write the audit checkpoint file"):
        log.close()
    assert verify_file(tmp_path / "a.db", key=KEY).ok
