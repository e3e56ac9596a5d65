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
roles: [clerk, manager]
approval:
  separation_of_duties: true     # whoever asked for a step cannot approve it
  roles: [manager]
approvers:                       # secrets are in approver-secrets.json beside this file (demo only)
  - {{id: cara, roles: [manager], secret_sha256: {cara}}}
  - {{id: ana, roles: [manager], secret_sha256: {ana}}}
rules:
  - id: big-expenses-need-approval
    description: expenses over 500 EUR need a manager's approval
    tool: record_expense
    when: {{args: {{amount: {{gt: 500}}}}}}
    action: require_approval
"""


def _demo_policy(folder: Path) -> tuple[Path, dict[str, str]]:
    """The demo policy and its approvers' secrets (made once, with fresh random secrets)."""
    import os
    import secrets

    from tether.tools import hash_secret

    policy_path, secrets_path = folder / "policy.yaml", folder / "approver-secrets.json"
    if not policy_path.exists() or not secrets_path.exists():
        keys = {who: secrets.token_urlsafe(24) for who in ("cara", "ana")}
        fd = os.open(secrets_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(keys, f)
        policy_path.write_text(
            _DEMO_POLICY.format(**{who: hash_secret(k) for who, k in keys.items()}), encoding="utf-8"
        )
    return policy_path, json.loads(secrets_path.read_text(encoding="utf-8"))


@tools_app.command("demo")
def tools_demo(
    folder: Annotated[Path, typer.Option("--dir", help="where the ledger, run state, policy and audit log go")] = Path(
        ".tether/tools-demo"
    ),
    yes: Annotated[bool, typer.Option("--yes", help="approve every approval request without asking")] = False,
    no: Annotated[bool, typer.Option("--no", help="deny every approval request without asking")] = False,
    approve_as: Annotated[
        str, typer.Option("--approve-as", help="the approver who answers (cara; ana asked, so she may not)")
    ] = "cara",
    as_json: JsonOpt = False,
) -> None:
    """An expense-approval flow on a real SQLite ledger.

    A clerk's plan: check the budget, record a taxi (its first acknowledgement is lost, so it is retried
    with the same idempotency key and written once), record a 900 EUR hotel (policy: needs approval, with a
    preview, approved by an authenticated manager other than the clerk), then pay out (refused: the clerk may
    not move money). Ends with `tether audit verify`."""
    from tether.errors import TetherError
    from tether.guard import AuditLog
    from tether.tools import CallerProfile, Identity, Policy
    from tether.tools._ledger_demo import ledger_rows, ledger_tools
    from tether.tools._orchestrator import Orchestrator, Plan, Step

    folder.mkdir(parents=True, exist_ok=True)
    policy_path, demo_secrets = _demo_policy(folder)
    policy = Policy.load(policy_path)
    if approve_as not in demo_secrets:
        raise TetherError(f"--approve-as {approve_as!r}: the demo's approvers are {', '.join(demo_secrets)}")
    audit = AuditLog.open(folder / "audit.db")

    def approver(step: Any, tool: Any, preview: Any, reason: str) -> Identity | None:
        if no or not (yes or (not as_json and sys.stdin.isatty())):
            return None
        if not yes:
            out.print(f"[bold]approval needed[/] for step {step.n} {tool.name}: {escape(reason)}")
            if preview is not None:
                out.print(f"  preview: {escape(str(preview))}")
            if not typer.confirm(f"  approve as {approve_as}?", default=False):
                return None
        return policy.approvers.authenticate(approve_as, demo_secrets[approve_as])

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
