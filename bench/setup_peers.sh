#!/usr/bin/env bash
# Make .venv-bench: Tether (editable) plus the peer systems of bench/peers.py.
# The peers never go into Tether's own dependencies (pyproject.toml).
#
#   bash bench/setup_peers.sh                 # then: .venv-bench/bin/python bench/peers.py
#
# Environment knobs:
#   PYTHON           interpreter for the venv (default: python3)
#   TORCH_SPEC       the torch requirement (default: torch); txtai needs torch, the benchmark never runs it
#   TORCH_INDEX_URL  where the CPU build of torch is fetched first (default: PyTorch's CPU index); if that
#                    index cannot be reached, TORCH_SPEC is installed from the ordinary index instead
#                    (on a machine without that index but with a local CPU wheel, name it, e.g.
#                    TORCH_SPEC='torch==2.13.0+cpu', or pip picks the far larger CUDA build)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch}
TORCH_INDEX_URL=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}
VENV=.venv-bench

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install --upgrade pip
if ! "${PIP[@]}" install --timeout 30 --retries 1 --index-url "$TORCH_INDEX_URL" "$TORCH_SPEC"; then
    echo "setup_peers: $TORCH_INDEX_URL not reachable; installing $TORCH_SPEC from the default index" >&2
    "${PIP[@]}" install "$TORCH_SPEC"
fi
"${PIP[@]}" install -e . -r bench/requirements-peers.txt
"$VENV/bin/python" - <<'PY'
from importlib.metadata import version
for p in ("tether", "bm25s", "rank-bm25", "llama-index-core", "llama-index-retrievers-bm25", "haystack-ai", "txtai",
          "faiss-cpu", "torch"):
    print(f"{p:30s} {version(p)}")
PY
