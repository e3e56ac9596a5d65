"""The local trace store: a request is written whole or not at all, by many threads and processes at once, a
killed writer leaves it readable, a store that cannot be written never fails a request, and reading refuses
files that are not trace stores."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from fakes import another_process_creating
from tether.trace import TraceError, TraceReader, Tracing

STAGES = ("policy", "retrieve", "rerank", "answer", "verify", "audit")


def one_request(tracing: Tracing, question: str, abstained: bool = False) -> str:
    with tracing.request("ask", {"question": question, "config_hash": "h1"}) as trace:
        for name in STAGES:
            with trace.stage(name) as span:
                span.set("question_seen", question)
        trace.set("abstained", abstained)
    return trace.trace_id


def check_whole(db: Path) -> dict[str, list[tuple[str, str | None, str]]]:
    """Every trace row has its root and its six stages, and every stage's parent is its own request's root."""
    conn = sqlite3.connect(db)
    traces = {r[0]: r[1] for r in conn.execute("SELECT trace_id, question FROM traces")}
    spans: dict[str, list[tuple[str, str | None, str]]] = {}
    for trace_id, span_id, parent, attrs in conn.execute("SELECT trace_id, span_id, parent, attributes FROM spans"):
        spans.setdefault(trace_id, []).append((span_id, parent, attrs))
    conn.close()
    assert set(spans) == set(traces), "spans without their request, or a request without its spans"
    for trace_id, rows in spans.items():
        assert len(rows) == 7, trace_id
        roots = [r for r in rows if r[1] is None]
        assert len(roots) == 1
        assert all(r[1] == roots[0][0] for r in rows if r[1] is not None)
        assert all(traces[trace_id] in r[2] for r in rows if r[1] is not None)  # no stage from another request
    return spans


def test_many_threads_share_one_tracing_without_mixing_requests(tmp_path: Path) -> None:
    tracing = Tracing(store_path=tmp_path / "t.db")
    ids: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(40):
            tid = one_request(tracing, f"thread {n} question {i}")
            with lock:
                ids.append(tid)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tracing.close()
    assert tracing.export_errors == 0
    assert len(set(ids)) == 320
    assert set(check_whole(tmp_path / "t.db")) == set(ids)


def test_stages_run_in_parallel_threads_all_land_under_their_request(tmp_path: Path) -> None:
    tracing = Tracing(store_path=tmp_path / "t.db")
    with tracing.request("ask", {"question": "q"}) as trace:

        def stage(name: str) -> None:
            with trace.stage(name) as span:
                span.set("question_seen", "q")

        threads = [threading.Thread(target=stage, args=(n,)) for n in STAGES]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    tracing.close()
    check_whole(tmp_path / "t.db")


def test_a_stage_that_ends_after_its_request_is_still_stored(tmp_path: Path) -> None:
    tracing = Tracing(store_path=tmp_path / "t.db")
    release = threading.Event()
    done = threading.Event()

    def straggler(trace_stage: object) -> None:
        with trace_stage:  # type: ignore[attr-defined]
            release.wait(5)
        done.set()

    with tracing.request("ask", {}) as trace:
        threading.Thread(target=straggler, args=(trace.stage("background"),)).start()
        time.sleep(0.01)
    release.set()
    done.wait(5)
    tracing.close()
    with TraceReader(tmp_path / "t.db") as reader:
        names = [s.name for s in reader.get(trace.trace_id).spans]
    assert sorted(names) == ["stage.background", "tether.ask"]


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from tether.trace import Tracing
    STAGES = ("policy", "retrieve", "rerank", "answer", "verify", "audit")
    tracing = Tracing(store_path=Path(sys.argv[1]))
    n = int(sys.argv[3])
    i = 0
    while n == 0 or i < n:
        q = f"{sys.argv[2]} {i}"
        with tracing.request("ask", {"question": q}) as trace:
            for name in STAGES:
                with trace.stage(name) as span:
                    span.set("question_seen", q)
        i += 1
        if i == 5:
            print("ready", flush=True)
    tracing.close()
    """
)


