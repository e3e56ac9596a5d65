"""The config history: one row per config hash with its full settings, counted uses, prefixes, diffs, and a
store that many threads and processes write at once and a kill -9 never leaves half-written."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import tether.config._history as history_module
from fakes import another_process_creating
from tether.config import (
    DEFAULT_CONFIG_NAME,
    ConfigHistory,
    Settings,
    default_yaml,
    diff_settings,
    load_settings,
)
from tether.errors import ConfigError, DataError


def settings(root: Path, **sections: dict[str, Any]) -> Settings:
    return Settings.model_validate(sections).with_root(root)


def raw_rows(path: Path) -> list[tuple[str, int, str]]:
    """What is on disk, read around the API (which would write pending counts first)."""
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT hash, uses, last_seen FROM configs ORDER BY hash").fetchall()


def two_hashes_sharing_a_first_digit(root: Path) -> tuple[Settings, Settings]:
    seen: dict[str, Settings] = {}
    for i in range(200):
        s = settings(root, retrieval={"top_k": 1 + i % 100, "alpha": (i // 100) / 2})
        if (other := seen.get(s.config_hash[0])) is not None:
            return other, s
        seen[s.config_hash[0]] = s
    raise AssertionError("no two of 200 hashes share a first digit")


# -- where, what, how often -----------------------------------------------------------------------------


def test_the_store_lies_beside_the_index(tmp_path: Path) -> None:
    assert ConfigHistory.for_settings(settings(tmp_path)).path == tmp_path / ".tether" / "configs.db"
    moved = settings(tmp_path, index={"path": "data/idx.db"})
    assert ConfigHistory.for_settings(moved).path == tmp_path / "data" / "configs.db"


def test_recording_twice_keeps_one_row_and_counts_both_uses(tmp_path: Path) -> None:
    s = settings(tmp_path)
    history = ConfigHistory(tmp_path / "configs.db")
    assert history.record(s) == s.config_hash
    assert history.record(s) == s.config_hash
    history.close()
    again = ConfigHistory(tmp_path / "configs.db")
    records = again.list()
    assert [(r.config_hash, r.uses) for r in records] == [(s.config_hash, 2)]
    assert records[0].settings == s.model_dump(mode="json")
    assert len(raw_rows(tmp_path / "configs.db")) == 1


def test_the_stored_settings_reproduce_the_config_and_its_prompts(tmp_path: Path) -> None:
    s = settings(tmp_path, answer={"system_prompt": "Answer from the sources only.", "mode": "llm"})
    history = ConfigHistory(tmp_path / "configs.db")
    record = history.get(history.record(s))
    assert record.settings["answer"]["system_prompt"] == "Answer from the sources only."
    assert Settings.model_validate(record.settings).config_hash == s.config_hash == record.config_hash
    history.close()


def test_a_repeat_record_does_no_io_and_costs_microseconds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(tmp_path)
    history = ConfigHistory(tmp_path / "configs.db")
    history.record(s)

    def no_io(*args: object) -> None:
        raise AssertionError("a repeat record touched the store")

    monkeypatch.setattr(ConfigHistory, "_write", no_io)
    n = 20_000
    t0 = time.perf_counter()
    for _ in range(n):
        history.record(s)
    per_call = (time.perf_counter() - t0) / n
    assert per_call < 50e-6, f"{per_call * 1e6:.1f} us per repeat record"  # ~1 us measured; a shared CI box is slower
    monkeypatch.undo()
    history.close()
    assert history.get(s.config_hash).uses == n + 1


def test_uses_and_last_seen_are_written_at_most_once_a_minute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(tmp_path)
    db = tmp_path / "configs.db"
    history = ConfigHistory(db)
    history.record(s)
    first_written = raw_rows(db)[0]
    history.record(s)
    history.record(s)
    assert raw_rows(db) == [first_written]  # within the minute: counted in memory only
    monkeypatch.setattr(history_module, "WRITE_EVERY_S", 0.0)  # the minute has passed
    history.record(s)
    (h, uses, last_seen) = raw_rows(db)[0]
    assert uses == 4 and last_seen > first_written[2]
    history.close()


def test_a_failed_write_is_an_error_that_names_the_file_and_is_retried(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    history = ConfigHistory(blocker / "configs.db")
    with pytest.raises(DataError, match="not-a-folder"):
        history.record(settings(tmp_path))
    blocker.unlink()
    s = settings(tmp_path)
    assert history.record(s) == s.config_hash  # not remembered as recorded: the next call writes it
    history.close()
    assert ConfigHistory(blocker / "configs.db").get(s.config_hash).uses == 1


def test_reading_a_history_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    history = ConfigHistory(tmp_path / ".tether" / "configs.db")
    assert history.list() == []
    with pytest.raises(ConfigError, match="no config abc"):
        history.get("abc")
    assert not (tmp_path / ".tether").exists()


# -- naming a config ------------------------------------------------------------------------------------


def test_a_config_is_found_by_its_hash_or_a_unique_prefix_in_any_case(tmp_path: Path) -> None:
    a, b = settings(tmp_path), settings(tmp_path, retrieval={"alpha": 0.7})
    history = ConfigHistory(tmp_path / "configs.db")
    history.record(a)
    history.record(b)
    assert history.get(a.config_hash).config_hash == a.config_hash
    unique = next(n for n in range(1, 17) if a.config_hash[:n] != b.config_hash[:n])
    assert history.get(b.config_hash[:unique].upper()).config_hash == b.config_hash
    history.close()


def test_an_ambiguous_prefix_is_an_error_that_names_the_candidates(tmp_path: Path) -> None:
    a, b = two_hashes_sharing_a_first_digit(tmp_path)
    history = ConfigHistory(tmp_path / "configs.db")
    history.record(a)
    history.record(b)
    with pytest.raises(ConfigError) as info:
        history.get(a.config_hash[0])
    message = str(info.value)
    assert "ambiguous" in message and a.config_hash in message and b.config_hash in message
    assert "\n" not in message
    history.close()


@pytest.mark.parametrize("name", ["", "%", "_", "4f%", "zz", "0" * 17, "4f8c 5c", "４"])
def test_wildcards_and_non_hex_names_are_refused_not_matched(tmp_path: Path, name: str) -> None:
    history = ConfigHistory(tmp_path / "configs.db")
    history.record(settings(tmp_path))
    with pytest.raises(ConfigError, match="is not a config hash"):
        history.get(name)
    history.close()


def test_a_row_whose_settings_were_altered_is_refused(tmp_path: Path) -> None:
    s = settings(tmp_path)
    db = tmp_path / "configs.db"
    history = ConfigHistory(db)
    history.record(s)
    history.close()
    altered = s.model_dump(mode="json")
    altered["retrieval"]["alpha"] = 0.9
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE configs SET settings=? WHERE hash=?", (json.dumps(altered), s.config_hash))
    with pytest.raises(DataError, match="altered"):
        ConfigHistory(db).get(s.config_hash)


def test_a_store_that_is_not_a_database_is_a_one_line_error(tmp_path: Path) -> None:
    db = tmp_path / "configs.db"
    db.write_bytes(b"this is no sqlite file" * 100)
    with pytest.raises(DataError, match="cannot open the config history") as info:
        ConfigHistory(db).list()
    assert "\n" not in str(info.value)


def test_a_store_from_a_newer_tether_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "configs.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version=99")
    with pytest.raises(DataError, match="newer Tether"):
        ConfigHistory(db).record(settings(tmp_path))


# -- diffs ----------------------------------------------------------------------------------------------


def test_a_diff_names_nested_settings_by_dotted_key_sorted_and_only_those_that_changed(tmp_path: Path) -> None:
    a = settings(tmp_path).model_dump(mode="json")
    b = settings(
        tmp_path,
        retrieval={"alpha": 0.7},
        answer={"compute": {"n": 5}},
        ingest={"extensions": [".md"]},
    ).model_dump(mode="json")
    changes = diff_settings(a, b)
    assert [c.key for c in changes] == ["answer.compute.n", "ingest.extensions", "retrieval.alpha"]
    by_key = {c.key: c for c in changes}
    assert (by_key["retrieval.alpha"].before, by_key["retrieval.alpha"].after) == (0.5, 0.7)
    assert by_key["ingest.extensions"].after == [".md"]
    assert all(c.change == "changed" and c.text_diff is None for c in changes)
    assert diff_settings(a, a) == []


def test_a_changed_prompt_gets_a_text_diff_of_the_sentence_that_changed(tmp_path: Path) -> None:
    old = settings(tmp_path).answer.system_prompt
    new = old.replace("Never use outside knowledge.", "Never guess.")
    changes = diff_settings(
        settings(tmp_path).model_dump(mode="json"),
        settings(tmp_path, answer={"system_prompt": new}).model_dump(mode="json"),
    )
    assert [c.key for c in changes] == ["answer.system_prompt"]
    text = changes[0].text_diff
    assert text is not None
    changed_lines = [ln for ln in text.splitlines() if ln[:1] in "+-" and not ln.startswith(("---", "+++"))]
    assert changed_lines == ["-Never use outside knowledge.", "+Never guess."]
    assert "a/answer.system_prompt" in text


def test_keys_only_one_side_has_are_added_or_removed_and_a_type_change_is_a_change() -> None:
    a = {"version": 1, "retrieval": {"alpha": 1}, "old": {"flag": True}}
    b = {"version": 1, "retrieval": {"alpha": 1.0}, "new": "x"}
    changes = {c.key: c for c in diff_settings(a, b)}
    assert changes["old.flag"].change == "removed" and changes["old.flag"].before is True
    assert changes["new"].change == "added" and changes["new"].after == "x"
    assert changes["retrieval.alpha"].change == "changed"  # 1 and 1.0 hash differently, so the diff shows why


# -- concurrency and crashes ----------------------------------------------------------------------------


def test_threads_recording_at_once_lose_no_use_and_make_no_duplicate(tmp_path: Path) -> None:
    configs = [settings(tmp_path, retrieval={"top_k": k}) for k in (1, 2, 3)]
    db = tmp_path / "configs.db"
    histories = [ConfigHistory(db), ConfigHistory(db)]  # two handles on one file, as two components would hold
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            start.wait()
            for n in range(300):
                histories[i % 2].record(configs[(i + n) % 3])
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for h in histories:
        h.close()
    rows = raw_rows(db)
    assert sorted(h for h, _, _ in rows) == sorted(c.config_hash for c in configs)
    assert sum(uses for _, uses, _ in rows) == 8 * 300


_RECORDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tether.config import ConfigHistory, Settings
    db, go, own, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    shared = Settings()
    mine = Settings.model_validate({"retrieval": {"top_k": own}})
    while not go.exists():
        time.sleep(0.001)
    history = ConfigHistory(db)
    for i in range(n):
        history.record(shared)
        history.record(mine)
    print("recorded", flush=True)
    """
)


