"""`tether audit ...`: the tamper-evident audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from tether.cli._common import JsonOpt, _emit_json, audit_app, out


@audit_app.command("verify")
def audit_verify(
    path: Annotated[Path, typer.Argument(help="the audit log file")] = Path(".tether/tools-demo/audit.db"),
    as_json: JsonOpt = False,
) -> None:
    """Check the hash chain: names the first edited, deleted or reordered entry. Exit 1 if broken."""
    from tether.guard import verify_file

    report = verify_file(path)
    if as_json:
        _emit_json(report)
    elif report.ok:
        out.print(f"[green]ok[/]: {report.entries} entries, chain intact (head {report.head_hash[:16]}…)")
    else:
        out.print(f"[red]tampered[/]: {escape(str(report.problem))}")
    if not report.ok:
        raise typer.Exit(1)
