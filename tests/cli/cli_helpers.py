"""Running `python -m tether` as a real process without a terminal, for the CLI tests of this folder."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

TETHER = [sys.executable, "-m", "tether"]
# one BLAS thread: these processes are short, and thread start-up costs more than it saves
ENV = {
    **os.environ,
    "COLUMNS": "200",
    "NO_COLOR": "1",
    "TERM": "dumb",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
}


@dataclass
class Result:
    code: int
    out: str
    err: str


def start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*TETHER, *args], cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> Result:
    """Wait for ``proc``; one that does not finish in ``timeout`` seconds is killed and fails the test."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"{' '.join(map(str, proc.args))} did not finish in {timeout}s")  # type: ignore[arg-type]
    return Result(proc.returncode, out, err)


def tether(args: list[str], cwd: Path, timeout: float = 120) -> Result:
    return finish(start(args, cwd), timeout)
