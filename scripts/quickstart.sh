#!/usr/bin/env bash
# Quickstart, command 1: install Tether into .venv and run the main job on the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e . 2>&1 | grep -v -E '^WARNING: Location .* is ignored' || true
exec .venv/bin/tether demo "$@"
