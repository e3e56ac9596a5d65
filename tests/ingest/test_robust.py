"""An ingest that cannot be stalled: pipes, sockets and devices are never opened, a giant file waits its turn
and is capped, progress moves with the chunks embedded, and a document written meanwhile is not counted twice."""

from __future__ import annotations

import io
import json
import os
import random
import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

import fakes
from tether.config import ChunkSettings, IngestSettings
from tether.contracts import IngestSummary
from tether.errors import IngestError
from tether.ingest import Ingestor, IngestProgress, ProgressPrinter, ingest_paths
from tether.ingest._files import read_regular
from tether.ingest._pipeline import EMBED_STEP
from tether.store import SQLiteStore

_WORD_TEXT = (
    "river mountain lantern copper harbor violet engine orchard signal marble canyon feather glacier "
    "meadow compass thunder saddle pepper window quartz falcon ribbon castle timber meteor"
)
WORDS = _WORD_TEXT.split()

needs_posix = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes and unix sockets (POSIX)")


class HashEmbedder(fakes.HashEmbedder):
    """A seeded unit vector per text, recording what it was asked and what the index held at that moment."""

    def __init__(self, index: Path | None = None) -> None:
        self.index = index
        self.calls: list[tuple[int, int]] = []  # (texts embedded in the call, documents committed before it)

    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        self.calls.append((len(texts), committed(self.index) if self.index else 0))
        return super().embed(texts)


def committed(index: Path) -> int:
    """Documents another connection sees as committed."""
    con = sqlite3.connect(f"file:{index}?mode=ro", uri=True, timeout=5)
    try:
        return int(con.execute("SELECT COUNT(*) FROM documents").fetchone()[0])
    finally:
        con.close()


def words(seed: int, n: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n))


@pytest.fixture
def index(tmp_path: Path) -> Path:
    return tmp_path / "idx" / "index.db"


