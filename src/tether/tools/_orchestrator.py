"""Plan / execute with approvals, previews, idempotent retries, and a persisted run state.

A planner proposes numbered steps; the orchestrator checks the plan, stores it, and runs one step at a time:
permission -> argument validation (strict; everything after sees only the canonical arguments) -> policy
-> preview -> approval (bound to the hash of the exact step) -> apply with an idempotency key -> validate
the result -> next step. It stops on a failed check. Every call, approval and refusal goes to the audit log
in the same transaction as the state change it describes (see :mod:`tether.tools._runstore`).

A run is leased to one executor at a time, so two processes resuming the same run never both execute a
step. A run killed at any point resumes without repeating finished steps; a step that was applied but not
acknowledged is retried with the same idempotency key, so a tool that honours the key never repeats its
side effect (a tool that takes no key may run again after a crash: give side-effecting tools a key).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from tether.errors import ConfigError, TetherError, TransientError
from tether.tools._approvals import ApprovalError, Approvers, Identity, step_hash
from tether.tools._origin import Origin, trace_origins
from tether.tools._permissions import CallerProfile, check_permission
from tether.tools._plan import LLMPlanner, Plan, PlanError, Planner, ScriptedPlanner, Step, check_plan
from tether.tools._policy import Policy, PolicyContext
from tether.tools._runstore import AuditSink, LeaseLostError, RunBusyError, RunStore, jsonable, new_owner
from tether.tools._schema import IdempotencyConflictError, Tool, ToolValidationError, registry

__all__ = [
    "Approver",
    "AuditSink",
    "IdempotencyConflictError",
    "LLMPlanner",
    "LeaseLostError",
    "Orchestrator",
    "Plan",
    "PlanError",
    "Planner",
    "RunBusyError",
    "RunRecord",
    "ScriptedPlanner",
    "Step",
    "StepRecord",
    "idempotency_key",
]

StepStatus = Literal["pending", "awaiting_approval", "approved", "done", "refused", "denied", "failed"]
RunStatus = Literal["running", "done", "stopped", "awaiting_approval"]
IDEMPOTENCY_PARAM = "idempotency_key"


class Approver(Protocol):
    """Decides on a step the policy (or an irreversible effect) puts before a human.

    Return the approving :class:`Identity` (from ``Approvers.authenticate``) to approve, ``False`` or
    ``None`` to deny. A bare ``True`` is accepted only when no approvers are configured and separation of
    duties is off (trusted code approving for itself).
    """

    def __call__(self, step: Step, tool: Tool, preview: Any, reason: str) -> Identity | bool | None: ...


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
    step_hash: str | None = None
    approved_by: str | None = None
    origin: Origin = Field(default_factory=Origin, description="where the arguments came from (traced at plan time)")


class RunRecord(BaseModel):
    run_id: str
    goal: str
    caller: str
    status: RunStatus
    steps: list[StepRecord]
    stopped_reason: str = ""


def _hash(value: Any) -> str:
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def idempotency_key(run_id: str, step: Step) -> str:
    blob = json.dumps([run_id, step.n, step.tool, step.args], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class Orchestrator:
    """Runs plans under a caller profile and a policy, recording everything.

    Args:
        tools: The registered tools (names must be unique).
        state_path: SQLite file of runs (shared by every executor of the same runs).
        profile: Who is calling (name, role, granted effects).
        policy: Checked against ``tools`` and the profile's role when the orchestrator is built.
        approver: Callback for approvals; without one a step that needs approval parks the run.
        approvers: Who may approve (default: the policy's ``approvers:``).
        audit: Where every decision goes (an :class:`~tether.guard.AuditLog`).
        lease_s: How long a run stays leased to this executor without progress (longer than any tool call).
        lease_wait_s: How long :meth:`resume` waits for another executor's lease before :class:`RunBusyError`.
    """

    def __init__(
        self,
        tools: list[Tool],
        state_path: Path,
        *,
        profile: CallerProfile,
        policy: Policy | None = None,
        approver: Approver | None = None,
        approvers: Approvers | None = None,
        audit: AuditSink | None = None,
        config_hash: str = "",
        retries: int = 2,
        backoff_s: float = 0.2,
        on_event: Callable[[str, StepRecord], None] | None = None,
        lease_s: float = 300.0,
        lease_wait_s: float = 60.0,
        fault: Callable[[str], None] | None = None,
    ) -> None:
        self.tools = registry(tools)
        self.profile = profile
        self.policy = policy
        if policy is not None:
            policy.check_tools(list(self.tools.values()), roles=[profile.role])
        self.approver = approver
        self.approvers = approvers if approvers is not None else (policy.approvers if policy else Approvers([]))
        self.audit = audit
        self.config_hash = config_hash
        self.retries = retries
        self.backoff_s = backoff_s
        self.on_event = on_event
        self.lease_wait_s = lease_wait_s
        self.executor_id = new_owner(profile.name)
        self.store = RunStore(state_path, owner=self.executor_id, lease_s=lease_s, fault=fault)

    def close(self) -> None:
        self.store.close()

    # -- state -------------------------------------------------------------------
    def start(self, plan: Plan) -> str:
        """Check the plan, then persist it with all steps pending; returns the run id.

        Raises:
            PlanError: The plan is malformed (nothing is stored).
        """
        check_plan(plan, self.tools)
        run_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        steps = [s.model_dump() for s in plan.steps]
        # the orchestrator traces every argument itself: a planner's own account of where they came from is not used
        origins = trace_origins([s.args for s in plan.steps], plan.goal, plan.sources)
        planned: dict[str, Any] = {"goal": plan.goal, "steps": steps}
        if plan.sources:
            planned["sources"] = [src.path for src in plan.sources]
            planned["origins"] = [o.model_dump() for o in origins]
        plan_hash = _hash(planned)
        head = getattr(self.audit, "head", None)
        audit_from = int(head()[0]) + 1 if callable(head) else 1
        with self.store.tx() as db:
            db.execute(
                "INSERT INTO runs(run_id, goal, caller, status, created, plan_hash, lease_owner, lease_until,"
                " audit_from) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    plan.goal,
                    self.profile.name,
                    "running",
                    datetime.now(UTC).isoformat(),
                    plan_hash,
                    self.executor_id,
                    time.time() + self.store.lease_s,
                    audit_from,
                ),
            )
            for s, o in zip(plan.steps, origins, strict=True):
                db.execute(
                    "INSERT INTO steps(run_id, n, tool, args, status, idempotency_key, args_hash, origin)"
                    " VALUES (?,?,?,?,?,?,?,?)",
                    (
                        run_id,
                        s.n,
                        s.tool,
                        json.dumps(s.args),
                        "pending",
                        idempotency_key(run_id, s),
                        _hash(s.args),
                        o.model_dump_json(),
                    ),
                )
            self._emit(db, run_id, "plan", {"run_id": run_id, "goal": plan.goal, "plan_hash": plan_hash, **planned})
        self.store._held[run_id] = 1
        try:
            self.store.flush(run_id, self.audit)
        finally:
            self.store.release(run_id)
        return run_id

    def load(self, run_id: str) -> RunRecord:
        db = self.store.db
        row = db.execute(
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
                step_hash=r[9],
                approved_by=r[10],
                origin=Origin.model_validate_json(r[11] or "{}"),
            )
            for r in db.execute(
                "SELECT n, tool, args, status, idempotency_key, attempts, result, preview, detail, approval_hash,"
                " approved_by, origin FROM steps WHERE run_id=? ORDER BY n",
                (run_id,),
            )
        ]
        return RunRecord(run_id=row[0], goal=row[1], caller=row[2], status=row[3], stopped_reason=row[4], steps=steps)

    def _emit(self, db: Any, run_id: str, kind: str, payload: dict[str, Any], actor: str | None = None) -> None:
        if self.audit is not None:
            self.store.emit(db, run_id, kind, actor or self.profile.name, payload, self.config_hash)

    def _set_step(self, run_id: str, n: int, audit: tuple[str, dict[str, Any]] | None = None, **fields: Any) -> None:
        """Change a step and queue its audit entry in one leased transaction, then flush the entry."""
        cols = ", ".join(f"{k}=?" for k in fields)
        vals = [
            json.dumps(jsonable(v)) if k in ("result", "preview", "approver_roles") else v for k, v in fields.items()
        ]
        with self.store.leased(run_id) as db:
            if fields:
                db.execute(f"UPDATE steps SET {cols} WHERE run_id=? AND n=?", [*vals, run_id, n])
            if audit is not None:
                self._emit(db, run_id, audit[0], audit[1])
        self.store.flush(run_id, self.audit)

    def _set_run(self, run_id: str, status: RunStatus, reason: str = "") -> None:
        with self.store.leased(run_id) as db:
            db.execute("UPDATE runs SET status=?, stopped_reason=? WHERE run_id=?", (status, reason, run_id))

    # -- execution -----------------------------------------------------------------
    def run(self, plan: Plan) -> RunRecord:
        return self.resume(self.start(plan))

    def resume(self, run_id: str) -> RunRecord:
        """Run every step not yet done, in order; stop at the first refusal, denial or failure.

        Raises:
            RunBusyError: Another executor held the run for longer than ``lease_wait_s``.
        """
        self.store.acquire(run_id, self.lease_wait_s)
        try:
            self.store.flush(run_id, self.audit, reconcile=True)
            return self._resume(run_id)
        finally:
            self.store.release(run_id)

    def _resume(self, run_id: str) -> RunRecord:
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
                detail = self.load(run_id).steps[st.n - 1].detail
                self._set_run(run_id, "awaiting_approval", f"step {st.n} ({st.tool}) awaits approval: {detail}")
                return self.load(run_id)
            if outcome != "done":
                detail = self.load(run_id).steps[st.n - 1].detail
                self._set_run(run_id, "stopped", f"step {st.n} ({st.tool}) {outcome}: {detail}")
                return self.load(run_id)
        self._set_run(run_id, "done")
        return self.load(run_id)

    def _step_row(self, run_id: str, n: int) -> tuple[Any, ...]:
        row = self.store.db.execute(
            "SELECT args_hash, approval_hash, approved_hash, approver_roles FROM steps WHERE run_id=? AND n=?",
            (run_id, n),
        ).fetchone()
        plan_hash = self.store.db.execute("SELECT plan_hash FROM runs WHERE run_id=?", (run_id,)).fetchone()[0]
        return (*row, plan_hash)

    def _execute(self, run_id: str, st: StepRecord) -> StepStatus:
        tool = self.tools.get(st.tool)
        if tool is None:
            return self._stop(run_id, st, "failed", f"unknown tool {st.tool!r}", "tool_error")
        args_hash, _requested, approved_hash, _roles, plan_hash = self._step_row(run_id, st.n)
        if args_hash and _hash(st.args) != args_hash:
            return self._stop(
                run_id, st, "refused", "the step's arguments changed after the plan was stored; refused", "refusal"
            )
        perm = check_permission(self.profile, tool)
        if not perm.allowed:
            return self._stop(run_id, st, "refused", perm.reason, "refusal")
        try:
            validated = tool.validate_args(st.args)
        except ToolValidationError as e:
            return self._stop(run_id, st, "failed", str(e), "tool_error", feedback=e.feedback)
        canonical = validated.model_dump(mode="json")
        needs_approval = tool.irreversible
        reason = "irreversible effect" if needs_approval else ""
        approver_roles: list[str] | None = None
        origin = st.origin
        if origin.kind == "document" and not set(tool.effects) <= {"read"}:
            act = self.policy.spec.document_origin if self.policy is not None else "deny"
            why = (
                f"prompt-injection guard: {', '.join(repr(v) for v in origin.values[:3])} came from "
                f"{', '.join(origin.sources[:3])}, not from the request (a step a document asked for)"
            )
            if act == "deny":
                return self._stop(run_id, st, "refused", f"{why}; denied", "refusal", rule="document_origin")
            if act == "require_approval":
                needs_approval, reason = True, why
        if self.policy is not None:
            d = self.policy.decide(
                PolicyContext(
                    tool=tool.name,
                    effects=sorted(tool.effects),
                    args=canonical,
                    role=self.profile.role,
                    caller=self.profile.name,
                    classification=tool.classification,
                    origin=origin.kind,
                )
            )
            self._set_step(
                run_id, st.n, audit=("policy", {"run_id": run_id, "step": st.n, "tool": tool.name, **d.model_dump()})
            )
            if d.action == "deny":
                return self._stop(run_id, st, "refused", f"policy: {d.reason}", "refusal", rule=d.rule)
            if d.action == "require_approval":
                guard = f"{reason}; " if reason.startswith("prompt-injection guard") else ""
                needs_approval, reason, approver_roles = True, f"{guard}policy: {d.reason}", d.approver_roles
        preview = None
        if tool.preview is not None:
            try:
                preview = jsonable(tool.run_preview(canonical))
            except Exception as e:  # a preview that fails cannot be shown to an approver: stop
                return self._stop(run_id, st, "failed", f"preview failed: {type(e).__name__}: {e}", "tool_error")
            self._set_step(
                run_id,
                st.n,
                audit=("preview", {"run_id": run_id, "step": st.n, "tool": tool.name, "preview": preview}),
                preview=preview,
            )
        h = step_hash(plan_id=f"{run_id}:{plan_hash}", n=st.n, tool=tool.name, args=canonical, preview=preview)
        if needs_approval and st.status == "approved":  # decided earlier through the API
            if approved_hash != h:
                return self._stop(
                    run_id,
                    st,
                    "denied",
                    "approval void: the step (arguments or preview) changed after it was approved",
                    "refusal",
                    step_hash=h,
                    approved_hash=approved_hash,
                )
            return self._apply(run_id, st, tool, validated, canonical, note=f"approved ({reason}); ")
        if needs_approval:
            if self.approver is None:  # approval by API call: park the run until someone decides
                self._set_step(
                    run_id,
                    st.n,
                    audit=(
                        "approval_requested",
                        {
                            "run_id": run_id,
                            "step": st.n,
                            "tool": tool.name,
                            "reason": reason,
                            "preview": preview,
                            "args": canonical,
                            "step_hash": h,
                            "requester": self.profile.name,
                        },
                    ),
                    status="awaiting_approval",
                    detail=reason,
                    approval_hash=h,
                    approver_roles=approver_roles,
                )
                return "awaiting_approval"
            return self._callback_approval(run_id, st, tool, validated, canonical, preview, reason, approver_roles, h)
        return self._apply(run_id, st, tool, validated, canonical)

    def _callback_approval(
        self,
        run_id: str,
        st: StepRecord,
        tool: Tool,
        validated: BaseModel,
        canonical: dict[str, Any],
        preview: Any,
        reason: str,
        roles: list[str] | None,
        h: str,
    ) -> StepStatus:
        assert self.approver is not None
        vote = self.approver(Step(n=st.n, tool=st.tool, args=canonical), tool, preview, reason)
        who = "callback"
        refusal = ""
        if isinstance(vote, Identity):
            try:
                who = self.approvers.check(vote, requester=self.profile.name, roles=roles).id
            except ApprovalError as e:
                refusal = str(e)
        elif vote is True:
            if self.approvers or self.approvers.settings.separation_of_duties:
                refusal = "an approval must come from an authenticated approver (Approvers.authenticate), not True"
        else:
            refusal = "not approved"
        payload = {"run_id": run_id, "step": st.n, "tool": tool.name, "approved": not refusal, "reason": reason}
        self._set_step(
            run_id, st.n, audit=("approval", {**payload, "approver": who, "step_hash": h, "refusal": refusal or None})
        )
        if refusal:
            return self._stop(run_id, st, "denied", f"{refusal} ({reason})", "refusal")
        return self._apply(run_id, st, tool, validated, canonical, note=f"approved by {who} ({reason}); ")

    def decide(self, run_id: str, n: int, approved: bool, by: Identity, *, step_hash: str | None = None) -> RunRecord:
        """Answer a parked approval request, then carry on with the run if approved.

        Args:
            run_id: The run.
            n: The step awaiting approval.
            approved: Yes or no.
            by: The approver, from ``approvers.authenticate(id, secret)`` (a name as text is refused).
            step_hash: The hash the approver was shown (``StepRecord.step_hash``); if the step changed
                since, the approval is refused.

        Raises:
            ApprovalError: ``by`` is not an authenticated approver with a required role, asked for the step
                themself (separation of duties), or the step changed since it was shown.
        """
        self.store.acquire(run_id, self.lease_wait_s)
        try:
            self.store.flush(run_id, self.audit, reconcile=True)
            rec = self.load(run_id)
            st = next((s for s in rec.steps if s.n == n), None)
            if st is None or st.status != "awaiting_approval":
                raise TetherError(f"run {run_id} step {n} is not awaiting approval")
            _, requested, _, roles_json, _ = self._step_row(run_id, n)
            roles = json.loads(roles_json) if roles_json else None
            if not self.approvers:
                raise ConfigError(
                    "no approvers are configured (approvers: in the policy file); an approval needs an "
                    "authenticated approver"
                )
            if approved:
                who = self.approvers.check(by, requester=rec.caller, roles=roles)
            else:
                who = self.approvers.authenticated(by)
            if step_hash is not None and step_hash != requested:
                raise ApprovalError(f"run {run_id} step {n} changed since it was shown to {who.id}; review it again")
            payload = {"run_id": run_id, "step": n, "tool": st.tool, "approved": approved, "approver": who.id}
            with self.store.leased(run_id) as db:
                self._emit(db, run_id, "approval", {**payload, "step_hash": requested}, actor=who.id)
            self.store.flush(run_id, self.audit)
            if not approved:
                self._stop(run_id, st, "denied", f"not approved by {who.id}", "refusal")
                self._set_run(run_id, "stopped", f"step {n} ({st.tool}) denied by {who.id}")
                return self.load(run_id)
            self._set_step(
                run_id,
                n,
                status="approved",
                detail=f"approved by {who.id}",
                approved_hash=requested,
                approved_by=who.id,
            )
            return self._resume(run_id)
        finally:
            self.store.release(run_id)

    def _claim_key(self, run_id: str, st: StepRecord, tool: Tool, canonical: dict[str, Any]) -> None:
        """Bind the step's idempotency key to its arguments; the same key with other arguments is a conflict."""
        with self.store.leased(run_id) as db:
            row = db.execute("SELECT tool, args_hash FROM idempotency WHERE key=?", (st.idempotency_key,)).fetchone()
            h = _hash([tool.name, canonical])
            if row is None:
                db.execute(
                    "INSERT INTO idempotency(key, tool, args_hash) VALUES (?,?,?)", (st.idempotency_key, tool.name, h)
                )
            elif row[1] != h:
                raise IdempotencyConflictError(
                    f"idempotency key {st.idempotency_key} was already used with other arguments ({row[0]}); refused"
                )

    def _apply(
        self, run_id: str, st: StepRecord, tool: Tool, args: BaseModel, canonical: dict[str, Any], note: str = ""
    ) -> StepStatus:
        try:
            self._claim_key(run_id, st, tool, canonical)
        except IdempotencyConflictError as e:
            return self._stop(run_id, st, "failed", str(e), "tool_error")
        delay = self.backoff_s
        attempts = st.attempts
        while True:
            attempts += 1
            call = {
                "run_id": run_id,
                "step": st.n,
                "tool": tool.name,
                "args": canonical,
                "idempotency_key": st.idempotency_key,
                "attempt": attempts,
            }
            self._set_step(run_id, st.n, audit=("tool_call", call), attempts=attempts)  # logged before the call
            self.store.point("before_tool")
            try:
                result = tool.invoke(args, st.idempotency_key)
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
            except Exception as e:  # a tool's own bug (or a write a read tool may not make) fails the step
                return self._stop(run_id, st, "failed", f"{type(e).__name__}: {e}", "tool_error")
        self.store.point("after_tool")
        dumped = jsonable(result.model_dump(mode="json") if isinstance(result, BaseModel) else result)
        self._set_step(
            run_id,
            st.n,
            audit=("tool_result", {"run_id": run_id, "step": st.n, "tool": tool.name, "result": dumped}),
            status="done",
            result=dumped,
            detail=f"{note}done in {attempts} attempt(s)",
        )
        if self.on_event is not None:
            self.on_event("done", self.load(run_id).steps[st.n - 1])
        return "done"

    def _stop(
        self, run_id: str, st: StepRecord, status: StepStatus, detail: str, kind: str, **extra: Any
    ) -> StepStatus:
        payload = {"run_id": run_id, "step": st.n, "tool": st.tool, "status": status, "detail": detail, **extra}
        self._set_step(run_id, st.n, audit=(kind, payload), status=status, detail=detail)
        if self.on_event is not None:
            self.on_event(status, self.load(run_id).steps[st.n - 1])
        return status
