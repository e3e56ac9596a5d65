"""llm.gguf errors name what is wrong, without needing llama.cpp."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tether.config import LLMSettings
from tether.errors import ModelError
from tether.models import generator_from_settings


def test_a_missing_gguf_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TETHER_LLM_URL", raising=False)
    with pytest.raises(ModelError, match=r"llm.gguf: .*missing.gguf does not exist"):
        generator_from_settings(LLMSettings(gguf="missing.gguf"), tmp_path)


def test_an_interpreter_without_llama_cpp_gets_the_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TETHER_LLM_URL", raising=False)
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    hint = r"cannot run llama.cpp's server: `bash scripts/llama_env.sh`.*tether\[llama\]"
    with pytest.raises(ModelError, match=hint):
        generator_from_settings(LLMSettings(gguf="m.gguf", llama_python=sys.executable), tmp_path)


def test_a_url_wins_over_a_gguf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TETHER_LLM_URL", raising=False)
    gen = generator_from_settings(LLMSettings(url="http://127.0.0.1:9/v1", gguf="missing.gguf"), tmp_path)
    assert gen is not None and gen.base_url == "http://127.0.0.1:9/v1"
