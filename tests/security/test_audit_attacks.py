"""Red team: an insider with write access to the audit log file (not to the key) tries to rewrite history unseen.

The log is written as deployed: entries signed with a key kept outside it, signed checkpoints of the head in a
second file. Each attack is done on the raw SQLite file, as anyone who can write it could; the "insider" variants
recompute every hash, so the chain alone (what ``tether audit verify`` checked before) no longer shows them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tether.guard import AuditKey, AuditKeyError, AuditLog, AuditReport, entry_hash, verify_file
from tether.guard._checkpoint import checkpoint_line, make_checkpoint
from tether.guard._signing import entry_signed_fields, signed_from_fields

N = 30
EVERY = 10
KEY = AuditKey(b"k3y-" + bytes(range(32, 72)), source="test")
ATTACKER_KEY = AuditKey(b"attacker-" + bytes(range(40, 80)), source="attacker")


@dataclass
class Signed:
    log: Path
    ckpt: Path

    def verify(self, key: AuditKey | None = KEY) -> AuditReport:
        return verify_file(self.log, key=key, checkpoint_path=self.ckpt)

    def chain_only(self) -> AuditReport:
        """What `tether audit verify PATH` checked before: the hash chain alone."""
        return verify_file(self.log)


@pytest.fixture
def signed(tmp_path: Path) -> Signed:
    s = Signed(tmp_path / "audit.db", tmp_path / "elsewhere" / "audit.ckpt")
    with AuditLog.open(s.log, durable=False, key=KEY, checkpoint_path=s.ckpt, checkpoint_every=EVERY) as log:
        for i in range(1, N + 1):
            log.append("tool_call", "ana", {"tool": "record_expense", "amount": 10 * i, "employee": "E-17"}, "cfg")
    report = s.verify()
    assert report.ok and report.signed_entries == N and report.checkpoint_entries == N, report
    return s


# ---------------------------------------------------------------------------------------------- raw file access

COLS = "seq, ts, kind, actor, config_hash, payload, prev_hash, hash, key_id, sig"


def sql(path: Path, *statements: str | tuple[str, tuple[Any, ...]]) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("DROP TRIGGER IF EXISTS entries_no_update")  # the triggers only stop accidents
    con.execute("DROP TRIGGER IF EXISTS entries_no_delete")
    for s in statements:
        q, params = (s, ()) if isinstance(s, str) else s
        con.execute(q, params)
    con.close()


def rows(path: Path) -> list[list[Any]]:
    con = sqlite3.connect(path)
    out = [list(r) for r in con.execute(f"SELECT {COLS} FROM entries ORDER BY seq")]
    con.close()
    return out


def rewrite(path: Path, new_rows: list[list[Any]], *, sign_with: AuditKey | None = None, strip: bool = False) -> None:
    """Replace every entry by ``new_rows``, renumbered 1..n with every prev_hash and hash recomputed: a chain
    that is valid end to end. Signatures are kept as they were, stripped, or made with the attacker's own key."""
    prev = "0" * 64
    out = []
    for seq, r in enumerate(new_rows, start=1):
        _, ts, kind, actor, cfg, payload, _, _, key_id, sig = r
        h = entry_hash(seq=seq, ts=ts, kind=kind, actor=actor, config_hash=cfg, payload=payload, prev_hash=prev)
        if sign_with is not None:
            key_id, sig = (
                sign_with.key_id,
                sign_with.sign(entry_signed_fields(key_id=sign_with.key_id, seq=seq, hash=h)),
            )
        elif strip:
            key_id, sig = "", ""
        out.append((seq, ts, kind, actor, cfg, payload, prev, h, key_id, sig))
        prev = h
    sql(path, "DELETE FROM entries")
    con = sqlite3.connect(path, isolation_level=None)
    con.executemany(f"INSERT INTO entries ({COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", out)
    con.close()


def edit_payload(r: list[Any], **changes: Any) -> list[Any]:
    payload = json.loads(r[5])
    payload.update(changes)
    return [*r[:5], json.dumps(payload, sort_keys=True, separators=(",", ":")), *r[6:]]


def log_id(path: Path) -> str:
    con = sqlite3.connect(path)
    value = str(con.execute("SELECT value FROM audit_meta WHERE key = 'log_id'").fetchone()[0])
    con.close()
    return value


