"""`tether ingest` run as a real process without a terminal: a typo is an error, progress is printed as plain
lines or JSON (counted in chunks), and a named pipe in the folder does not hang it."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from cli_helpers import tether

from tether.contracts import IngestSummary


def documents(root: Path) -> int:
    index = root / "idx" / "index.db"
    if not index.exists():
        return 0
    with sqlite3.connect(index) as c:
        return int(c.execute("SELECT COUNT(*) FROM documents").fetchone()[0])


@pytest.fixture
def root(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i, topic in enumerate(["kayaks", "orchids", "comets", "glaciers"]):
        body = " ".join(f"Sentence {j} of note {i} is about {topic} and their {j} habits." for j in range(30))
        (docs / f"{topic}.md").write_text(f"# {topic.title()}\n\n{body}\n", encoding="utf-8")
    (tmp_path / "tether.yaml").write_text(
        "index:\n  path: idx/index.db\nembedding:\n  threads: 1\ningest:\n  workers: 0\n  chunk:\n    max_tokens: 64\n",
        encoding="utf-8",
    )
    return tmp_path


def test_a_missing_path_exits_2_with_one_line_naming_it_and_ingests_nothing(root: Path) -> None:
    result = tether(["ingest", "docs", "typo"], root)
    assert result.code == 2, result
    assert "Traceback" not in result.err and result.out == ""
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert lines == ["error: typo: no such file or folder (nothing was ingested)"]
    assert documents(root) == 0


def test_without_a_terminal_progress_is_plain_lines_counted_in_chunks(root: Path) -> None:
    result = tether(["ingest", "docs"], root)
    assert result.code == 0, result.err
    assert "\x1b" not in result.err  # no terminal control codes
    lines = result.err.splitlines()
    assert lines and all(line.startswith("ingest: ") for line in lines), result.err
    assert " chunks, 0 of 4 files, ETA " in lines[0]
    assert lines[-1].startswith("ingest: ") and " chunks embedded, 4 of 4 files, done in " in lines[-1]
    assert result.out.startswith("added 4, updated 0, unchanged 0")


def test_progress_json_is_one_object_per_line_ending_with_the_summary_counts(root: Path) -> None:
    result = tether(["ingest", "docs", "--progress", "json", "--json"], root)
    assert result.code == 0, result.err
    summary = IngestSummary.model_validate_json(result.out)
    events = [json.loads(line) for line in result.err.splitlines()]
    assert len(events) >= 2
    assert events[-1]["stage"] == "done" and events[-1]["files_done"] == events[-1]["files_total"] == 4
    assert events[-1]["chunks_done"] == events[-1]["chunks_total"] == summary.chunks > 4
    done = [e["chunks_done"] for e in events]
    assert done == sorted(done)


def test_quiet_prints_no_progress(root: Path) -> None:
    result = tether(["ingest", "-q", "docs"], root)
    assert result.code == 0 and result.err == ""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes (POSIX)")
def test_a_named_pipe_in_the_folder_is_skipped_and_does_not_hang_the_ingest(root: Path) -> None:
    os.mkfifo(root / "docs" / "pipe.md")
    result = tether(["ingest", "-q", "docs"], root, timeout=90)
    assert result.code == 0, result.err
    assert "added 4" in result.out
    assert "skipped docs/pipe.md: not a regular file (a named pipe)" in result.out
