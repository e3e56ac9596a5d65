"""Plan / execute with approvals, previews, idempotent retries, and a persisted run state.

A planner proposes numbered steps; the orchestrator runs one step at a time:
permission check -> policy -> (preview) -> (approval) -> apply with an idempotency key -> validate the
result -> next step. It stops on a failed check. Every call, approval and refusal goes to the audit log.
The run state lives in SQLite, so a run killed at any point resumes without repeating finished steps;
a step that was applied but not acknowledged is retried with the same idempotency key, so a tool that
honours the key never repeats its side effect.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from tether.errors import TetherError, TransientError
from tether.tools._permissions import CallerProfile, check_permission
from tether.tools._policy import Policy, PolicyContext
from tether.tools._schema import Tool, ToolValidationError

StepStatus = Literal["pending", "awaiting_approval", "approved", "done", "refused", "denied", "failed"]
RunStatus = Literal["running", "done", "stopped", "awaiting_approval"]
IDEMPOTENCY_PARAM = "idempotency_key"


class Step(BaseModel):
    n: int
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    why: str = ""


class Plan(BaseModel):
    goal: str
    steps: list[Step]


class Planner(Protocol):
    def plan(self, goal: str, tools: list[Tool]) -> Plan: ...


class ScriptedPlanner:
    """A fixed plan (tests, demos, and workflows that need no model)."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps

    def plan(self, goal: str, tools: list[Tool]) -> Plan:
        return Plan(goal=goal, steps=self.steps)


class Approver(Protocol):
    """Decides on a step the policy (or an irreversible effect) puts before a human."""

    def __call__(self, step: Step, tool: Tool, preview: Any, reason: str) -> bool: ...


class StepRecord(BaseModel):
    n: int
    tool: str
    args: dict[str, Any]
    status: StepStatus
    idempotency_key: str
    attempts: int = 0
    result: Any = None
    preview: Any = None
    detail: str = ""


class RunRecord(BaseModel):
    run_id: str
    goal: str
    caller: str
    status: RunStatus
    steps: list[StepRecord]
    stopped_reason: str = ""


