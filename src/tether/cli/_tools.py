"""`tether tools ...`: typed tools under policy (the plan/execute demo)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from tether.cli._common import JsonOpt, _emit_json, out, tools_app

_DEMO_POLICY = """\
# Policy for the expense demo: evaluated before every tool call; the first matching rule decides.
version: 1
default: allow
rules:
  - id: big-expenses-need-approval
    description: expenses over 500 EUR need a manager's approval
    tool: record_expense
    when: {args: {amount: {gt: 500}}}
    action: require_approval
"""


@tools_app.command("demo")
def tools_demo(
    folder: Annotated[Path, typer.Option("--dir", help="where the ledger, run state, policy and audit log go")] = Path(
        ".tether/tools-demo"
    ),
    yes: Annotated[bool, typer.Option("--yes", help="approve every approval request without asking")] = False,
    no: Annotated[bool, typer.Option("--no", help="deny every approval request without asking")] = False,
    as_json: JsonOpt = False,
) -> None:
    """An expense-approval flow on a real SQLite ledger.

    A clerk's plan: check the budget, record a taxi (its first acknowledgement is lost, so it is retried
    with the same idempotency key and written once), record a 900 EUR hotel (policy: needs approval, with a
    preview), then pay out (refused: the clerk may not move money). Ends with `tether audit verify`."""
    from tether.guard import AuditLog
    from tether.tools import CallerProfile, Policy
    from tether.tools._ledger_demo import ledger_rows, ledger_tools
    from tether.tools._orchestrator import Orchestrator, Plan, Step

    folder.mkdir(parents=True, exist_ok=True)
    policy_path = folder / "policy.yaml"
    if not policy_path.exists():
        policy_path.write_text(_DEMO_POLICY, encoding="utf-8")
    policy = Policy.load(policy_path)
    audit = AuditLog.open(folder / "audit.db")

    def approver(step: Any, tool: Any, preview: Any, reason: str) -> bool:
        if yes or no:
            return yes
        if as_json or not sys.stdin.isatty():
            return False
        out.print(f"[bold]approval needed[/] for step {step.n} {tool.name}: {escape(reason)}")
        if preview is not None:
            out.print(f"  preview: {escape(str(preview))}")
        return typer.confirm("  approve?", default=False)

    profile = CallerProfile(name="ana", role="clerk", scopes={"read", "write"})
    orch = Orchestrator(
        ledger_tools(folder / "ledger.db", lose_first_ack=True),
        folder / "runs.db",
        profile=profile,
        policy=policy,
        approver=approver,
        audit=audit,
        config_hash=policy.hash,
        backoff_s=0.05,
    )
    plan = Plan(
        goal="file E-17's trip expenses and pay them out",
        steps=[
            Step(n=1, tool="budget_left", args={"employee": "E-17"}),
            Step(n=2, tool="record_expense", args={"employee": "E-17", "amount": 120, "note": "taxi"}),
            Step(n=3, tool="record_expense", args={"employee": "E-17", "amount": 900, "note": "conference hotel"}),
            Step(n=4, tool="pay_out", args={"entry_id": 1, "iban": "DE89370400440532013000"}),
        ],
    )
    rec = orch.run(plan)
    orch.close()
    report = audit.verify()
    rows = ledger_rows(folder / "ledger.db")
    if as_json:
        _emit_json({"run": rec.model_dump(mode="json"), "ledger": rows, "audit": report.model_dump(mode="json")})
        return
    out.print(
        f"[bold]run {rec.run_id}[/]: {escape(rec.goal)} (caller {rec.caller}, policy v{policy.version} {policy.hash})"
    )
    for st in rec.steps:
        colour = {"done": "green", "pending": "dim"}.get(st.status, "red")
        out.print(f"  {st.n}. {st.tool} {json.dumps(st.args)} -> [{colour}]{st.status}[/] {escape(st.detail)}")
        if st.result is not None:
            out.print(f"     result: {escape(json.dumps(st.result))}")
    out.print(f"stopped: {escape(rec.stopped_reason)}" if rec.status == "stopped" else f"status: {rec.status}")
    out.print(f"ledger ({folder / 'ledger.db'}): {rows}")
    out.print(
        f"audit: {report.entries} entries, "
        + ("[green]chain verified[/]" if report.ok else f"[red]{report.problem}[/]")
    )