@pytest.fixture
def store(index: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore.open(index, create=True)
    yield s
    s.close()


def run_with_deadline(fn, seconds: float = 60.0):  # type: ignore[no-untyped-def]
    """``fn()`` in a thread; fails the test (instead of hanging it) if it does not return in time."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as e:  # noqa: BLE001
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still running after {seconds}s: the ingest blocked"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["result"]


# -- files that are not regular files -----------------------------------------------------------------


@needs_posix
def test_a_named_pipe_and_a_socket_in_a_folder_are_skipped_with_a_reason_without_blocking(
    tmp_path: Path, store: SQLiteStore
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Kayaks glide over the fjord at dawn.\n")
    os.mkfifo(docs / "pipe.txt")  # read_bytes() on it blocks until a writer comes: none will
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(docs / "sock.md"))
    try:
        summary: IngestSummary = run_with_deadline(
            lambda: ingest_paths([docs], store, HashEmbedder(), IngestSettings(workers=0))
        )
    finally:
        sock.close()
    assert summary.added == 1
    reasons = {Path(s.path).name: s.reason for s in summary.skipped}
    assert reasons == {"pipe.txt": "not a regular file (a named pipe)", "sock.md": "not a regular file (a socket)"}


@needs_posix
def test_a_named_pipe_or_a_device_named_directly_is_skipped_with_a_reason(tmp_path: Path, store: SQLiteStore) -> None:
    os.mkfifo(tmp_path / "direct.txt")
    paths = [tmp_path / "direct.txt"]
    if Path("/dev/null").exists():
        paths.append(Path("/dev/null"))
    summary: IngestSummary = run_with_deadline(
        lambda: ingest_paths(paths, store, HashEmbedder(), IngestSettings(workers=0))
    )
    assert summary.added == 0
    assert [s.reason for s in summary.skipped] == [
        "not a regular file (a named pipe)",
        "not a regular file (a character device)",
    ][: len(paths)]


@needs_posix
def test_a_file_swapped_for_a_pipe_or_a_link_after_it_was_found_is_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.txt")
    with pytest.raises(IngestError, match="named pipe"):
        run_with_deadline(lambda: read_regular(tmp_path / "pipe.txt", 50.0, follow=False))
    (tmp_path / "secret.txt").write_text("secret")
    (tmp_path / "was-a-file.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(IngestError):  # found as a regular file, so opened without following a link
        read_regular(tmp_path / "was-a-file.txt", 50.0, follow=False)


# -- a giant file -------------------------------------------------------------------------------------

SMALL = IngestSettings(workers=0, chunk=ChunkSettings(max_tokens=32, overlap_tokens=0))


def giant_corpus(folder: Path, giant_words: int) -> Path:
    folder.mkdir()
    (folder / "a_good.txt").write_text("Copper harbors at dusk.\n\n" + words(1, 20))
    (folder / "b_good.txt").write_text("Violet engines hum.\n\n" + words(2, 20))
    (folder / "c_giant.txt").write_text(words(3, giant_words))  # one line, no headings
    (folder / "d_after.txt").write_text("Quartz falcons fly.\n\n" + words(4, 20))
    return folder


def test_files_before_a_giant_one_are_committed_before_it_is_embedded_in_steps(
    tmp_path: Path, index: Path, store: SQLiteStore
) -> None:
    docs = giant_corpus(tmp_path / "docs", giant_words=6000)
    embedder = HashEmbedder(index)
    events: list[IngestProgress] = []
    summary = ingest_paths([docs], store, embedder, SMALL, batch_size=16, on_progress=events.append)
    assert summary.added == 4 and summary.skipped == []
    giant_chunks = store.stats().chunks - 3
    assert giant_chunks > 2 * EMBED_STEP
    big_calls = [(n, before) for n, before in embedder.calls if n > 2]
    # the two good files were written before the giant's first chunk was embedded ...
    assert big_calls[0][1] == 2, embedder.calls
    # ... and the giant was embedded a step at a time, each step reported
    assert all(n <= EMBED_STEP for n, _ in embedder.calls)
    steps = [e.chunks_done for e in events if e.stage == "embedding"]
    assert steps == sorted(steps) and len(steps) >= giant_chunks // EMBED_STEP
    assert events[-1].stage == "done" and events[-1].chunks_done == summary.chunks == events[-1].chunks_total
    # it is still one document, written whole
    with sqlite3.connect(index) as c:
        n = c.execute("SELECT n_chunks FROM documents WHERE path LIKE '%c_giant.txt'").fetchone()[0]
    assert n == giant_chunks


def test_a_file_over_the_chunk_cap_is_skipped_with_a_reason_naming_the_setting(
    tmp_path: Path, store: SQLiteStore
) -> None:
    docs = giant_corpus(tmp_path / "docs", giant_words=3000)
    settings = SMALL.model_copy(update={"max_chunks_per_file": 40})
    embedder = HashEmbedder()
    summary = ingest_paths([docs], store, embedder, settings, batch_size=16)
    assert summary.added == 3
    [skip] = summary.skipped
    assert Path(skip.path).name == "c_giant.txt"
    assert skip.reason.startswith("too many chunks (") and skip.reason.endswith("> ingest.max_chunks_per_file 40)")
    assert sum(n for n, _ in embedder.calls) == summary.chunks  # none of the giant's chunks was embedded


def test_the_chunk_cap_is_a_setting_with_a_sensible_default() -> None:
    assert IngestSettings().max_chunks_per_file == 5000
    with pytest.raises(ValueError):
        IngestSettings(max_chunks_per_file=0)


# -- progress -----------------------------------------------------------------------------------------


def test_progress_counts_chunks_embedded_with_a_total_that_is_estimated_until_every_file_is_read(
    tmp_path: Path, store: SQLiteStore
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(12):
        (docs / f"f{i:02d}.txt").write_text(words(10 + i, 40 * (i + 1)))
    events: list[IngestProgress] = []
    summary = ingest_paths([docs], store, HashEmbedder(), SMALL, batch_size=8, on_progress=events.append)
    done = [e.chunks_done for e in events]
    assert done == sorted(done) and done[-1] == summary.chunks
    assert any(e.estimated for e in events) and not events[-1].estimated
    assert all(e.files_total == 12 for e in events)
    etas = [e.eta_s for e in events if e.stage == "embedding"]
    assert etas and all(eta is not None and eta >= 0 for eta in etas)
    assert events[-1].eta_s == 0 and events[-1].files_done == 12
    # an estimate is made from the bytes of the files not yet read: it is never wildly off
    mid = [e for e in events if e.estimated and e.chunks_total]
    assert all(0.5 * summary.chunks <= e.chunks_total <= 2 * summary.chunks for e in mid[len(mid) // 2 :])


def test_plain_progress_lines_come_at_most_every_interval_but_the_first_and_the_last_always() -> None:
    stream = io.StringIO()
    printer = ProgressPrinter(stream, "plain", interval=3600)
    event = IngestProgress(
        stage="embedding",
        files_done=3,
        files_total=5,
        chunks_done=1200,
        chunks_total=17648,
        estimated=False,
        elapsed_s=10,
        eta_s=250,
    )
    for _ in range(5):
        printer(event)
    printer(event.model_copy(update={"stage": "done", "chunks_done": 17648, "eta_s": 0}))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "ingest: 1200/17648 chunks, 3 of 5 files, ETA 0:04:10"
    assert len(lines) == 2 and lines[1].startswith("ingest: 17648 chunks embedded")
    stream = io.StringIO()
    ProgressPrinter(stream, "json", interval=0)(event)
    assert json.loads(stream.getvalue())["chunks_done"] == 1200


# -- a document written by someone else meanwhile ----------------------------------------------------


def test_a_document_another_ingest_wrote_meanwhile_is_counted_once(tmp_path: Path, index: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Copper harbors at dusk.\n")
    with SQLiteStore.open(index, create=True) as mine, SQLiteStore.open(index) as theirs:
        ing = Ingestor(mine, HashEmbedder(), SMALL)
        ing.add_file(docs / "a.txt")  # read and queued, not yet written
        other = ingest_paths([docs], theirs, HashEmbedder(), SMALL)
        assert other.added == 1
        ing.flush()
        assert (ing.summary.added, ing.summary.unchanged) == (0, 1)
        assert len(mine.paths()) == 1 and mine.stats().chunks == 1


def test_files_queued_before_a_big_file_are_committed_before_it_is_cut(
    tmp_path: Path, index: Path, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tether.ingest._pipeline as pipeline
    import tether.ingest._prepare as prepare

    docs = giant_corpus(tmp_path / "docs", giant_words=3000)
    giant_size = (docs / "c_giant.txt").stat().st_size
    monkeypatch.setattr(pipeline, "BIG_FILE_BYTES", giant_size)
    seen_when_cut: list[int] = []
    real_chunk = prepare.chunk_document

    def chunk_document(parsed, *args):  # type: ignore[no-untyped-def]
        if len(parsed.text) >= giant_size - 10:
            seen_when_cut.append(committed(index))
        return real_chunk(parsed, *args)

    monkeypatch.setattr(prepare, "chunk_document", chunk_document)
    settings = SMALL.model_copy(update={"max_chunks_per_file": 40, "workers": 1})  # in-process: under MIN_PARALLEL
    summary = ingest_paths([docs], store, HashEmbedder(), settings)  # a batch of 512 chunks would hold them all
    assert summary.added == 3 and [Path(s.path).name for s in summary.skipped] == ["c_giant.txt"]
    assert seen_when_cut == [2]
