"""AuditLog: a hash chain in SQLite that names the first edited, deleted or reordered entry, and a cut tail."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from fakes import another_process_creating
from tether.errors import TetherError
from tether.guard import GENESIS_HASH, AuditLog, AuditLogError, _audit, entry_hash, verify_file

N = 30


def fill(path: Path, n: int = N) -> AuditLog:
    log = AuditLog.open(path, durable=False)
    kinds = ["tool_call", "approval", "refusal", "answer", "policy"]
    for i in range(1, n + 1):
        log.append(kinds[i % len(kinds)], f"profile-{i % 3}", {"i": i, "args": {"q": f"question {i}"}}, "cfg1")
    return log


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "audit.db"
    fill(path).close()
    return path


def tamper(path: Path, *statements: str | tuple[str, tuple[Any, ...]]) -> None:
    """Change the raw file behind the log's back, as someone with write access to it could."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("DROP TRIGGER IF EXISTS entries_no_update")
    con.execute("DROP TRIGGER IF EXISTS entries_no_delete")
    for s in statements:
        sql, params = (s, ()) if isinstance(s, str) else s
        con.execute(sql, params)
    con.close()


def row(path: Path, seq: int) -> tuple[Any, ...]:
    con = sqlite3.connect(path)
    r = con.execute(
        "SELECT seq, ts, kind, actor, config_hash, payload, prev_hash, hash FROM entries WHERE seq = ?", (seq,)
    ).fetchone()
    con.close()
    assert r is not None
    return tuple(r)


def recompute_hash(path: Path, seq: int) -> None:
    s, ts, kind, actor, config_hash, payload, prev_hash, _ = row(path, seq)
    h = entry_hash(seq=s, ts=ts, kind=kind, actor=actor, config_hash=config_hash, payload=payload, prev_hash=prev_hash)
    tamper(path, ("UPDATE entries SET hash = ? WHERE seq = ?", (h, seq)))


def swap(path: Path, a: int, b: int) -> None:
    tamper(
        path,
        f"UPDATE entries SET seq = -1 WHERE seq = {a}",
        f"UPDATE entries SET seq = {a} WHERE seq = {b}",
        f"UPDATE entries SET seq = {b} WHERE seq = -1",
    )


# ---------------------------------------------------------------------------------------------- the chain


def test_appends_form_a_valid_chain(tmp_path: Path) -> None:
    log = fill(tmp_path / "a.db")
    entries = list(log.entries())
    assert [e.seq for e in entries] == list(range(1, N + 1))
    assert entries[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:], strict=False))
    assert entries[4].time.utcoffset() is not None
    report = log.verify()
    assert report.ok and report.entries == N and report.first_bad_seq is None and report.problem is None
    assert report.head_hash == entries[-1].hash == log.head().hash and log.head().seq == N
    assert len(log) == N
    assert [e.seq for e in log.entries(since=25)] == list(range(25, N + 1))
    log.close()
    assert verify_file(tmp_path / "a.db").ok


def test_empty_log(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path / "sub" / "empty.db") as log:
        assert log.head() == (0, GENESIS_HASH)
        report = log.verify(expect_head=log.head())
        assert report.ok and report.entries == 0 and report.head_hash == GENESIS_HASH
        assert list(log.entries()) == []


def test_payload_round_trips_unicode_and_nesting(tmp_path: Path) -> None:
    payload = {
        "q": "Wie spät ist es? 東京 🚀",
        "nested": {"z": [1, 2.5, None, True, {"deep": {"é": "ü"}}], "a": {}},
        "n": -3,
    }
    with AuditLog.open(tmp_path / "u.db") as log:
        written = log.append("answer", "ünïcode-actor", payload, config_hash="abc")
    with AuditLog.open(tmp_path / "u.db", read_only=True) as log:
        [read] = list(log.entries())
        assert read == written and read.payload == payload and read.actor == "ünïcode-actor"
        assert log.verify().ok
    stored = row(tmp_path / "u.db", 1)[5]
    assert "東京 🚀" in stored and " " not in stored.replace("Wie spät ist es? 東京 🚀", "")  # compact, not escaped
    assert stored.index('"n"') < stored.index('"nested"') < stored.index('"q"')  # sorted keys


def test_entries_pages_through_long_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_audit, "_PAGE", 7)
    with fill(tmp_path / "p.db") as log:
        assert [e.seq for e in log.entries()] == list(range(1, N + 1))
        assert [e.seq for e in log.entries(since=7)] == list(range(7, N + 1))
        assert log.verify().ok


