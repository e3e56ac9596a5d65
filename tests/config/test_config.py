"""tether.yaml: defaults, the template `tether init` writes, and errors that name the key and say what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tether.config import DEFAULT_CONFIG_NAME, Settings, default_yaml, load_settings
from tether.errors import ConfigError


def write_config(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / DEFAULT_CONFIG_NAME
    path.write_text(text, encoding="utf-8")
    return path


def load_error(folder: Path, text: str) -> str:
    path = write_config(folder, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return str(info.value)


def test_defaults_load_when_there_is_no_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.model_dump() == Settings().model_dump()
    assert settings.index_path == tmp_path / ".tether" / "index.db"


def test_default_yaml_round_trips_to_the_defaults(tmp_path: Path) -> None:
    path = write_config(tmp_path, default_yaml())
    assert load_settings(path).model_dump() == Settings().model_dump()


def test_default_yaml_has_the_same_hash_as_the_defaults(tmp_path: Path) -> None:
    path = write_config(tmp_path, default_yaml())
    assert load_settings(path).config_hash == Settings().config_hash


def test_an_empty_file_means_the_defaults(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    assert load_settings(path).model_dump() == Settings().model_dump()


def test_a_folder_path_loads_the_tether_yaml_inside_it(tmp_path: Path) -> None:
    write_config(tmp_path, "retrieval:\n  top_k: 7\n")
    assert load_settings(tmp_path).retrieval.top_k == 7


def test_unknown_nested_key_error_names_the_dotted_key(tmp_path: Path) -> None:
    message = load_error(tmp_path, "retrieval:\n  fusoin: rrf\n")
    assert "retrieval.fusoin" in message
    assert "unknown key" in message


def test_unknown_top_level_key_error_names_the_key(tmp_path: Path) -> None:
    message = load_error(tmp_path, "retreival:\n  top_k: 3\n")
    assert "retreival" in message
    assert "unknown key" in message


def test_wrong_type_error_names_the_key_and_the_problem(tmp_path: Path) -> None:
    message = load_error(tmp_path, "retrieval:\n  top_k: many\n")
    assert "retrieval.top_k" in message
    assert "integer" in message


def test_out_of_range_value_error_names_the_key_and_the_bound(tmp_path: Path) -> None:
    message = load_error(tmp_path, "ingest:\n  chunk:\n    max_tokens: 4\n")
    assert "ingest.chunk.max_tokens" in message
    assert "16" in message


def test_invalid_choice_error_names_the_key_and_the_allowed_values(tmp_path: Path) -> None:
    message = load_error(tmp_path, "retrieval:\n  fusion: average\n")
    assert "retrieval.fusion" in message
    assert "rrf" in message and "convex" in message


def test_invalid_yaml_error_names_line_and_column(tmp_path: Path) -> None:
    message = load_error(tmp_path, "index:\n  path: a.db\nretrieval: [top_k: 3\n")
    assert "not valid YAML" in message
    assert "line 3" in message or "line 4" in message
    assert "column" in message


def test_invalid_yaml_error_points_at_the_offending_line(tmp_path: Path) -> None:
    message = load_error(tmp_path, "index:\n  path: a.db\n bad_indent: 1\n")
    assert "line 3, column 2" in message


def test_a_non_mapping_top_level_is_refused(tmp_path: Path) -> None:
    message = load_error(tmp_path, "- index\n- ingest\n")
    assert "must be a mapping" in message
    assert "list" in message


def test_a_scalar_top_level_is_refused(tmp_path: Path) -> None:
    message = load_error(tmp_path, "just a string\n")
    assert "must be a mapping" in message


def test_missing_file_message_says_to_run_tether_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tether init"):
        load_settings(tmp_path / "nope" / DEFAULT_CONFIG_NAME)


def test_non_utf8_config_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / DEFAULT_CONFIG_NAME
    path.write_bytes(b"index:\n  path: \xff\xfe.db\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(path)


def test_index_path_resolves_relative_to_the_config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    path = write_config(project, "index:\n  path: data/my.db\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load_settings(path)
    assert settings.index_path == project.resolve() / "data" / "my.db"
    assert settings.root == project.resolve()


def test_absolute_index_path_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "abs" / "index.db"
    path = write_config(tmp_path / "cfg", f"index:\n  path: {target}\n")
    assert load_settings(path).index_path == target


def test_config_hash_is_stable_for_the_same_settings(tmp_path: Path) -> None:
    a = write_config(tmp_path / "a", "retrieval:\n  top_k: 4\n")
    b = write_config(tmp_path / "b", "# a comment\nretrieval:\n    top_k: 4   # same value\n")
    assert load_settings(a).config_hash == load_settings(b).config_hash
    assert load_settings(a).config_hash == load_settings(a).config_hash


def test_config_hash_does_not_depend_on_where_the_config_lives(tmp_path: Path) -> None:
    a = write_config(tmp_path / "a", "retrieval:\n  top_k: 4\n")
    b = write_config(tmp_path / "deeper" / "b", "retrieval:\n  top_k: 4\n")
    assert load_settings(a).config_hash == load_settings(b).config_hash


@pytest.mark.parametrize(
    "text",
    [
        "retrieval:\n  top_k: 4\n",
        "retrieval:\n  fusion: rrf\n",
        "answer:\n  threshold: 0.5\n",
        "ingest:\n  dedupe:\n    enabled: false\n",
        "embedding:\n  max_length: 128\n",
    ],
)
def test_config_hash_changes_when_a_setting_changes(tmp_path: Path, text: str) -> None:
    changed = load_settings(write_config(tmp_path, text))
    assert changed.config_hash != Settings().config_hash


def test_config_hash_is_short_hex() -> None:
    h = Settings().config_hash
    assert len(h) == 16
    int(h, 16)


def test_settings_are_immutable() -> None:
    settings = Settings()
    with pytest.raises(ValidationError, match="frozen"):
        settings.retrieval.top_k = 9  # type: ignore[misc]