def _committed(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute("SELECT count(*) FROM traces").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_a_request_is_written_in_the_background_and_flush_waits_for_it(tmp_path: Path) -> None:
    tracing = Tracing(store_path=tmp_path / "t.db")
    ids = [one_request(tracing, f"q{i}") for i in range(50)]
    assert tracing.flush(10)
    assert _committed(tmp_path / "t.db") == 50  # flush returned only when all of them were committed
    with TraceReader(tmp_path / "t.db") as reader:
        assert {reader.get(i).trace_id for i in ids} == set(ids)
    tracing.close()


def test_a_process_that_exits_without_closing_still_writes_its_traces(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    script = WRITER.replace("tracing.close()", "")  # the exit hook must drain the queue
    subprocess.run([sys.executable, "-c", script, str(db), "unclosed", "40"], check=True, timeout=120)
    assert len(check_whole(db)) == 40


def test_a_full_queue_drops_requests_and_counts_them_never_blocks(tmp_path: Path) -> None:
    from tether.trace._export import ExportErrors, LocalStoreProcessor

    tracing = Tracing(store_path=tmp_path / "t.db")
    one_request(tracing, "first")  # starts the provider
    provider = tracing._provider
    errors = tracing._errors
    assert provider is not None and isinstance(errors, ExportErrors)
    slow = LocalStoreProcessor(tmp_path / "slow.db", errors, linger_s=0, max_queued=3)
    gate = threading.Event()
    original = slow._write

    def stalled(batch: object) -> None:
        gate.wait(10)
        original(batch)  # type: ignore[arg-type]

    slow._write = stalled  # type: ignore[method-assign]
    provider.add_span_processor(slow)
    before = tracing.export_errors
    started = time.monotonic()
    for i in range(10):
        one_request(tracing, f"q{i}")
    assert time.monotonic() - started < 5  # the requests did not wait for the stalled writer
    dropped = tracing.export_errors - before
    assert dropped >= 4  # one batch in the stalled write (3 at most) + 3 queued: the rest were dropped
    gate.set()
    assert tracing.flush(10)
    assert _committed(tmp_path / "slow.db") == 10 - dropped  # every request is written or counted, none twice
    tracing.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_writes_its_own_requests_and_not_the_parents_twice(tmp_path: Path) -> None:
    tracing = Tracing(store_path=tmp_path / "t.db")
    one_request(tracing, "parent before fork")
    pid = os.fork()
    if pid == 0:  # the child: trace, flush, leave without running the parent's exit hooks
        code = 1
        try:
            one_request(tracing, "child")
            code = 0 if tracing.flush(10) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    one_request(tracing, "parent after fork")
    tracing.close()
    spans = check_whole(tmp_path / "t.db")
    assert len(spans) == 3
    conn = sqlite3.connect(tmp_path / "t.db")
    questions = sorted(r[0] for r in conn.execute("SELECT question FROM traces"))
    conn.close()
    assert questions == ["child", "parent after fork", "parent before fork"]


def test_several_processes_write_one_store_at_once(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(db), f"proc{n}", "60"], stderr=subprocess.PIPE, text=True)
        for n in range(3)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert "tracing:" not in err  # no export error was reported
    assert len(check_whole(db)) == 180


def test_a_writer_killed_mid_stream_leaves_whole_requests_only(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), "killed", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _committed(db) < 5:  # kill it while it writes on, mid-batch
        time.sleep(0.05)
    time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    spans = check_whole(db)
    assert len(spans) >= 5
    with TraceReader(db) as reader:  # and it still reads, and the next writer appends to it
        assert len(reader.traces(limit=0)) == len(spans)
    tracing = Tracing(store_path=db)
    one_request(tracing, "after the crash")
    tracing.close()
    assert len(check_whole(db)) == len(spans) + 1


def test_a_store_that_cannot_be_written_never_fails_a_request(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "blocker").write_text("a file where the store's folder should be", encoding="utf-8")
    tracing = Tracing(store_path=tmp_path / "blocker" / "t.db")
    ids = [one_request(tracing, f"q{i}") for i in range(3)]
    tracing.close()
    assert all(len(i) == 32 for i in ids)  # the requests went on, traced in memory only
    assert tracing.export_errors == 3
    warnings = [r for r in caplog.records if r.name == "tether.trace" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "blocker" in warnings[0].getMessage()


def test_a_store_of_a_newer_format_is_not_written_over(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 9")
    conn.close()
    tracing = Tracing(store_path=db)
    one_request(tracing, "q")
    tracing.close()
    assert tracing.export_errors == 1
    with pytest.raises(TraceError, match="format 1"):
        TraceReader(db)


def test_reading_a_file_that_is_not_a_store_is_one_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(TraceError, match="not a Tether trace store"):
        TraceReader(junk)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE entries (x)")
    conn.close()
    with pytest.raises(TraceError, match="not a Tether trace store"):
        TraceReader(other)
    with pytest.raises(TraceError, match="no trace store at"):
        TraceReader(tmp_path / "missing.db")


def test_ids_resolve_by_prefix_and_refuse_junk(tmp_path: Path) -> None:
    tracing = Tracing(store_path=tmp_path / "t.db")
    ids = [one_request(tracing, f"q{i}") for i in range(40)]
    tracing.close()
    with TraceReader(tmp_path / "t.db") as reader:
        assert reader.resolve(ids[0][:12].upper()) == ids[0]
        common = max("0123456789abcdef", key=lambda c: sum(i.startswith(c) for i in ids))  # 40 ids: shared
        with pytest.raises(TraceError, match="matches .* traces .*give more digits"):
            reader.resolve(common)
        with pytest.raises(TraceError, match="not a trace id"):
            reader.resolve("")
        with pytest.raises(TraceError, match="not a trace id"):
            reader.resolve("' OR 1=1 --")
        with pytest.raises(TraceError, match="not a trace id"):
            reader.resolve("*")  # a GLOB wildcard is not hex
        with pytest.raises(TraceError, match="no trace"):
            reader.resolve("0" * 32 if ids[0] != "0" * 32 else "1" * 32)
        with pytest.raises(TraceError, match="not a trace id"):
            reader.resolve("a" * 33)


def test_listing_filters_by_time_and_abstention(tmp_path: Path) -> None:
    tracing = Tracing(store_path=tmp_path / "t.db")
    answered = one_request(tracing, "answered")
    abstained = one_request(tracing, "abstained", abstained=True)
    tracing.close()
    with TraceReader(tmp_path / "t.db") as reader:
        assert [t.trace_id for t in reader.traces()] == [abstained, answered]  # newest first
        only = reader.traces(abstained=True)
        assert [(t.trace_id, t.question, t.abstained, t.config_hash) for t in only] == [
            (abstained, "abstained", True, "h1")
        ]
        assert reader.traces(since="2999-01-01T00:00:00.000000Z") == []
        assert len(reader.traces(limit=1)) == 1


def test_a_store_another_process_is_creating_is_waited_for_not_refused(tmp_path: Path) -> None:
    """Switching an empty file to WAL while another connection holds its write lock is refused at once by SQLite
    (the busy timeout does not apply): two processes creating one trace store together would lose requests."""
    from tether.trace._store import SpanRow, TraceWriter

    db = tmp_path / "t.db"
    started = time.monotonic()
    row = SpanRow("t1", "s1", None, "ask", "2026-12-07T00:00:00.000000Z", 1.0, "OK", None, {})
    with another_process_creating(db):
        writer = TraceWriter(db)
        writer.write([row], row)
    writer.close()
    assert time.monotonic() - started >= 0.4
    assert _committed(db) == 1