def test_bad_appends_are_refused(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path / "b.db") as log:
        with pytest.raises(AuditLogError, match="not plain JSON"):
            log.append("tool_call", "me", {"x": object()})
        with pytest.raises(AuditLogError, match="not plain JSON"):
            log.append("tool_call", "me", {"x": float("nan")})
        with pytest.raises(AuditLogError, match="needs a kind"):
            log.append("", "me", {})
        assert len(log) == 0
        log.append("tool_call", "me", {})
    with AuditLog.open(tmp_path / "b.db", read_only=True) as log, pytest.raises(AuditLogError, match="read-only"):
        log.append("tool_call", "me", {})


def test_triggers_stop_accidental_changes(db: Path) -> None:
    con = sqlite3.connect(db)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("UPDATE entries SET actor = 'x' WHERE seq = 3")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("DELETE FROM entries WHERE seq = 3")
    con.close()
    assert verify_file(db).ok


# ---------------------------------------------------------------------------------------------- tampering


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("payload", '{"args":{"q":"something else"},"i":7}'),
        ("kind", "approval_forged"),
        ("actor", "admin"),
        ("ts", "2020-01-01T00:00:00.000000+00:00"),
        ("config_hash", "cfg2"),
    ],
)
def test_edited_entry_is_named(db: Path, column: str, value: str) -> None:
    tamper(db, (f"UPDATE entries SET {column} = ? WHERE seq = 7", (value,)))
    report = verify_file(db)
    assert not report.ok and report.entries == N
    assert report.first_bad_seq == 7
    assert report.problem == "entry 7: hash does not match its contents (edited?)"


def test_whitespace_only_payload_edit_is_caught(db: Path) -> None:
    payload = row(db, 4)[5]
    tamper(db, ("UPDATE entries SET payload = ? WHERE seq = 4", (payload.replace(",", ", "),)))
    report = verify_file(db)
    assert report.first_bad_seq == 4 and "hash does not match" in (report.problem or "")


def test_deleted_entry_is_named(db: Path) -> None:
    tamper(db, "DELETE FROM entries WHERE seq = 9")
    report = verify_file(db)
    assert not report.ok and report.entries == N - 1 and report.first_bad_seq == 9
    assert report.problem == "entry 9 missing: seq jumps from 8 to 10 (deleted)"


def test_several_deleted_entries(db: Path) -> None:
    tamper(db, "DELETE FROM entries WHERE seq BETWEEN 9 AND 11", "DELETE FROM entries WHERE seq = 20")
    report = verify_file(db)
    assert report.first_bad_seq == 9
    assert report.problem == "entries 9–11 missing: seq jumps from 8 to 12 (deleted)"


def test_deleted_first_entry(db: Path) -> None:
    tamper(db, "DELETE FROM entries WHERE seq = 1")
    report = verify_file(db)
    assert report.first_bad_seq == 1
    assert report.problem == "entry 1 missing: the log starts at 2 (deleted)"


def test_deleted_and_renumbered_entries_are_named(db: Path) -> None:
    # Remove entry 9 and shift the rest down so the seqs have no gap: entry 9 now holds entry 10.
    tamper(db, "DELETE FROM entries WHERE seq = 9", "UPDATE entries SET seq = seq - 1 WHERE seq > 9")
    report = verify_file(db)
    assert report.first_bad_seq == 9
    assert report.problem == "entry 9: holds the contents of entry 10 (entries were reordered or renumbered)"


@pytest.mark.parametrize(("a", "b"), [(5, 12), (5, 6), (1, 2), (29, 30)])
def test_swapped_entries_are_named(db: Path, a: int, b: int) -> None:
    swap(db, a, b)
    report = verify_file(db)
    assert not report.ok and report.first_bad_seq == a
    assert report.problem == f"entry {a}: holds the contents of entry {b} (entries were reordered or renumbered)"


def test_swapped_contents_with_recomputed_hashes_break_the_link(db: Path) -> None:
    swap(db, 5, 12)
    recompute_hash(db, 5)
    recompute_hash(db, 12)
    report = verify_file(db)
    assert report.first_bad_seq == 5
    assert report.problem is not None and report.problem.startswith("entry 5: prev_hash does not match entry 4")


