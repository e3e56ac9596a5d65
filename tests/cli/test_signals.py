"""SIGTERM ends a command as Ctrl-C does: one line, exit 143 — also when a cleanup fails on the way out."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


@pytest.mark.parametrize("cleanup", ["ok", "raises", "raises a TetherError"])
def test_sigterm_is_one_line_and_exit_143_whatever_the_cleanup_does(cleanup: str) -> None:
    code = textwrap.dedent(
        f"""
        import os, signal, time
        from tether.cli import _app
        from tether.errors import IngestError

        def command():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
            finally:
                if {cleanup!r} == "raises":
                    raise RuntimeError("cleanup failed on the way out")
                if {cleanup!r} == "raises a TetherError":
                    raise IngestError("the batch could not be rolled back")

        _app.app = command
        _app.main()
        """
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 143, p.stderr
    assert p.stderr.strip().splitlines() == ["terminated (SIGTERM): what was finished is kept"]