def assert_caught(report: AuditReport, seq: int | None, *fragments: str) -> None:
    assert not report.ok, "the attack went unseen"
    assert report.first_bad_seq == seq, report.problem
    for f in fragments:
        assert f in (report.problem or ""), report.problem


# ---------------------------------------------------------------------------------------------- edit, delete, reorder


def test_edit_with_recomputed_hashes_is_caught_by_the_signature(signed: Signed) -> None:
    rs = rows(signed.log)
    rs[6] = edit_payload(rs[6], amount=70000, employee="E-99")
    rewrite(signed.log, rs)
    assert signed.chain_only().ok  # the chain is valid again: hashes alone cannot tell
    assert_caught(signed.verify(), 7, "entry 7: signature does not match")


def test_plain_edit_is_named(signed: Signed) -> None:
    sql(signed.log, ("UPDATE entries SET actor = 'cfo' WHERE seq = 7", ()))
    assert_caught(signed.verify(), 7, "entry 7: hash does not match its contents")


def test_delete_with_renumbering_and_recomputed_hashes_is_caught(signed: Signed) -> None:
    rs = rows(signed.log)
    del rs[8]  # entry 9 disappears; 10..30 become 9..29, the chain recomputed
    rewrite(signed.log, rs)
    assert signed.chain_only().ok
    assert_caught(signed.verify(), 9, "entry 9: signature does not match")


def test_plain_delete_is_named(signed: Signed) -> None:
    sql(signed.log, "DELETE FROM entries WHERE seq = 9")
    assert_caught(signed.verify(), 9, "entry 9 missing")


def test_reorder_with_recomputed_hashes_is_caught(signed: Signed) -> None:
    rs = rows(signed.log)
    rs[4], rs[11] = rs[11], rs[4]
    rewrite(signed.log, rs)
    assert signed.chain_only().ok
    assert_caught(signed.verify(), 5, "entry 5: signature does not match")


def test_plain_reorder_is_named(signed: Signed) -> None:
    sql(
        signed.log,
        "UPDATE entries SET seq = -1 WHERE seq = 5",
        "UPDATE entries SET seq = 5 WHERE seq = 12",
        "UPDATE entries SET seq = 12 WHERE seq = -1",
    )
    assert_caught(signed.verify(), 5, "entry 5: holds the contents of entry 12")


# ---------------------------------------------------------------------------------------------- the tail


@pytest.mark.parametrize("cut", [1, 5, N])
def test_truncated_tail_is_caught_by_the_checkpoints(signed: Signed, cut: int) -> None:
    sql(signed.log, f"DELETE FROM entries WHERE seq > {N - cut}")
    assert signed.chain_only().ok  # a chain cannot see a cut tail
    report = signed.verify()
    ends = "the log is empty" if cut == N else f"the log ends at entry {N - cut}"
    assert_caught(report, N - cut + 1, "missing", ends, f"records {N} entries (truncated)")
    assert signed.verify(key=None).ok is False  # the checkpoints catch it even where the key is not at hand


def test_truncated_tail_refilled_with_forged_entries_is_caught(signed: Signed) -> None:
    """Cut the last 5 entries and append 5 others, chained correctly, so the count matches again."""
    rs = rows(signed.log)
    forged = [[*edit_payload(r, amount=1)[:8], "", ""] for r in rs[-5:]]  # no key: no signatures
    rewrite(signed.log, rs[:-5] + forged)
    assert_caught(signed.verify(), N - 4, f"entry {N - 4}: not signed")
    assert_caught(signed.verify(key=None), N - 4, "not signed, though entries before it are")


def test_forged_entry_appended_by_sql_is_caught_with_or_without_the_key(signed: Signed) -> None:
    last = rows(signed.log)[-1]
    payload = '{"amount":999999,"employee":"E-99","tool":"pay_out"}'
    h = entry_hash(
        seq=N + 1, ts=last[1], kind="tool_call", actor="ana", config_hash="cfg", payload=payload, prev_hash=last[7]
    )
    sql(
        signed.log,
        (
            f"INSERT INTO entries ({COLS}) VALUES (?, ?, 'tool_call', 'ana', 'cfg', ?, ?, ?, '', '')",
            (N + 1, last[1], payload, last[7], h),
        ),
    )
    assert_caught(signed.verify(), N + 1, f"entry {N + 1}: not signed")
    assert_caught(signed.verify(key=None), N + 1, "not signed, though entries before it are")


