"""Parse, chunk and hash in worker processes: the same index as one process makes, in the same order."""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes import HashEmbedder
from tether.config import IngestSettings
from tether.ingest import Ingestor, ingest_paths
from tether.ingest._prepare import MIN_PARALLEL, Job, Recipe, prepare, prepare_all
from tether.store import SQLiteStore

TOPICS = ["kayak", "sourdough", "orchid", "glacier", "violin", "comet", "lichen", "harbour"]


def records(n: int) -> list[tuple[str, str, str]]:
    """``n`` documents; every 10th repeats an earlier one's text (a near-duplicate for the check to find)."""
    out = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        body = " ".join(f"The {topic} number {i} sentence {j} tells of {topic}s and tides." for j in range(40))
        if i % 10 == 9:
            body = out[i - 5][2]
        out.append((f"doc-{i:04d}", f"{topic.title()} {i}", body))
    return out


def dump(path: Path) -> list[tuple[object, ...]]:
    """What an index holds, in id order (vectors and signatures included)."""
    with sqlite3.connect(path) as c:
        chunks = c.execute(
            'SELECT c.id, d.path, c.ord, c.start, c."end", c.text, c.vector, c.minhash FROM chunks c'
            " JOIN documents d ON d.id = c.doc_id ORDER BY c.id"
        ).fetchall()
        docs = c.execute(
            "SELECT path, title, n_chunks, n_duplicates, content_hash FROM documents ORDER BY id"
        ).fetchall()
        fts = c.execute("SELECT rowid, text, title, section FROM chunks_fts ORDER BY rowid").fetchall()
    return [*chunks, *docs, *fts]


def build(tmp_path: Path, name: str, workers: int, recs: list[tuple[str, str, str]]) -> tuple[Path, Ingestor]:
    store = SQLiteStore.open(tmp_path / name / "index.db", create=True)
    ing = Ingestor(store, HashEmbedder(), IngestSettings(workers=workers), batch_size=64)
    ing.add_records(recs)
    ing.flush()
    store.close()
    return tmp_path / name / "index.db", ing


def test_worker_processes_build_the_same_index_as_one_process(tmp_path: Path) -> None:
    recs = records(MIN_PARALLEL * 3)
    one, ing1 = build(tmp_path, "one", workers=0, recs=recs)
    two, ing2 = build(tmp_path, "two", workers=2, recs=recs)
    assert ing1.workers == 0 and ing2.workers == 2
    assert ing1.summary.duplicates_removed > 0  # the repeated texts were found
    for field in ("added", "chunks", "duplicates_removed", "skipped"):
        assert getattr(ing2.summary, field) == getattr(ing1.summary, field), field
    assert dump(two) == dump(one)
    with SQLiteStore.open(two) as s:
        assert s.integrity_problems() == []  # FTS5 agrees with the chunks table


def test_results_come_back_in_input_order_and_errors_stay_with_their_document() -> None:
    recipe = Recipe(max_tokens=50, overlap_tokens=0, num_perm=16, bands=4, rows=4)
    jobs = [
        Job(key=f"k{i}", source=Path("record.txt"), data=(b"\xff\xfe\x00" if i == 70 else f"text {i} here".encode()))
        for i in range(MIN_PARALLEL + 40)
    ]
    jobs[5] = Job(key="k5", source=Path("x.md"), data=None, skip="unsupported")
    got = list(prepare_all(iter(jobs), recipe, workers=2))
    assert [j.key for j, _ in got] == [j.key for j in jobs]
    assert got[5][1].parsed is None and got[5][1].error is None  # passed through untouched
    assert got[70][1].error is not None and "binary" in got[70][1].error.lower()
    for job, p in got:
        if job.key not in ("k5", "k70"):
            assert p.parsed is not None and p.chunks[0].text == job.data.decode()  # type: ignore[union-attr]
            assert p.signatures is not None and (p.signatures == prepare(job, recipe).signatures).all()


def test_a_folder_ingest_with_workers_reports_progress_for_every_file_in_order(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for key, title, text in records(MIN_PARALLEL + 6):
        (folder / f"{key}.md").write_text(f"# {title}\n\n{text}\n", encoding="utf-8")
    (folder / "bad.pdf").write_bytes(b"%PDF-1.4 broken")
    (folder / "skip.bin").write_bytes(b"\x00")
    seen: list[tuple[int, int, str]] = []
    with SQLiteStore.open(tmp_path / "idx" / "index.db", create=True) as store:
        summary = ingest_paths(
            [folder], store, HashEmbedder(), IngestSettings(workers=2), progress=lambda d, t, p: seen.append((d, t, p))
        )
        assert summary.added == MIN_PARALLEL + 6 - summary.updated
        assert {Path(s.path).name for s in summary.skipped} == {"bad.pdf", "skip.bin"}
        assert [d for d, _, _ in seen] == list(range(1, len(seen) + 1)) and seen[-1][0] == seen[-1][1]
        again = ingest_paths([folder], store, HashEmbedder(), IngestSettings(workers=2))
        assert again.unchanged == MIN_PARALLEL + 6 and again.added == 0


def _children() -> list[int]:
    """Processes whose parent is this one (the pool's forked workers)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == os.getpid():
                    out.append(int(d.name))
            except (OSError, ValueError, IndexError):
                continue
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the forked workers through /proc (Linux)")
def test_killed_workers_leave_the_rest_to_this_process_and_lose_nothing() -> None:
    recipe = Recipe(max_tokens=50, overlap_tokens=0, num_perm=16, bands=4, rows=4)
    killed: list[int] = []

    def jobs() -> Iterator[Job]:
        for i in range(MIN_PARALLEL * 4):
            if i == MIN_PARALLEL * 2:  # the pool is running by now: kill its workers
                for pid in _children():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            yield Job(key=f"k{i}", source=Path("record.txt"), data=f"document {i} about kayaks".encode())

    got = list(prepare_all(jobs(), recipe, workers=2))
    assert killed, "no worker process was found to kill"
    assert [j.key for j, _ in got] == [f"k{i}" for i in range(MIN_PARALLEL * 4)]
    assert all(p.parsed is not None and p.chunks[0].text == j.data.decode() for j, p in got)  # type: ignore[union-attr]


def test_the_writer_takes_the_newest_batch_no_worker_was_sent() -> None:
    from collections import deque
    from concurrent.futures import Future

    from tether.ingest._prepare import _Flight, _steal

    recipe = Recipe(max_tokens=50, overlap_tokens=0, num_perm=16, bands=4, rows=4)

    def batch(i: int) -> list[Job]:
        return [Job(key=f"k{i}", source=Path("record.txt"), data=f"batch {i} about comets".encode())]

    sent: Future[list] = Future()
    flights = deque([_Flight(batch(0), future=sent), _Flight(batch(1)), _Flight(batch(2))])
    assert _steal(flights, recipe)
    assert flights[2].results is not None and flights[2].results[0].chunks[0].text == "batch 2 about comets"
    assert flights[1].waiting and flights[0].future is sent and flights[0].results is None
    assert _steal(flights, recipe) and flights[1].results is not None
    assert not _steal(flights, recipe)  # only a sent batch is left: the writer waits for it
    assert not sent.cancelled()
