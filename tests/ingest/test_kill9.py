"""A SIGKILL at any moment of an ingest leaves a consistent index, and the next ingest completes it."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tether.config import EmbeddingSettings, load_settings
from tether.ingest import ingest_paths
from tether.ingest.parsers import parse_file
from tether.models import OnnxEmbedder, load_embedder
from tether.store import SQLiteStore

N_FILES = 40
_WORD_TEXT = (
    "river mountain lantern copper harbor violet engine orchard signal marble canyon feather "
    "glacier meadow compass thunder saddle pepper window quartz falcon ribbon castle timber "
    "meteor pillow anchor basket cinder dragon ember forest garnet hollow island jasmine "
    "kettle ladder mirror nectar oyster parrot quiver rocket spruce tunnel umbrella velvet "
    "walnut yonder "
)
WORDS = _WORD_TEXT.split()

CHILD = """
import sys
from tether import Tether

t = Tether.open(sys.argv[1])
t.embedder.embed(["warm up the model before the clock starts"])
print("ready", flush=True)
summary = t.ingest([sys.argv[2]], batch_size=2)  # a transaction every ~2 chunks
print("done", summary.added, flush=True)
"""


def file_text(i: int) -> str:
    rng = random.Random(i)
    sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 14))).capitalize() + "." for _ in range(8)]
    return f"Record {i}\n\n" + " ".join(sentences[:4]) + "\n\n" + " ".join(sentences[4:]) + "\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("kill9") / "corpus"
    folder.mkdir()
    for i in range(N_FILES):
        (folder / f"record_{i:02d}.txt").write_text(file_text(i), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def embedder() -> OnnxEmbedder:
    return load_embedder(EmbeddingSettings(threads=1))


def write_config(folder: Path) -> Path:
    config = folder / "tether.yaml"
    config.write_text(
        "index:\n  path: index/index.db\n"
        "embedding:\n  batch_size: 2\n  threads: 1\n"  # a transaction every ~2 chunks
        "ingest:\n  chunk:\n    max_tokens: 64\n",
        encoding="utf-8",
    )
    return config


def wait_for(condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.005)
    return False


def committed(index: Path) -> int:
    """Documents a reader sees as committed right now (0 while the index does not exist yet)."""
    if not index.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{index}?mode=ro", uri=True, timeout=1)
        try:
            return int(con.execute("SELECT COUNT(*) FROM documents").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def stored_rows(index: Path) -> list[tuple[int, str, int, str, str]]:
    conn = sqlite3.connect(f"file:{index}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT id, path, n_chunks, content_hash, text FROM documents ORDER BY path").fetchall()
    finally:
        conn.close()


def assert_consistent(index: Path) -> int:
    """Check every invariant a crash must not break; return the number of stored documents."""
    with SQLiteStore.open(index) as store:
        assert store.integrity_problems() == []
        rows = stored_rows(index)
        chunk_paths = store.chunk_paths()
        hits = store.hits(list(chunk_paths))
        assert len(set(hits)) == len(chunk_paths) == store.chunk_count()
        for doc_id, path, n_chunks, content_hash, text in rows:
            source = Path(path)
            data = source.read_bytes()
            assert content_hash == hashlib.sha256(data).hexdigest(), path
            assert text == parse_file(source, data).text, path
            own = sorted((h for h in hits.values() if h.doc_id == doc_id), key=lambda h: h.start)
            assert len(own) == n_chunks > 0, path
            for hit in own:
                assert text[hit.start : hit.end] == hit.text, path
        return len(rows)


# Killing once a random number of documents is committed picks a random moment mid-ingest that does
# not depend on how fast the machine is.


@pytest.mark.parametrize(
    ("trigger", "seed"),
    [("delay", 1), ("commits", 1), ("commits", 2)],
    ids=["early-random-delay", "after-random-commits-a", "after-random-commits-b"],
)
def test_sigkill_during_ingest_leaves_a_consistent_index_that_resumes(
    tmp_path: Path, corpus: Path, embedder: OnnxEmbedder, trigger: str, seed: int
) -> None:
    config = write_config(tmp_path)
    index = tmp_path / "index" / "index.db"
    rng = random.Random(seed)
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(config), str(corpus)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line
        if trigger == "commits":
            target_docs = rng.randint(1, N_FILES - 5)
            assert wait_for(lambda: committed(index) >= target_docs, timeout=120), "ingest never got there"
        else:
            time.sleep(rng.uniform(0.0, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the ingest finished before it could be killed"

    stored = assert_consistent(index)
    assert stored < N_FILES

    settings = load_settings(config)
    with SQLiteStore.open(index) as store:
        summary = ingest_paths([corpus], store, embedder, settings.ingest, batch_size=2)
        assert summary.skipped == []
        assert summary.unchanged == stored
        assert summary.added == N_FILES - stored
        assert summary.duplicates_removed == 0
        assert len(store.paths()) == N_FILES
        assert store.stats().documents == N_FILES
    assert assert_consistent(index) == N_FILES
    assert sorted(Path(p).name for _, p, *_ in stored_rows(index)) == sorted(f.name for f in corpus.iterdir())
