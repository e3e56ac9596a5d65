"""`tether ingest` killed (kill -9) or terminated (SIGTERM) while its worker processes run: no worker outlives
it, the index stays consistent, and the next ingest completes it. SIGTERM stops like Ctrl-C, with one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tether.ingest._prepare import MIN_PARALLEL
from tether.store import SQLiteStore

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")

N_DOCS = 600  # over MIN_PARALLEL (workers start) and over a batch of 512 chunks (the pool lives through a write)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NO_COLOR": "1", "TERM": "dumb"}
TOPICS = ["kayak", "sourdough", "orchid", "glacier", "violin", "comet", "lichen", "harbour"]


def parents() -> dict[int, int]:
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                out[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    return out


def descendants(pid: int) -> set[int]:
    tree = parents()
    found: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        for child, parent in tree.items():
            if parent == p and child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    assert N_DOCS > MIN_PARALLEL
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(N_DOCS):
        t = TOPICS[i % len(TOPICS)]
        (docs / f"d{i:04d}.txt").write_text(f"Note {i} on the {t}: {t} number {i} and the tide of day {i}.\n")
    (tmp_path / "tether.yaml").write_text(
        "index:\n  path: idx/index.db\nembedding:\n  threads: 1\ningest:\n  workers: 2\n", encoding="utf-8"
    )
    return tmp_path


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_a_killed_ingest_leaves_no_worker_behind_and_a_consistent_index(workspace: Path, sig: int) -> None:
    err_file = workspace / "stderr.txt"
    with err_file.open("w") as err:  # a file, not a pipe: an orphan holding a pipe would hang the test
        proc = subprocess.Popen(
            [sys.executable, "-m", "tether", "ingest", "docs"], cwd=workspace, env=ENV, stdout=err, stderr=err
        )
    try:
        workers: set[int] = set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and len(workers) < 2:
            workers = descendants(proc.pid)
            time.sleep(0.01)
        assert len(workers) >= 2, "the ingest never started its workers"
        time.sleep(0.3)
        workers |= descendants(proc.pid)
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(w) for w in workers):
        time.sleep(0.05)
    survivors = [w for w in workers if alive(w)]
    for w in survivors:
        os.kill(w, signal.SIGKILL)
    assert survivors == [], f"{len(survivors)} of {len(workers)} workers outlived the ingest"

    text = err_file.read_text()
    if sig == signal.SIGTERM:
        assert proc.returncode == 143, text[-3000:]
        assert "Traceback" not in text
        assert text.splitlines()[-1] == "terminated (SIGTERM): what was finished is kept"
    else:
        assert proc.returncode == -signal.SIGKILL

    index = workspace / "idx" / "index.db"
    stored = 0
    if index.exists():
        with SQLiteStore.open(index) as store:
            assert store.integrity_problems() == []
            stored = len(store.paths())
    assert stored < N_DOCS, "the ingest finished before it was stopped"
    again = subprocess.run(
        [sys.executable, "-m", "tether", "ingest", "--json", "docs"],
        cwd=workspace,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    with SQLiteStore.open(index) as store:
        assert store.integrity_problems() == []
        assert len(store.paths()) == N_DOCS