def test_appending_without_the_key_is_refused(signed: Signed) -> None:
    with pytest.raises(AuditKeyError, match="is signed .*open it with its key"):
        AuditLog.open(signed.log)
    assert signed.verify().ok


# ---------------------------------------------------------------------------------------------- whole rewrites


@pytest.mark.parametrize("signatures", ["kept", "stripped"])
def test_whole_log_rewritten_with_recomputed_hashes_is_caught(signed: Signed, signatures: str) -> None:
    rs = [edit_payload(r, amount=1) for r in rows(signed.log)]
    rewrite(signed.log, rs, strip=signatures == "stripped")
    sql(signed.log, "DELETE FROM audit_meta WHERE key = 'signed_from'")
    assert signed.chain_only().ok
    why = "signature does not match" if signatures == "kept" else "not signed, but a key was given"
    assert_caught(signed.verify(), 1, f"entry 1: {why}")


def test_key_swap_is_caught(signed: Signed) -> None:
    """The insider signs the rewritten log, where signing began and the checkpoints with a key of their own."""
    rs = [edit_payload(r, amount=1) for r in rows(signed.log)]
    rewrite(signed.log, rs, sign_with=ATTACKER_KEY)
    lid = log_id(signed.log)
    rec = {
        "seq": 1,
        "key_id": ATTACKER_KEY.key_id,
        "sig": ATTACKER_KEY.sign(signed_from_fields(key_id=ATTACKER_KEY.key_id, log_id=lid, seq=1)),
    }
    sql(signed.log, ("UPDATE audit_meta SET value = ? WHERE key = 'signed_from'", (json.dumps(rec),)))
    head = rows(signed.log)[-1][7]
    signed.ckpt.write_text(checkpoint_line(make_checkpoint(log_id=lid, entries=N, head=head, key=ATTACKER_KEY)))
    assert verify_file(signed.log, key=ATTACKER_KEY, checkpoint_path=signed.ckpt).ok  # consistent under their key
    assert_caught(signed.verify(), 1, f"entry 1: signed with key id {ATTACKER_KEY.key_id}, not with the verifying key")
    with pytest.raises(AuditKeyError, match="signed with key id"):  # and the real writer refuses to extend it
        AuditLog.open(signed.log, key=KEY)


def test_verifying_with_another_key_fails(signed: Signed) -> None:
    assert_caught(signed.verify(key=ATTACKER_KEY), 1, "not with the verifying key")


# ---------------------------------------------------------------------------------------------- the checkpoint file


def _lines(signed: Signed) -> list[dict[str, Any]]:
    return [json.loads(line) for line in signed.ckpt.read_text().splitlines()]


def _write_lines(signed: Signed, lines: list[dict[str, Any]]) -> None:
    signed.ckpt.write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_checkpoint_edited_to_hide_a_cut_tail_is_caught(signed: Signed) -> None:
    sql(signed.log, f"DELETE FROM entries WHERE seq > {N - 5}")
    lines = _lines(signed)
    lines[-1].update(entries=N - 5, head=rows(signed.log)[-1][7])  # the last checkpoint now agrees with the cut
    _write_lines(signed, lines)
    report = signed.verify()
    assert not report.ok and report.first_bad_seq is None
    assert f"line {len(lines)}: signature does not match (the line was edited)" in (report.problem or "")


@pytest.mark.parametrize(
    ("attack", "why"),
    [
        ("deleted", "no checkpoint file at"),
        ("emptied", "holds no checkpoint"),
        ("unsigned", "line 2: not signed"),
        ("garbage", "line 2: not a checkpoint"),
        ("other log", "line 2: a checkpoint of another log"),
        ("count as text", "line 2: not a checkpoint"),
    ],
)
def test_tampered_checkpoint_file_is_caught(signed: Signed, attack: str, why: str) -> None:
    lines = _lines(signed)
    if attack == "deleted":
        signed.ckpt.unlink()
    elif attack == "emptied":
        signed.ckpt.write_text("")
    elif attack == "unsigned":
        lines[1].update(sig="", key_id="")
        _write_lines(signed, lines)
    elif attack == "garbage":
        signed.ckpt.write_text(json.dumps(lines[0]) + "\n{not json\n")
    elif attack == "other log":
        other = make_checkpoint(log_id="f" * 32, entries=5, head="a" * 64, key=KEY)  # same key, another log
        signed.ckpt.write_text(json.dumps(lines[0]) + "\n" + checkpoint_line(other))
    elif attack == "count as text":
        lines[1]["entries"] = str(lines[1]["entries"])
        _write_lines(signed, lines)
    report = signed.verify()
    assert not report.ok and why in (report.problem or ""), report.problem