class AuditSink(Protocol):
    def append(self, kind: str, actor: str, payload: dict[str, Any], config_hash: str = "") -> Any: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, goal TEXT NOT NULL, caller TEXT NOT NULL, status TEXT NOT NULL,
    stopped_reason TEXT NOT NULL DEFAULT '', created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL REFERENCES runs(run_id), n INTEGER NOT NULL, tool TEXT NOT NULL, args TEXT NOT NULL,
    status TEXT NOT NULL, idempotency_key TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    result TEXT, preview TEXT, detail TEXT NOT NULL DEFAULT '', PRIMARY KEY (run_id, n)
);
"""


def idempotency_key(run_id: str, step: Step) -> str:
    blob = json.dumps([run_id, step.n, step.tool, step.args], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class Orchestrator:
    """Runs plans under a caller profile and a policy, recording everything."""

    def __init__(
        self,
        tools: list[Tool],
        state_path: Path,
        *,
        profile: CallerProfile,
        policy: Policy | None = None,
        approver: Approver | None = None,
        audit: AuditSink | None = None,
        config_hash: str = "",
        retries: int = 2,
        backoff_s: float = 0.2,
        on_event: Callable[[str, StepRecord], None] | None = None,
    ) -> None:
        self.tools = {t.name: t for t in tools}
        self.profile = profile
        self.policy = policy
        self.approver = approver
        self.audit = audit
        self.config_hash = config_hash
        self.retries = retries
        self.backoff_s = backoff_s
        self.on_event = on_event
        state_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(state_path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # -- state -------------------------------------------------------------------
    def start(self, plan: Plan) -> str:
        """Persist a new run and its steps (all pending); returns the run id."""
        unknown = [s.tool for s in plan.steps if s.tool not in self.tools]
        if unknown:
            raise TetherError(f"the plan uses unknown tool(s): {', '.join(unknown)}")
        run_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        self._db.execute("BEGIN IMMEDIATE")
        self._db.execute(
            "INSERT INTO runs(run_id, goal, caller, status, created) VALUES (?,?,?,?,?)",
            (run_id, plan.goal, self.profile.name, "running", datetime.now(UTC).isoformat()),
        )
        for s in plan.steps:
            self._db.execute(
                "INSERT INTO steps(run_id, n, tool, args, status, idempotency_key) VALUES (?,?,?,?,?,?)",
                (run_id, s.n, s.tool, json.dumps(s.args), "pending", idempotency_key(run_id, s)),
            )
        self._db.execute("COMMIT")
        self._audit("plan", {"run_id": run_id, "goal": plan.goal, "steps": [s.model_dump() for s in plan.steps]})
        return run_id

    def load(self, run_id: str) -> RunRecord:
        row = self._db.execute(
            "SELECT run_id, goal, caller, status, stopped_reason FROM runs WHERE run_id=?", (run_id,)
        ).fetchone()
        if row is None:
            raise TetherError(f"no tool run {run_id!r}")
        steps = [
            StepRecord(
                n=r[0],
                tool=r[1],
                args=json.loads(r[2]),
                status=r[3],
                idempotency_key=r[4],
                attempts=r[5],
                result=json.loads(r[6]) if r[6] else None,
                preview=json.loads(r[7]) if r[7] else None,
                detail=r[8],
            )
            for r in self._db.execute(
                "SELECT n, tool, args, status, idempotency_key, attempts, result, preview, detail FROM steps"
                " WHERE run_id=? ORDER BY n",
                (run_id,),
            )
        ]
        return RunRecord(run_id=row[0], goal=row[1], caller=row[2], status=row[3], stopped_reason=row[4], steps=steps)

    def _set_step(self, run_id: str, n: int, **fields: Any) -> None:
        cols = ", ".join(f"{k}=?" for k in fields)
        vals = [json.dumps(v, default=str) if k in ("result", "preview") else v for k, v in fields.items()]
        self._db.execute(f"UPDATE steps SET {cols} WHERE run_id=? AND n=?", [*vals, run_id, n])

    def _set_run(self, run_id: str, status: RunStatus, reason: str = "") -> None:
        self._db.execute("UPDATE runs SET status=?, stopped_reason=? WHERE run_id=?", (status, reason, run_id))

    def _audit(self, kind: str, payload: dict[str, Any]) -> None:
        if self.audit is not None:
            self.audit.append(kind, self.profile.name, payload, self.config_hash)

    # -- execution -----------------------------------------------------------------
    def run(self, plan: Plan) -> RunRecord:
        return self.resume(self.start(plan))

    def resume(self, run_id: str) -> RunRecord:
        """Run every step not yet done, in order; stop at the first refusal, denial or failure."""
        rec = self.load(run_id)
        if rec.status in ("done", "stopped"):
            return rec
        self._set_run(run_id, "running")
        for st in rec.steps:
            if st.status == "done":
                continue
            if st.status == "awaiting_approval":
                self._set_run(run_id, "awaiting_approval", f"step {st.n} ({st.tool}) awaits approval")
                return self.load(run_id)
            if st.status not in ("pending", "approved"):
                break
            outcome = self._execute(run_id, st)
            if outcome == "awaiting_approval":
                self._set_run(run_id, "awaiting_approval", f"step {st.n} ({st.tool}) awaits approval: {st.detail}")
                return self.load(run_id)
            if outcome != "done":
                self._set_run(
                    run_id, "stopped", f"step {st.n} ({st.tool}) {outcome}: {self.load(run_id).steps[st.n - 1].detail}"
                )
                return self.load(run_id)
        self._set_run(run_id, "done")
        return self.load(run_id)

    def _execute(self, run_id: str, st: StepRecord) -> StepStatus:
        tool = self.tools[st.tool]
        step = Step(n=st.n, tool=st.tool, args=st.args)
        perm = check_permission(self.profile, tool)
        if not perm.allowed:
            return self._stop(run_id, st, "refused", perm.reason, "refusal")
        try:
            tool.validate_args(st.args)
        except ToolValidationError as e:
            return self._stop(run_id, st, "failed", str(e), "tool_error", feedback=e.feedback)
        needs_approval = tool.irreversible
        reason = "irreversible effect" if needs_approval else ""
        if self.policy is not None:
            d = self.policy.decide(
                PolicyContext(
                    tool=tool.name,
                    effects=sorted(tool.effects),
                    args=st.args,
                    role=self.profile.role,
                    caller=self.profile.name,
                    classification=tool.classification,
                )
            )
            self._audit("policy", {"run_id": run_id, "step": st.n, "tool": tool.name, **d.model_dump()})
            if d.action == "deny":
                return self._stop(run_id, st, "refused", f"policy: {d.reason}", "refusal", rule=d.rule)
            if d.action == "require_approval":
                needs_approval, reason = True, f"policy: {d.reason}"
        preview = None
        if tool.preview is not None:
            preview = tool.run_preview(st.args)
            self._set_step(run_id, st.n, preview=preview)
            self._audit("preview", {"run_id": run_id, "step": st.n, "tool": tool.name, "preview": preview})
        if needs_approval and st.status == "approved":  # decided earlier through the API
            return self._apply(run_id, st, tool, note=f"approved ({reason}); ")
        if needs_approval:
            if self.approver is None:  # approval by API call: park the run until someone decides
                self._set_step(run_id, st.n, status="awaiting_approval", detail=reason)
                self._audit(
                    "approval_requested",
                    {"run_id": run_id, "step": st.n, "tool": tool.name, "reason": reason, "preview": preview},
                )
                return "awaiting_approval"
            approved = self.approver(step, tool, preview, reason)
            self._audit(
                "approval",
                {
                    "run_id": run_id,
                    "step": st.n,
                    "tool": tool.name,
                    "approved": approved,
                    "reason": reason,
                    "approver": "callback",
                },
            )
            if not approved:
                return self._stop(run_id, st, "denied", f"not approved ({reason})", "refusal")
            return self._apply(run_id, st, tool, note=f"approved ({reason}); ")
        return self._apply(run_id, st, tool)

    def decide(self, run_id: str, n: int, approved: bool, by: str) -> RunRecord:
        """Answer a parked approval request (the API path), then carry on with the run if approved."""
        rec = self.load(run_id)
        st = next((s for s in rec.steps if s.n == n), None)
        if st is None or st.status != "awaiting_approval":
            raise TetherError(f"run {run_id} step {n} is not awaiting approval")
        self._audit("approval", {"run_id": run_id, "step": n, "tool": st.tool, "approved": approved, "approver": by})
        if not approved:
            self._stop(run_id, st, "denied", f"not approved by {by}", "refusal")
            self._set_run(run_id, "stopped", f"step {n} ({st.tool}) denied by {by}")
            return self.load(run_id)
        self._set_step(run_id, n, status="approved", detail=f"approved by {by}")
        return self.resume(run_id)

    def _apply(self, run_id: str, st: StepRecord, tool: Tool, note: str = "") -> StepStatus:
        args = dict(tool.validate_args(st.args))
        if tool.takes_idempotency_key:
            args[IDEMPOTENCY_PARAM] = st.idempotency_key
        delay = self.backoff_s
        attempts = st.attempts
        while True:
            attempts += 1
            self._set_step(run_id, st.n, attempts=attempts)  # recorded before the call: a crash is visible
            self._audit(
                "tool_call",
                {
                    "run_id": run_id,
                    "step": st.n,
                    "tool": tool.name,
                    "args": st.args,
                    "idempotency_key": st.idempotency_key,
                    "attempt": attempts,
                },
            )
            try:
                result = tool.validate_result(tool.fn(**args))
                break
            except TransientError as e:
                if attempts > self.retries:
                    return self._stop(run_id, st, "failed", f"gave up after {attempts} attempts: {e}", "tool_error")
                time.sleep(delay)
                delay *= 2
            except ToolValidationError as e:
                return self._stop(run_id, st, "failed", str(e), "tool_error", feedback=e.feedback)
            except TetherError as e:
                return self._stop(run_id, st, "failed", str(e), "tool_error")
        dumped = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
        self._set_step(run_id, st.n, status="done", result=dumped, detail=f"{note}done in {attempts} attempt(s)")
        self._audit("tool_result", {"run_id": run_id, "step": st.n, "tool": tool.name, "result": dumped})
        if self.on_event is not None:
            self.on_event("done", self.load(run_id).steps[st.n - 1])
        return "done"

    def _stop(
        self, run_id: str, st: StepRecord, status: StepStatus, detail: str, kind: str, **extra: Any
    ) -> StepStatus:
        self._set_step(run_id, st.n, status=status, detail=detail)
        self._audit(
            kind, {"run_id": run_id, "step": st.n, "tool": st.tool, "status": status, "detail": detail, **extra}
        )
        if self.on_event is not None:
            self.on_event(status, self.load(run_id).steps[st.n - 1])
        return status


_PLANNER_SYSTEM = (
    "You plan tool calls. Given a goal and the tools (JSON schemas), reply with JSON only: "
    '{"steps": [{"tool": "<name>", "args": {...}, "why": "<short reason>"}]}. Use only the listed tools '
    "and only their parameters."
)


class LLMPlanner:
    """A planner that asks a model (through the Generator protocol) for numbered steps.

    The plan is checked before anything runs: unknown tools and invalid arguments go back to the model
    as structured feedback, once; a plan still invalid after that is an error.
    """

    def __init__(self, generator: Any, *, attempts: int = 2) -> None:
        self.generator = generator
        self.attempts = attempts

    def plan(self, goal: str, tools: list[Tool]) -> Plan:
        from tether.models import Message

        by_name = {t.name: t for t in tools}
        messages = [
            Message(role="system", content=_PLANNER_SYSTEM),
            Message(
                role="user",
                content=f"Goal: {goal}\n\nTools:\n" + json.dumps([t.json_schema() for t in tools], indent=1),
            ),
        ]
        problems: list[str] = []
        for _ in range(self.attempts):
            reply = self.generator.complete(messages, json_schema={"type": "object"}, max_tokens=800)
            problems = []
            try:
                raw = json.loads(reply.text)
                steps = [
                    Step(n=i, tool=s["tool"], args=s.get("args") or {}, why=s.get("why", ""))
                    for i, s in enumerate(raw["steps"], 1)
                ]
            except (ValueError, KeyError, TypeError) as e:
                problems.append(f"reply is not a plan ({e})")
                steps = []
            for s in steps:
                t = by_name.get(s.tool)
                if t is None:
                    problems.append(f"step {s.n}: unknown tool {s.tool!r}; available: {', '.join(by_name)}")
                    continue
                try:
                    t.validate_args(s.args)
                except ToolValidationError as e:
                    problems.append(f"step {s.n}: " + "; ".join(f"{f['field']}: {f['problem']}" for f in e.feedback))
            if not problems and steps:
                return Plan(goal=goal, steps=steps)
            messages += [
                Message(role="assistant", content=reply.text),
                Message(
                    role="user",
                    content="The plan is invalid:\n- "
                    + "\n- ".join(problems or ["no steps"])
                    + "\nReply with a corrected plan, JSON only.",
                ),
            ]
        raise TetherError(f"the model did not produce a valid plan: {'; '.join(problems) or 'no steps'}")
