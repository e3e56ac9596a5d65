"""`tether config history | diff | show` as real processes without a terminal: what a user sees, the JSON a
script reads, and one-line errors (exit 2) for names that are unknown, ambiguous or not hashes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cli_helpers import tether

from tether.config import DEFAULT_CONFIG_NAME, ConfigHistory, Settings, default_yaml, load_settings

EDITED = (
    default_yaml()
    .replace("alpha: 0.5", "alpha: 0.6")
    .replace("Never use outside knowledge.", "Never guess.\\u001b[2J")  # an escape sequence in the prompt
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A folder whose tether.yaml was used, then edited and used again: (folder, old hash, new hash)."""
    root = tmp_path_factory.mktemp("project")
    path = root / DEFAULT_CONFIG_NAME
    hashes = []
    for text in (default_yaml(), EDITED):
        path.write_text(text, encoding="utf-8")
        settings = load_settings(path)
        history = ConfigHistory.for_settings(settings)
        history.record(settings)
        history.record(settings)
        history.close()
        hashes.append(settings.config_hash)
        time.sleep(0.002)
    return root, hashes[0], hashes[1]


def test_history_lists_configs_newest_first_with_what_each_changed(project: tuple[Path, str, str]) -> None:
    root, old, new = project
    r = tether(["config", "history"], root)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[1].startswith(new + "*") and "answer.system_prompt, retrieval.alpha" in lines[1]
    assert lines[2].startswith(old + " ") and "(first recorded)" in lines[2]
    assert " 2  " in lines[1]  # uses

    j = tether(["config", "history", "--json"], root)
    rows = json.loads(j.out)
    assert [(x["config_hash"], x["uses"], x["current"]) for x in rows] == [(new, 2, True), (old, 2, False)]
    assert rows[0]["changed"] == ["answer.system_prompt", "retrieval.alpha"] and rows[1]["changed"] is None


def test_diff_shows_changed_values_and_the_prompt_sentence_without_obeying_escapes(
    project: tuple[Path, str, str],
) -> None:
    root, old, new = project
    r = tether(["config", "diff", old[:6], new[:6]], root)
    assert r.code == 0, r.err
    assert "retrieval.alpha: 0.5 -> 0.6" in r.out
    assert "    -Never use outside knowledge." in r.out
    assert "    +Never guess.\\u001b[2J" in r.out and "\x1b" not in r.out

    j = json.loads(tether(["config", "diff", old, "current", "--json"], root).out)
    assert (j["a"], j["b"]) == (old, new)
    assert [c["key"] for c in j["changes"]] == ["answer.system_prompt", "retrieval.alpha"]
    assert j["changes"][0]["after"].endswith("Never guess.\x1b[2J") and j["changes"][0]["text_diff"]


def test_show_prints_a_yaml_that_reproduces_the_config(project: tuple[Path, str, str], tmp_path: Path) -> None:
    root, old, _ = project
    r = tether(["config", "show", old[:8]], root)
    assert r.code == 0, r.err
    assert r.out.startswith(f"# config {old}: first seen ")
    (tmp_path / DEFAULT_CONFIG_NAME).write_text(r.out, encoding="utf-8")
    assert load_settings(tmp_path / DEFAULT_CONFIG_NAME).config_hash == old

    j = json.loads(tether(["config", "show", old, "--json"], root).out)
    assert j["config_hash"] == old and Settings.model_validate(j["settings"]).config_hash == old


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["config", "show", "0123456789abcdef"], "no config 0123456789abcdef in "),
        (["config", "diff", "%", "current"], "'%' is not a config hash"),
        (["config", "show", "../../etc"], "is not a config hash"),
    ],
)
def test_a_bad_name_is_one_line_and_exit_2(project: tuple[Path, str, str], args: list[str], expected: str) -> None:
    r = tether(args, project[0])
    assert r.code == 2
    assert expected in r.err and len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err


def test_an_ambiguous_prefix_is_one_line_and_exit_2(tmp_path: Path) -> None:
    seen: dict[str, Settings] = {}
    for k in range(1, 60):
        s = Settings.model_validate({"retrieval": {"top_k": k}}).with_root(tmp_path)
        if s.config_hash[0] in seen:
            break
        seen[s.config_hash[0]] = s
    history = ConfigHistory.for_settings(s)
    history.record(s)
    history.record(seen[s.config_hash[0]])
    history.close()
    r = tether(["config", "diff", s.config_hash[0], "current"], tmp_path)
    assert r.code == 2 and "ambiguous" in r.err and len(r.err.strip().splitlines()) == 1


def test_an_empty_history_says_so_and_creates_nothing(tmp_path: Path) -> None:
    r = tether(["config", "history"], tmp_path)
    assert r.code == 0 and "no configs recorded yet" in r.out
    assert tether(["config", "history", "--json"], tmp_path).out.strip() == "[]"
    assert not (tmp_path / ".tether").exists()