def test_recomputed_hash_is_caught_at_the_next_entry(db: Path) -> None:
    tamper(db, ("UPDATE entries SET payload = ? WHERE seq = 7", ('{"i":7,"forged":true}',)))
    assert verify_file(db).first_bad_seq == 7
    recompute_hash(db, 7)
    report = verify_file(db)
    assert not report.ok and report.first_bad_seq == 8
    assert report.problem == (
        "entry 8: prev_hash does not match entry 7 "
        "(an entry was deleted or reordered, or entry 7 was edited and its hash recomputed)"
    )


def test_edited_genesis_link(db: Path) -> None:
    tamper(db, ("UPDATE entries SET prev_hash = ? WHERE seq = 1", ("f" * 64,)))
    recompute_hash(db, 1)
    report = verify_file(db)
    assert report.first_bad_seq == 1 and "genesis" in (report.problem or "")


def test_only_the_first_problem_is_reported(db: Path) -> None:
    tamper(db, "DELETE FROM entries WHERE seq = 20", ("UPDATE entries SET actor = 'x' WHERE seq = 11", ()))
    report = verify_file(db)
    assert report.first_bad_seq == 11


# ---------------------------------------------------------------------------------------------- anchors


def test_truncated_tail_needs_an_anchor(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    with fill(path) as log:
        anchor = log.head()
    assert anchor.seq == N
    tamper(path, f"DELETE FROM entries WHERE seq > {N - 3}")
    assert verify_file(path).ok  # a chain alone cannot see a cut tail
    report = verify_file(path, expect_head=anchor)
    assert not report.ok and report.first_bad_seq == N - 2
    assert (
        report.problem
        == f"entries {N - 2}–{N} missing: the log ends at entry {N - 3} but the anchor expects entry {N} (truncated)"
    )
    assert verify_file(path, expect_head=(N - 3, row(path, N - 3)[7])).ok  # an older anchor is still fine


def test_one_entry_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    with fill(path) as log:
        anchor = log.head()
    tamper(path, f"DELETE FROM entries WHERE seq = {N}")
    report = verify_file(path, expect_head=anchor)
    assert report.first_bad_seq == N
    assert (
        report.problem
        == f"entry {N} missing: the log ends at entry {N - 1} but the anchor expects entry {N} (truncated)"
    )


def test_anchor_keeps_verifying_while_the_log_grows(tmp_path: Path) -> None:
    with fill(tmp_path / "g.db") as log:
        anchor = log.head()
        log.append("answer", "me", {"more": 1})
        assert log.verify(expect_head=anchor).ok


def test_changed_anchored_entry_is_named(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    with fill(path) as log:
        anchor = log.head()
    # Edit the last entry and recompute its hash: nothing follows it, so only the anchor can tell.
    tamper(path, ("UPDATE entries SET payload = '{}' WHERE seq = ?", (N,)))
    recompute_hash(path, N)
    assert verify_file(path).ok
    report = verify_file(path, expect_head=anchor)
    assert report.first_bad_seq == N
    assert (
        report.problem
        == f"entry {N}: hash differs from the anchor taken earlier (the log was rewritten after the anchor was taken)"
    )


def test_rewritten_tail_is_caught_by_the_anchor(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    with fill(path) as log:
        anchor = log.head()
    tamper(path, f"DELETE FROM entries WHERE seq > {N - 5}")
    with AuditLog.open(path) as log:
        for i in range(5):
            log.append("answer", "forger", {"i": i})
        assert log.verify().ok and log.head().seq == N
        report = log.verify(expect_head=anchor)
    assert report.first_bad_seq == N and "anchor" in (report.problem or "")


# ---------------------------------------------------------------------------------------------- files


def test_verify_file_missing(tmp_path: Path) -> None:
    with pytest.raises(AuditLogError, match="does not exist") as err:
        verify_file(tmp_path / "nope.db")
    assert isinstance(err.value, TetherError)
    assert not (tmp_path / "nope.db").exists()


def test_verify_file_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("just some text, definitely not SQLite\n" * 20)
    with pytest.raises(AuditLogError, match="is not a Tether audit log .not an SQLite database"):
        verify_file(path)
    with pytest.raises(AuditLogError, match="not an SQLite database"):
        AuditLog.open(path)
    assert path.read_text().startswith("just some text")


def test_other_sqlite_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE things (x)")
    con.commit()
    con.close()
    with pytest.raises(AuditLogError, match="another kind"):
        verify_file(path)
    with pytest.raises(AuditLogError, match="another kind"):
        AuditLog.open(path)
    con = sqlite3.connect(path)
    assert [r[0] for r in con.execute("SELECT name FROM sqlite_master")] == ["things"]
    con.close()
    (tmp_path / "empty.db").touch()
    with pytest.raises(AuditLogError, match="empty SQLite database"):
        verify_file(tmp_path / "empty.db")


def test_newer_format_is_refused(db: Path) -> None:
    tamper(db, "UPDATE audit_meta SET value = '99' WHERE key = 'version'")
    with pytest.raises(AuditLogError, match="upgrade Tether"):
        verify_file(db)


def test_file_is_in_wal_mode(db: Path) -> None:
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


# ---------------------------------------------------------------------------------------------- concurrency

_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tether.guard import AuditLog
    path, actor, n, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    log = AuditLog.open(path)
    Path(go.parent / (actor + ".ready")).touch()
    while not go.exists():
        time.sleep(0.002)
    for i in range(n):
        log.append("tool_call", actor, {"i": i, "who": actor})
        time.sleep(0.0005)  # let the other writer in between appends
    log.close()
    """
)


def test_two_processes_append_to_one_chain(tmp_path: Path) -> None:
    path, go, n = tmp_path / "c.db", tmp_path / "go", 150
    AuditLog.open(path).close()
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), actor, str(n), str(go)], stderr=subprocess.PIPE)
        for actor in ("p0", "p1")
    ]
    for actor in ("p0", "p1"):  # start both writers at the same moment
        while not (tmp_path / f"{actor}.ready").exists():
            assert all(p.poll() is None for p in procs), [p.communicate()[1] for p in procs]
            time.sleep(0.005)
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
    with AuditLog.open(path, read_only=True) as log:
        report = log.verify()
        entries = list(log.entries())
    assert report.ok, report.problem
    assert report.entries == 2 * n and [e.seq for e in entries] == list(range(1, 2 * n + 1))
    for actor in ("p0", "p1"):
        assert [e.payload["i"] for e in entries if e.actor == actor] == list(range(n))
    switches = sum(a.actor != b.actor for a, b in zip(entries, entries[1:], strict=False))
    assert switches >= 2  # the writers really interleaved (a loaded machine can serialise most of them)


def test_unreadable_entry_is_an_audit_error(db: Path) -> None:
    tamper(db, "UPDATE entries SET payload = 'not json' WHERE seq = 3")
    with AuditLog.open(db, read_only=True) as log:
        with pytest.raises(AuditLogError, match="entry 3 .* altered: run verify"):
            list(log.entries())
        assert log.verify().first_bad_seq == 3


def test_verify_stops_early_on_a_long_log_and_can_run_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_audit, "_PAGE", 4)
    path = tmp_path / "long.db"
    with fill(path) as log:
        tamper(path, "UPDATE entries SET actor = 'x' WHERE seq = 6")
        assert log.verify().first_bad_seq == 6
        assert log.verify().first_bad_seq == 6
        log.append("answer", "me", {})  # the log stays usable after a failed verify
        report = log.verify()
        assert report.first_bad_seq == 6 and report.entries == N + 1


def test_a_log_another_process_is_creating_is_waited_for_not_refused(tmp_path: Path) -> None:
    """Switching an empty file to WAL while another connection holds its write lock made SQLite answer "database
    is locked" at once, without waiting (seen in CI: two executors starting together, the second failed closed
    with its step undone). Now the creator retries until the other is done."""
    path = tmp_path / "audit.db"
    started = time.monotonic()
    with another_process_creating(path), AuditLog.open(path, durable=False) as log:
        log.append("probe", "test", {"n": 1})
    assert time.monotonic() - started >= 0.4  # it waited for the other writer ...
    assert verify_file(path).ok  # ... and created a whole log


OPENER = textwrap.dedent(
    """
    import sys, time
    from tether.guard import AuditLog
    start = float(sys.argv[2])
    while time.time() < start:  # every process opens the same fresh log at the same moment
        time.sleep(0.001)
    with AuditLog.open(sys.argv[1], durable=False) as log:
        log.append("probe", "test", {"pid": sys.argv[3]}, config_hash="h")
    print("ok")
    """
)


@pytest.mark.parametrize("round_", range(2))
def test_processes_creating_one_log_at_once_all_open_it(tmp_path: Path, round_: int) -> None:
    """Executors that start together create the log together: "database is locked" from switching to WAL was
    raised at once (seen in CI), and the second executor then failed closed with its step undone."""
    path = tmp_path / "audit.db"
    start = time.time() + 1.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, str(path), str(start), str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(8)
    ]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0 and out.strip() == "ok", err
    assert verify_file(path).ok
    with AuditLog.open(path, read_only=True) as log:
        assert len(list(log.entries())) == 8