def test_two_processes_creating_and_recording_at_once(tmp_path: Path) -> None:
    db, go = tmp_path / "new" / "configs.db", tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", _RECORDER, str(db), str(go), str(own), "200"], stdout=subprocess.PIPE)
        for own in (7, 8)
    ]
    time.sleep(0.5)  # both started and waiting: they create the store at the same moment
    go.touch()
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0 and b"recorded" in out
    by_hash = {r.config_hash: r for r in ConfigHistory(db).list()}
    assert by_hash[Settings().config_hash].uses == 400  # written at exit, as each process ended
    assert sorted(r.uses for h, r in by_hash.items() if h != Settings().config_hash) == [200, 200]


_CRASHER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from tether.config import ConfigHistory, Settings
    history = ConfigHistory(Path(sys.argv[1]))
    i = 0
    while True:  # a new config each time: every call is a write
        i += 1
        history.record(Settings.model_validate({"answer": {"system_prompt": "prompt " + str(i) * 200}}))
        if i == 20:
            print("writing", flush=True)
    """
)


def test_a_kill_9_in_the_middle_of_writing_leaves_every_row_whole(tmp_path: Path) -> None:
    db = tmp_path / "configs.db"
    for attempt in range(3):
        proc = subprocess.Popen([sys.executable, "-c", _CRASHER, str(db)], stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline() == b"writing\n"
        time.sleep(0.05 * attempt)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    records = ConfigHistory(db).list(limit=100_000)  # each row checked against its hash
    assert len(records) >= 20
    assert all(r.uses >= 1 and r.settings["answer"]["system_prompt"].startswith("prompt ") for r in records)


# -- the whole story ------------------------------------------------------------------------------------


def test_a_record_then_an_edited_yaml_both_show_in_history_with_the_right_diff(tmp_path: Path) -> None:
    yaml_path = tmp_path / DEFAULT_CONFIG_NAME
    yaml_path.write_text(default_yaml(), encoding="utf-8")
    before = load_settings(yaml_path)
    ConfigHistory.for_settings(before).record(before)
    time.sleep(0.002)  # first_seen orders the history
    text = default_yaml().replace("alpha: 0.5", "alpha: 0.6").replace("Never use outside knowledge.", "Never guess.")
    yaml_path.write_text(text, encoding="utf-8")
    after = load_settings(yaml_path)
    history = ConfigHistory.for_settings(after)
    history.record(after)
    newest, oldest = history.list()
    assert (newest.config_hash, oldest.config_hash) == (after.config_hash, before.config_hash)
    changes = diff_settings(oldest.settings, newest.settings)
    assert [c.key for c in changes] == ["answer.system_prompt", "retrieval.alpha"]
    assert changes[0].text_diff is not None and "+Never guess." in changes[0].text_diff
    history.close()


def test_an_eval_run_records_its_config(tmp_path: Path) -> None:
    from tether import Tether
    from tether.evals import EvalRunner

    s = settings(tmp_path, retrieval={"alpha": 0.4})
    report = EvalRunner(Tether(s)).run([], "no cases")
    ConfigHistory.for_settings(s).close()  # write the counts now rather than at exit
    record = ConfigHistory(tmp_path / ".tether" / "configs.db").get(report.summary.config_hash)
    assert record.settings["retrieval"]["alpha"] == 0.4


def test_a_store_another_process_is_creating_is_waited_for_not_refused(tmp_path: Path) -> None:
    """Switching an empty file to WAL while another connection holds its write lock is refused at once by SQLite
    (the busy timeout does not apply): seen in CI as two processes creating the history together."""
    path = tmp_path / "configs.db"
    started = time.monotonic()
    with another_process_creating(path):
        history = ConfigHistory(path)
        s = settings(tmp_path)
        assert history.record(s) == s.config_hash
    assert time.monotonic() - started >= 0.4
    history.close()
