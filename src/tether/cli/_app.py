"""The `tether` command line: thin typer commands over the library, one module per command group."""

from __future__ import annotations

import logging
import signal
import sys
from typing import NoReturn

from rich.markup import escape

from tether.cli import (  # noqa: F401  (each registers its commands)
    _audit,
    _calibrate,
    _config,
    _eval,
    _index,
    _keys,
    _monitor,
    _query,
    _redteam,
    _route,
    _serve,
    _store,
    _tools,
    _trace,
)
from tether.cli._common import app, err
from tether.errors import TetherError

__all__ = ["app", "main"]

_ORDER = ["init", "ingest", "search", "ask", "stats", "calibrate", "demo"]  # as a newcomer meets them in --help
app.registered_commands.sort(
    key=lambda c: _ORDER.index(n) if (n := c.name or getattr(c.callback, "__name__", "")) in _ORDER else len(_ORDER)
)


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so that it unwinds as Ctrl-C does: open transactions roll back,
    what was committed stays, worker processes are ended. (A BaseException, so that no ``except Exception``
    swallows it, and not a KeyboardInterrupt, which typer turns into a silent exit 130.)"""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated


def _during_termination(e: BaseException) -> bool:
    """Whether ``e`` was raised while a SIGTERM unwound the command (a cleanup that failed on the way out)."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, _Terminated):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def _terminated() -> NoReturn:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM does not interrupt the exit
    err.print("terminated (SIGTERM): what was finished is kept")
    sys.exit(143)


def main() -> None:
    """Entry point: user errors print one clear line and exit 2, never a traceback."""
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # damaged PDFs are reported as skipped files
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        app()  # standalone mode: usage errors print help and exit 2
    except _Terminated:
        _terminated()
    except Exception as e:
        if _during_termination(e):  # the termination is what happened; a cleanup's error on the way is not
            _terminated()
        if isinstance(e, TetherError):
            err.print(f"[bold red]error:[/] {escape(str(e))}")
            sys.exit(2)
        raise
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