# ---------------------------------------------------------------------------------------------- the CLI

ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
ENV.pop("TETHER_AUDIT_KEY", None)


def tether(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tether", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=120
    )


def test_cli_verify_checks_the_configured_log_with_its_key_and_checkpoints(tmp_path: Path) -> None:
    """`tether audit verify` with no PATH checks audit.path (not the tools demo's log), run without a terminal."""
    from tether.config import load_settings
    from tether.guard import open_audit_log, write_new_key

    project = tmp_path / "project"
    project.mkdir()
    write_new_key(tmp_path / "secrets" / "audit.key")
    (project / "tether.yaml").write_text(
        "audit:\n  enabled: true\n  path: logs/answers.db\n  key_file: ../secrets/audit.key\n"
        "  checkpoint_path: ../elsewhere/audit.ckpt\n  checkpoint_every: 4\n"
    )
    with open_audit_log(load_settings(project / "tether.yaml")) as log:
        for i in range(10):
            log.append("answer", "tether", {"question": f"q{i}"})
    demo = project / ".tether" / "tools-demo" / "audit.db"  # where the old default looked
    AuditLog.open(demo).close()

    ok = tether(project, "audit", "verify")
    assert ok.returncode == 0, ok.stderr
    assert "logs/answers.db" in ok.stdout and "10 entries, chain intact, signatures valid" in ok.stdout
    assert "checkpoints (latest: 10 entries)" in ok.stdout and "warning" not in ok.stdout

    elsewhere = tether(tmp_path, "audit", "verify", "--config", str(project / "tether.yaml"), "--json")
    report = json.loads(elsewhere.stdout)
    assert report["ok"] and report["path"].endswith("logs/answers.db") and report["key_id"]

    sql(project / "logs" / "answers.db", "DELETE FROM entries WHERE seq > 7")  # cut the tail
    cut = tether(project, "audit", "verify")
    assert cut.returncode == 1 and "Traceback" not in cut.stderr
    assert "entries 8–10 missing: the log ends at entry 7" in cut.stdout and "(truncated)" in cut.stdout
    assert len(cut.stdout.strip().splitlines()) == 1  # one line, not wrapped, when not on a terminal

    shown = tether(project, "audit", "show", "--last", "3")
    assert shown.returncode == 0, shown.stderr
    body = shown.stdout.strip().splitlines()
    assert [line.split()[0] for line in body[1:4]] == ["5", "6", "7"] and "question=q6" in body[3]

    for f in (project / "logs").iterdir():  # delete the whole log
        f.unlink()
    gone = tether(project, "audit", "verify")
    assert gone.returncode == 1 and "the log does not exist, but the checkpoint file" in gone.stdout
    assert "records 10 entries (deleted)" in gone.stdout


def test_cli_verify_of_an_unsigned_log_says_what_it_cannot_catch(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path / ".tether" / "audit.db") as log:
        log.append("answer", "tether", {"question": "q"})
    proc = tether(tmp_path, "audit", "verify")
    assert proc.returncode == 0, proc.stderr
    assert "warning: unsigned log" in proc.stdout and "recomputed hashes" in proc.stdout
    assert "warning: no checkpoint file: a cut-off tail" in proc.stdout


def test_cli_configured_key_that_cannot_be_read_is_one_clear_error(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path / ".tether" / "audit.db") as log:
        log.append("answer", "tether", {"question": "q"})
    (tmp_path / "tether.yaml").write_text("audit:\n  key_file: missing.key\n")
    proc = tether(tmp_path, "audit", "verify")
    assert proc.returncode == 2 and proc.stdout == ""
    assert "no audit key file at" in proc.stderr and "missing.key" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
