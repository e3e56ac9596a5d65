"""`tether trace list` and `tether trace show`, run as real processes over a store seeded through the tracing API."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_helpers import Result, finish, start, tether

from tether.trace import Tracing

PROMPT = "SYSTEM: answer only from the sources.\nSOURCE [1]: Tomatoes need six hours of sun.\nQUESTION: sun?"


@dataclass
class Seeded:
    root: Path
    answered: str
    abstained: str
    failed: str
    hostile: str


def assert_clean_error(result: Result) -> str:
    assert result.code == 2, result
    assert "Traceback" not in result.err + result.out
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error:")
    return lines[0]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    root = tmp_path_factory.mktemp("traces")
    (root / "tether.yaml").write_text("tracing:\n  path: state/traces.db\n", encoding="utf-8")
    tracing = Tracing(store_path=root / "state" / "traces.db")
    with tracing.request("ask", {"question": "How much sun do tomatoes need?", "config_hash": "abc"}) as t:
        with t.stage("retrieve") as s:
            s.set("hits", [{"chunk_id": 3, "score": 0.91, "path": "docs/garden.md"}])
        with t.stage("answer") as s:
            s.set("prompt", PROMPT)
            s.set("support", 0.87)
        t.set("abstained", False)
    answered = t.trace_id
    with tracing.request("ask", {"question": "Who won the 1998 cup?", "config_hash": "abc"}) as t:
        with t.stage("answer") as s:
            s.set("abstention_reason", "no evidence above the threshold")
        t.set("abstained", True)
    abstained = t.trace_id
    try:
        with tracing.request("ask", {"question": "boom"}) as t, t.stage("llm"):
            raise ConnectionError("model server refused the connection")
    except ConnectionError:
        pass
    failed = t.trace_id
    with tracing.request("search", {"question": "evil \x1b[31mred\x1b[0m \u202etxt.exe"}) as t, t.stage("x") as s:
        s.set("note", "\x1b]0;pwned\x07")
    hostile = t.trace_id
    tracing.close()
    return Seeded(root, answered, abstained, failed, hostile)


@pytest.fixture(scope="module")
def runs(seeded: Seeded) -> dict[str, Result]:
    """Every command of this file, run concurrently."""
    commands = {
        "list": ["trace", "list"],
        "list_json": ["trace", "list", "--json"],
        "abstained": ["trace", "list", "--abstained", "--json"],
        "limit": ["trace", "list", "--limit", "1", "--json"],
        "since_future": ["trace", "list", "--since", "2999-01-01", "--json"],
        "since_hour": ["trace", "list", "--since", "1h", "--json"],
        "since_bad": ["trace", "list", "--since", "last tuesday"],
        "show": ["trace", "show", seeded.answered[:10]],
        "show_json": ["trace", "show", seeded.answered, "--json"],
        "show_failed": ["trace", "show", seeded.failed[:12]],
        "show_hostile": ["trace", "show", seeded.hostile[:12]],
        "unknown": ["trace", "show", "0123456789abcdef0123456789abcdef"],
        "not_hex": ["trace", "show", "zzz"],
        "help": ["--help"],
    }
    procs = {name: start(args, seeded.root) for name, args in commands.items()}
    return {name: finish(p) for name, p in procs.items()}


def test_list_shows_requests_newest_first(runs: dict[str, Result], seeded: Seeded) -> None:
    r = runs["list"]
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split()[:3] == ["id", "time", "(UTC)"]
    assert [line[:16] for line in lines[1:5]] == [
        seeded.hostile[:16],
        seeded.failed[:16],
        seeded.abstained[:16],
        seeded.answered[:16],
    ]
    answered = next(line for line in lines if line.startswith(seeded.answered[:16]))
    assert "How much sun do tomatoes need?" in answered and " no " in answered and "tether.ask" in answered
    abstained = next(line for line in lines if line.startswith(seeded.abstained[:16]))
    assert " yes " in abstained
    assert "(error)" in next(line for line in lines if line.startswith(seeded.failed[:16]))
    assert "4 traces in" in lines[-1]


def test_list_json_and_its_filters(runs: dict[str, Result], seeded: Seeded) -> None:
    full = json.loads(runs["list_json"].out)
    assert {t["trace_id"] for t in full["traces"]} == {seeded.answered, seeded.abstained, seeded.failed, seeded.hostile}
    row = next(t for t in full["traces"] if t["trace_id"] == seeded.answered)
    assert row["question"] == "How much sun do tomatoes need?" and row["abstained"] is False
    assert row["config_hash"] == "abc" and row["ms"] >= 0 and row["started"].endswith("Z")
    assert [t["trace_id"] for t in json.loads(runs["abstained"].out)["traces"]] == [seeded.abstained]
    assert len(json.loads(runs["limit"].out)["traces"]) == 1
    assert json.loads(runs["since_future"].out)["traces"] == []
    assert len(json.loads(runs["since_hour"].out)["traces"]) == 4


def test_a_bad_since_is_one_line(runs: dict[str, Result]) -> None:
    assert "--since 'last tuesday'" in assert_clean_error(runs["since_bad"])


def test_show_prints_every_stage_with_its_attributes(runs: dict[str, Result], seeded: Seeded) -> None:
    r = runs["show"]
    assert r.code == 0, r.err
    out = r.out
    assert f"trace {seeded.answered}" in out
    assert "question: How much sun do tomatoes need?" in out
    assert "abstained: false" in out
    assert out.index("stage.retrieve") < out.index("stage.answer")
    assert '"chunk_id": 3' in out  # the evidence, pretty-printed JSON
    assert "SOURCE [1]: Tomatoes need six hours of sun." in out  # the prompt, line by line
    prompt_lines = [line.strip() for line in out.splitlines()]
    assert "QUESTION: sun?" in prompt_lines
    assert "support: 0.87" in out
    assert " ms  ok" in out


def test_show_json_is_the_whole_trace(runs: dict[str, Result], seeded: Seeded) -> None:
    detail = json.loads(runs["show_json"].out)
    assert detail["trace_id"] == seeded.answered and detail["complete"] is True
    assert [s["name"] for s in detail["spans"]] == ["tether.ask", "stage.retrieve", "stage.answer"]
    answer = detail["spans"][2]
    assert answer["attributes"]["prompt"] == PROMPT  # exactly what was sent


def test_show_names_the_error_of_a_failed_stage(runs: dict[str, Result]) -> None:
    out = runs["show_failed"].out
    assert "stage.llm" in out and "ERROR: ConnectionError: model server refused the connection" in out


def test_terminal_escapes_in_traces_are_shown_not_obeyed(runs: dict[str, Result]) -> None:
    for name in ("show_hostile", "list"):
        out = runs[name].out
        assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out
    assert "\\u001b[31mred" in runs["show_hostile"].out


def test_an_unknown_or_malformed_id_is_exit_2_in_one_line(runs: dict[str, Result]) -> None:
    assert "no trace 0123456789abcdef0123456789abcdef" in assert_clean_error(runs["unknown"])
    assert "not a trace id" in assert_clean_error(runs["not_hex"])


def test_trace_is_a_command_group_in_help(runs: dict[str, Result]) -> None:
    assert "trace" in runs["help"].out


def test_a_missing_store_is_a_one_line_hint(tmp_path: Path) -> None:
    line = assert_clean_error(tether(["trace", "list"], tmp_path))
    assert "no trace store at" in line and "tracing.enabled" in line
