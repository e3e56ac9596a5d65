"""The `tether` command line, run as a real process: help, init, clear one-line errors, and --json contracts."""

from __future__ import annotations

import json
import pydoc_data.topics
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_helpers import ENV, TETHER, Result, finish, start, tether
from pydantic import TypeAdapter

from tether.config import Settings, default_yaml, load_settings
from tether.contracts import Answer, Hit, IngestSummary, StoreStats

COMMANDS = {
    "init": "tether.yaml",
    "ingest": "Parse, chunk",
    "search": "retrieval ranks highest",
    "ask": "cited spans",
    "stats": "what the index holds",
}


def assert_clean_error(result: Result) -> str:
    """Exit 2, one line on stderr, no traceback; return that line."""
    assert result.code == 2, result
    assert "Traceback" not in result.err and "Traceback" not in result.out
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error:")
    return lines[0]


@pytest.fixture(scope="module")
def helps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    """`tether --help` and every command's --help, run concurrently."""
    cwd = tmp_path_factory.mktemp("help")
    procs = {"": start(["--help"], cwd)} | {c: start([c, "--help"], cwd) for c in COMMANDS}
    return {name: finish(p) for name, p in procs.items()}


@dataclass
class Workspace:
    root: Path
    ingest: Result


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A folder with tether.yaml and a small ingested corpus (one file is skipped)."""
    root = tmp_path_factory.mktemp("cli")
    docs = root / "docs"
    docs.mkdir()
    for topic in ("break", "continue", "pass"):
        (docs / f"{topic}.txt").write_text(pydoc_data.topics.topics[topic], encoding="utf-8")
    (docs / "garden.md").write_text(
        "# Garden\n\nTomatoes need six hours of sun and deep, infrequent watering.\n", encoding="utf-8"
    )
    (docs / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (root / "tether.yaml").write_text(default_yaml(), encoding="utf-8")
    return Workspace(root, tether(["ingest", "docs", "--json"], root))


# -- help ----------------------------------------------------------------------------------------------


def test_python_dash_m_tether_is_supported(helps: dict[str, Result]) -> None:
    assert helps[""].code == 0, helps[""].err
    assert "Traceback" not in helps[""].err


def test_top_level_help_lists_every_command(helps: dict[str, Result]) -> None:
    result = helps[""]
    assert result.code == 0
    for command in COMMANDS:
        assert command in result.out


@pytest.mark.parametrize("command", list(COMMANDS))
def test_each_command_help_exits_0_and_describes_the_command(helps: dict[str, Result], command: str) -> None:
    result = helps[command]
    assert result.code == 0, result.err
    assert f"tether {command}" in result.out or f"{command} [OPTIONS]" in result.out
    assert COMMANDS[command] in " ".join(result.out.split())


# -- init and configuration errors --------------------------------------------------------------------


def test_init_writes_a_tether_yaml_with_the_defaults(tmp_path: Path) -> None:
    result = tether(["init"], tmp_path)
    assert result.code == 0, result.err
    assert load_settings(tmp_path / "tether.yaml").model_dump() == Settings().model_dump()


def test_a_second_init_without_force_fails_with_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "tether.yaml").write_text("# my edits\n", encoding="utf-8")  # as left by a first init
    line = assert_clean_error(tether(["init"], tmp_path))
    assert "already exists" in line and "--force" in line
    assert (tmp_path / "tether.yaml").read_text(encoding="utf-8") == "# my edits\n"


def test_init_force_overwrites(tmp_path: Path) -> None:
    (tmp_path / "tether.yaml").write_text("# my edits\n", encoding="utf-8")
    assert tether(["init", "--force"], tmp_path).code == 0
    assert "retrieval:" in (tmp_path / "tether.yaml").read_text(encoding="utf-8")


def test_a_bad_tether_yaml_exits_2_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "tether.yaml").write_text("retrieval:\n  fusoin: rrf\n", encoding="utf-8")
    result = tether(["stats"], tmp_path)
    assert result.code == 2
    assert "retrieval.fusoin" in result.err
    assert "Traceback" not in result.err


def test_ask_before_ingest_exits_2_and_says_to_run_tether_ingest(tmp_path: Path) -> None:
    line = assert_clean_error(tether(["ask", "What does break do?"], tmp_path))
    assert "tether ingest" in line


def test_an_unknown_option_is_a_usage_error_without_traceback(tmp_path: Path) -> None:
    result = tether(["stats", "--frobnicate"], tmp_path)
    assert "Traceback" not in result.err
    assert result.code == 2
    assert "frobnicate" in result.err
    assert "Usage" in result.err


# -- --json contracts ---------------------------------------------------------------------------------


def test_ingest_json_reports_added_and_skipped(workspace: Workspace) -> None:
    result = workspace.ingest
    assert result.code == 0, result.err
    summary = IngestSummary.model_validate(json.loads(result.out))
    assert summary.added == 4
    assert [Path(s.path).name for s in summary.skipped] == ["image.png"]
    assert summary.chunks > 0


def test_search_json_is_a_list_of_hits(workspace: Workspace) -> None:
    result = tether(["search", "tomatoes sun watering", "--json", "-k", "3"], workspace.root)
    assert result.code == 0, result.err
    hits = TypeAdapter(list[Hit]).validate_python(json.loads(result.out))
    assert 1 <= len(hits) <= 3
    assert Path(hits[0].path).name == "garden.md"


def test_ask_json_is_an_answer_with_exact_citations(workspace: Workspace) -> None:
    result = tether(["ask", "What does the break statement do in a loop?", "--json"], workspace.root)
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert "trace" not in data
    answer = Answer.model_validate(data)
    assert not answer.abstained
    assert Path(answer.citations[0].path).name == "break.txt"
    assert answer.config_hash == load_settings(workspace.root / "tether.yaml").config_hash
    source = (workspace.root / "docs" / "break.txt").read_text(encoding="utf-8")
    for c in answer.citations:
        assert source[c.start : c.end] == c.quote


def test_stats_json_counts_documents_and_chunks(workspace: Workspace) -> None:
    result = tether(["stats", "--json"], workspace.root)
    assert result.code == 0, result.err
    stats = StoreStats.model_validate(json.loads(result.out))
    assert stats.documents == 4
    assert stats.chunks >= 4


# -- run without a terminal: plain one-line output, input checked (issue 14, items 6-10) ----------------


def test_help_shows_plain_type_words_and_whole_sentences(helps: dict[str, Result]) -> None:
    for name, result in helps.items():
        assert result.code == 0, result.err
        for raw in ("<bool>", "<list[", "<str>", "<int>", "<path>", "{paths}", "{query}", "{question}"):
            assert raw not in result.out, (name, raw)
    # a docstring paragraph is re-wrapped to the width, not broken where the source line ended
    assert "deleted files removed. Files that cannot be read" in helps["ingest"].out
    assert "PATHS..." in helps["ingest"].out and "-k, --k INTEGER" in helps["search"].out


def test_a_long_error_stays_one_line_when_piped(tmp_path: Path) -> None:
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "tether.yaml"
    line = assert_clean_error(tether(["stats", "--config", str(deep)], tmp_path))  # COLUMNS is 200 here
    assert str(deep) in line
    narrow = {**ENV, "COLUMNS": "40"}
    proc = subprocess.run(
        [*TETHER, "stats", "--config", str(deep)], cwd=tmp_path, env=narrow, capture_output=True, text=True
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.parametrize(
    "args",
    [["search", "-k", "0", "break"], ["search", "-k", "-3", "break"]],
    ids=["k=0", "k=-3"],
)
def test_search_with_k_below_1_is_a_usage_error(workspace: Workspace, args: list[str]) -> None:
    result = tether(args, workspace.root)
    assert result.code == 2 and "Traceback" not in result.err
    assert "--k" in result.err and result.out == ""


@pytest.mark.parametrize("args", [["ask", ""], ["ask", "   "], ["search", ""], ["search", " \t"]])
def test_an_empty_question_or_query_is_an_error_not_an_answer(workspace: Workspace, args: list[str]) -> None:
    line = assert_clean_error(tether(args, workspace.root))
    assert "empty" in line


def test_an_unknown_config_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "tether.yaml").write_text("version: 2\n", encoding="utf-8")
    result = tether(["stats"], tmp_path)
    assert result.code == 2 and "Traceback" not in result.err
    assert "version" in result.err and "version 1" in result.err


def test_an_abstention_shows_its_closest_quote(workspace: Workspace) -> None:
    result = tether(["ask", "What is the boiling point of mercury on Mars?"], workspace.root)
    assert result.code == 0, result.err
    data = json.loads(tether(["ask", "What is the boiling point of mercury on Mars?", "--json"], workspace.root).out)
    answer = Answer.model_validate(data)
    assert answer.abstained and answer.nearest is not None
    shown = " ".join(result.out.split())
    assert "closest passage, not an answer" in shown
    assert " ".join(answer.nearest.quote.split())[:60] in shown


def test_search_shows_the_score_its_order_comes_from(workspace: Workspace) -> None:
    hits = TypeAdapter(list[Hit]).validate_python(
        json.loads(tether(["search", "loop statement", "--json", "-k", "5"], workspace.root).out)
    )
    assert len(hits) >= 2 and all(h.rerank_score is not None for h in hits)  # reranking is on by default
    rerank = [h.rerank_score for h in hits]
    assert rerank == sorted(rerank, reverse=True)
    table = tether(["search", "loop statement", "-k", "5"], workspace.root)
    assert table.code == 0, table.err
    assert "rerank" in table.out
    cells = [line.split("│") for line in table.out.splitlines() if line.count("│") >= 4]
    shown = [float(c[2]) for c in cells if c[2].strip() and c[1].strip()]  # a row's first line has its number
    assert shown == [round(float(r or 0), 3) for r in rerank]
