"""`tether mcp`: Tether as a Model Context Protocol server, so agent hosts can search, ask and call typed tools.

One server process acts for one API key: its tenant scopes search and ask inside the store, its role is the
policy's role, and every typed tool call runs as a one-step plan through the orchestrator under the same caller
profile and policy as any other call (permissions, argument limits, rules, approvals, audit). A call that needs a
person's approval is not run: the result says so and names the parked run. Over streamable HTTP every request must
carry the same key (``Authorization: Bearer``); anything else gets 401 before the MCP layer sees it.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.service._auth import Principal
from tether.tools import CallerProfile, Policy, Tool
from tether.tools._plan import Plan, Step

if TYPE_CHECKING:
    from mcp.server import MCPServer
    from starlette.types import ASGIApp, Receive, Scope, Send

    from tether._api import Tether
    from tether.tools._orchestrator import Orchestrator


def _hit(h: Any) -> dict[str, Any]:
    return {"doc_id": h.doc_id, "path": h.path, "title": h.title, "start": h.start, "end": h.end, "text": h.text}


def build_mcp(
    tether: Tether,
    who: Principal,
    *,
    tools: list[Tool] | None = None,
    profile: CallerProfile | None = None,
    policy: Policy | None = None,
    runs_path: Path | None = None,
) -> MCPServer:
    """The MCP server over ``tether`` acting as ``who``; ``tools`` are offered under ``profile`` (default: the
    key's name and role with read-only scopes) and ``policy`` (default: ``policy.path``)."""
    from mcp.server import MCPServer

    server = MCPServer(
        name="tether",
        instructions="Grounded answers over this organization's documents. `ask` answers only with exact quotes "
        "of the documents it cites, or says 'Not in the documents.'; `search` returns passages.",
        version="0.1.0",
    )

    @server.tool(description="The top passages of the documents for a query (no answer).")
    def search(query: str, k: int = 5) -> list[dict[str, Any]]:
        return [_hit(h) for h in tether.search(query, max(1, min(int(k), 50)), tenant=who.tenant)]

    @server.tool(description="Answer from the documents with cited exact quotes, or 'Not in the documents.'.")
    def ask(question: str) -> dict[str, Any]:
        a = tether.ask(question, tenant=who.tenant, role=who.role, user=who.user)
        cited = {"n", "path", "start", "end", "quote"}
        return {
            "answer": a.text,
            "abstained": a.abstained,
            "support": a.support,
            "citations": [c.model_dump(mode="json", include=cited) for c in a.citations],
            "trace_id": a.trace_id,
        }

    if tools:

        def orchestrator() -> Orchestrator:  # one a call: tool calls run on worker threads, a run store on one
            return _orchestrator(tether, who, tools, profile, policy, runs_path)

        for t in tools:
            server.add_tool(_tool_call(orchestrator, t), name=t.name, description=t.description)
    return server


def _orchestrator(
    tether: Tether,
    who: Principal,
    tools: list[Tool],
    profile: CallerProfile | None,
    policy: Policy | None,
    runs_path: Path | None,
) -> Orchestrator:
    from tether.config import resolve_path
    from tether.guard import open_audit_log
    from tether.tools._orchestrator import Orchestrator

    s = tether.settings
    if policy is None and s.policy.path:
        policy = Policy.load(resolve_path(s.policy.path, s.root))
    return Orchestrator(
        tools,
        runs_path or resolve_path(".tether/mcp_runs.db", s.root),
        profile=profile or CallerProfile(name=f"mcp:{who.key_id}", role=who.role),
        policy=policy,
        audit=open_audit_log(s),
        config_hash=s.config_hash,
    )


def _tool_call(orchestrator: Callable[[], Orchestrator], t: Tool) -> Any:
    """A function with ``t``'s parameters (its schema for MCP) that runs the call through the orchestrator."""
    sig = inspect.signature(t.fn)
    params = [p for name, p in sig.parameters.items() if name != "idempotency_key"]

    def call(**kwargs: Any) -> str:
        goal = f"mcp call {t.name} " + json.dumps(kwargs, sort_keys=True, default=str)  # the request names each value
        orch = orchestrator()
        try:
            rec = orch.run(Plan(goal=goal, steps=[Step(n=1, tool=t.name, args=kwargs)]))
        finally:
            orch.close()
            close = getattr(orch.audit, "close", None)
            if callable(close):
                close()
        step = rec.steps[0]
        if step.status == "done":
            return json.dumps(step.result, default=str)
        why = step.detail or rec.stopped_reason or step.status
        return f"not run ({step.status}): {why} [run {rec.run_id}]"

    call.__signature__ = sig.replace(parameters=params, return_annotation=str)  # type: ignore[attr-defined]
    call.__annotations__ = {p.name: p.annotation for p in params} | {"return": str}
    call.__name__ = t.name
    call.__doc__ = t.description
    return call


class RequireKey:
    """ASGI middleware: every HTTP request must present the server's own key (401 otherwise)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        import hmac

        if scope["type"] == "http":
            got = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(got, self.expected):
                body = b'{"error": {"code": "unauthenticated", "message": "this MCP server needs its API key"}}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
