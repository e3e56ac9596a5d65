"""What every command module shares: the typer apps, the consoles, common options and output helpers."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from typer.core import TyperGroup

from tether.cli import _help
from tether.config import DEFAULT_CONFIG_NAME
from tether.contracts import SearchFilters

_help.install()

app = typer.Typer(
    name="tether",
    help="Grounded answers over your own documents: ingest, search, ask with cited spans, or hear "
    "'not in the documents'. Offline by default.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class _DefaultToRun(TyperGroup):
    """`tether eval PATH` means `tether eval run PATH`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


eval_app = typer.Typer(
    cls=_DefaultToRun,
    help="Evaluate: YAML cases, reports, a regression gate, BEIR figures.\n\n`tether eval PATH` runs YAML cases "
    "(table, --json, HTML report, regression gate); `compare`, `runs`, `retrieval` (BEIR), `from-feedback`.",
    no_args_is_help=True,
)
app.add_typer(eval_app, name="eval")
tools_app = typer.Typer(help="Typed tools under policy: the plan/execute demo.", no_args_is_help=True)
app.add_typer(tools_app, name="tools")
audit_app = typer.Typer(help="The tamper-evident audit log: verify it, show it.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
trace_app = typer.Typer(help="Request traces: list them, show every stage of one.", no_args_is_help=True)
app.add_typer(trace_app, name="trace")
config_app = typer.Typer(help="Versioned configs: history, diff, show settings.", no_args_is_help=True)
app.add_typer(config_app, name="config")
monitor_app = typer.Typer(help="Drift of questions and outcome rates over time, from the traces.", no_args_is_help=True)
app.add_typer(monitor_app, name="monitor")
redteam_app = typer.Typer(
    help="Attack suites (injection, jailbreak, prompt extraction, PII leak, policy bypass) against your config.",
    no_args_is_help=True,
)
app.add_typer(redteam_app, name="redteam")
keys_app = typer.Typer(help="API keys for the service: create (shown once), list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
route_app = typer.Typer(
    help="The router: learn where requests start in routing.cascade from eval runs; explain one decision.",
    no_args_is_help=True,
)
app.add_typer(route_app, name="route")
store_app = typer.Typer(
    help="The index store: export it to a portable dump, import a dump (move between SQLite and Milvus).",
    no_args_is_help=True,
)
app.add_typer(store_app, name="store")

# Not on a terminal (piped, captured, CI) lines are not wrapped at 80 columns: one message stays one line.
out = Console(soft_wrap=not sys.stdout.isatty())
err = Console(stderr=True, soft_wrap=not sys.stderr.isatty())

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help=f"tether.yaml to use (default: ./{DEFAULT_CONFIG_NAME} if present)"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON on stdout")]


def _progress(label: str, *, disable: bool, detail: bool = False) -> Progress:
    """A transient progress bar on stderr (hidden for --json and when stderr is not a terminal)."""
    columns = [TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    if detail:
        columns.append(TextColumn("{task.description}"))
    return Progress(*columns, console=err, disable=disable, transient=True)


def _emit_json(obj: Any) -> None:
    text = obj.model_dump_json(indent=2) if isinstance(obj, BaseModel) else json.dumps(obj, indent=2, default=str)
    sys.stdout.write(text + "\n")


def _filters(path_glob: str | None, tags: list[str] | None, after: datetime | None) -> SearchFilters | None:
    if not path_glob and not tags and after is None:
        return None
    return SearchFilters(path_glob=path_glob, tags=tags or [], modified_after=after)


def _rel(path: str) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path
