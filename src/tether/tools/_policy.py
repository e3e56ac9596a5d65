"""Policy as code: YAML rules (and Python hooks where YAML is not enough) decide before every tool call
and every answer: allow, deny or require_approval. Rules are versioned and hashed; a decision names its rule.

```yaml
version: 3
default: allow                 # required: what applies when no rule matches
roles: [clerk, manager, intern, finance]   # required when a rule names roles
approval:
  separation_of_duties: true   # whoever asked cannot approve
  roles: [manager]             # who may approve (a rule can narrow it with approver_roles)
approvers:
  - {id: cara, roles: [manager], secret_sha256: <sha256 hex of cara's secret>}
rules:
  - id: no-external-for-clerks
    on: tool_call              # or: answer
    tool: "*"                  # a name, a list of names, or "*"
    when:
      role: [clerk]            # caller roles
      effects: [external]      # the tool declares any of these
    action: deny
  - id: big-expenses-need-approval
    tool: record_expense
    when:
      args: {amount: {gt: 500}}
    action: require_approval
  - id: secret-answers
    on: answer
    when: {classification: [secret]}
    action: deny
  - id: no-injected-answers     # answer rules can also look at the draft and the passages it cites
    on: answer
    when: {evidence_matches: "ignore (all )?previous instructions"}
    action: deny
  - id: custom
    hook: mypkg.policies:check  # a callable(PolicyContext) -> "allow" | "deny" | "require_approval" | None
```

Fail closed: the file is checked when it loads (and against the registered tools when an orchestrator
uses it): an unknown tool, role, effect, classification or argument, a bad regex, or a condition that
can never apply is an error naming its line. A rule whose evaluation fails at run time denies, and says why.
Names are compared exactly, in their canonical form (see :mod:`tether.tools._names`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tether.tools._approvals import ApprovalSettings, ApproverConfig, Approvers
from tether.tools._names import name_problem

Action = Literal["allow", "deny", "require_approval"]
_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "matches")
ORDER_OPS = ("gt", "gte", "lt", "lte")
CLASSIFICATIONS = ("public", "internal", "confidential", "secret")


class PolicyContext(BaseModel):
    """What a rule can look at. For tool calls, ``args`` are the validated, canonical arguments."""

    on: Literal["tool_call", "answer"] = "tool_call"
    tool: str | None = None
    effects: list[str] = Field(default_factory=list)
    args: dict[str, Any] = Field(default_factory=dict)
    role: str = "user"
    caller: str = ""
    classification: str = "internal"
    text: str = Field("", description="the question (answers) or a rendering of the call")
    origin: Literal["user", "document", "model"] = Field(
        "user", description="tool calls: where the arguments came from (the request, a document, the model)"
    )
    draft: bool = Field(False, description="answers: True when the answer has been drafted (answer, evidence set)")
    answer: str = Field("", description="answers: the drafted answer's text (empty before it is drafted)")
    evidence: list[str] = Field(
        default_factory=list, description="answers: the passages the draft cites (whole chunks), once drafted"
    )


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: list[str] | None = None
    classification: list[str] | None = None
    effects: list[str] | None = None
    args: dict[str, Any] = Field(default_factory=dict, description="arg name -> value or {op: value}")
    text_matches: str | None = None
    origin: list[Literal["user", "document", "model"]] | None = Field(
        None, description="tool calls: where the arguments came from (tether.tools._origin)"
    )
    answer_matches: str | None = Field(None, description="answers: a regex the drafted answer's text must match")
    evidence_matches: str | None = Field(None, description="answers: a regex one passage the draft cites must match")


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    description: str = ""
    on: Literal["tool_call", "answer"] = "tool_call"
    tool: str | list[str] = "*"
    when: Condition = Field(default_factory=Condition)
    action: Action | None = None
    hook: str | None = None
    approver_roles: list[str] | None = Field(None, description="who may approve when this rule asks for approval")

    @model_validator(mode="after")
    def _one(self) -> Rule:
        if (self.action is None) == (self.hook is None):
            raise ValueError("give exactly one of 'action' or 'hook'")
        for name, cond in self.when.args.items():
            if isinstance(cond, dict):
                bad = [op for op in cond if op not in _OPS]
                if bad:
                    raise ValueError(f"when.args.{name}: unknown operator {bad[0]!r}; use {', '.join(_OPS)}")
        return self

    @property
    def tools(self) -> list[str]:
        return [self.tool] if isinstance(self.tool, str) else list(self.tool)


class PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int | str = 1
    default: Action
    document_origin: Action = Field(
        "deny",
        description="a call whose arguments a document supplied (not the request) to a tool that changes anything: "
        "decided before any rule (deny, require_approval, or allow to leave it to the rules)",
    )
    roles: list[str] | None = Field(None, description="every role a rule or approver may name")
    approval: ApprovalSettings = Field(default_factory=ApprovalSettings)
    approvers: list[ApproverConfig] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)


class Decision(BaseModel):
    action: Action
    rule: str | None = Field(None, description="the rule that decided; None = the default")
    reason: str
    policy_version: str
    policy_hash: str
    approver_roles: list[str] | None = Field(None, description="who may approve (require_approval only)")


class RuleError(Exception):
    """A rule could not be evaluated on this context (the policy then denies)."""


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _compare(op: str, have: Any, want: Any) -> bool:
    if op in ORDER_OPS:
        if not (_number(have) and _number(want)):
            raise RuleError(f"{op} needs two finite numbers, got {type(have).__name__} {str(have)[:40]!r}")
        return bool({"gt": have > want, "gte": have >= want, "lt": have < want, "lte": have <= want}[op])
    if op in ("eq", "ne"):
        if isinstance(have, bool) != isinstance(want, bool):
            raise RuleError(f"{op} compares a boolean with a non-boolean ({have!r} vs {want!r})")
        return bool(have == want) if op == "eq" else bool(have != want)
    if op in ("in", "not_in"):
        if not isinstance(want, list):
            raise RuleError(f"{op} needs a list")
        found = any(isinstance(w, bool) == isinstance(have, bool) and have == w for w in want)
        return found if op == "in" else not found
    if op == "matches":
        if not isinstance(have, str):
            raise RuleError(f"matches needs text, got {type(have).__name__}")
        return re.search(str(want), have) is not None
    raise RuleError(f"unknown operator {op!r}")


def _matches(rule: Rule, ctx: PolicyContext) -> bool:
    """Whether ``rule`` applies to ``ctx``; raises :class:`RuleError` when it cannot be told."""
    if rule.on != ctx.on:
        return False
    if ctx.on == "tool_call" and "*" not in rule.tools and ctx.tool not in rule.tools:
        return False
    w = rule.when
    if w.role is not None and ctx.role not in w.role:
        return False
    if w.classification is not None and ctx.classification not in w.classification:
        return False
    if w.effects is not None and not set(w.effects) & set(ctx.effects):
        return False
    if w.origin is not None and ctx.origin not in w.origin:
        return False
    if w.text_matches is not None and re.search(w.text_matches, ctx.text, re.IGNORECASE) is None:
        return False
    if w.answer_matches is not None or w.evidence_matches is not None:
        if not ctx.draft:  # decided once the answer is drafted (the policy is asked again then)
            return False
        if w.answer_matches is not None and re.search(w.answer_matches, ctx.answer, re.IGNORECASE) is None:
            return False
        if w.evidence_matches is not None and not any(
            re.search(w.evidence_matches, e, re.IGNORECASE) for e in ctx.evidence
        ):
            return False
    for name, cond in w.args.items():
        if name not in ctx.args:
            raise RuleError(f"the call has no argument {name!r}")
        ops = cond if isinstance(cond, dict) else {"eq": cond}
        if not all(_compare(op, ctx.args[name], want) for op, want in ops.items()):
            return False
    return True


class Policy:
    """Rules evaluated in order; the first that matches decides. Build with :meth:`load`."""

    def __init__(self, spec: PolicyFile, source: str = "", lines: dict[int, int] | None = None) -> None:
        from tether.tools._policy_check import check_spec, load_hook

        self.spec = spec
        self.source = source
        self.lines = lines or {}
        check_spec(self)
        blob = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        self.hash = hashlib.sha256(blob.encode()).hexdigest()[:16]
        self._hooks: dict[str, Callable[[PolicyContext], str | None]] = {}
        for i, r in enumerate(spec.rules):
            if r.hook:
                self._hooks[r.id] = load_hook(r.hook, self.where(i))
        self.approvers = Approvers(spec.approvers, spec.approval)

    def where(self, rule_index: int) -> str:
        """``"policy.yaml line 7: rule big-expenses"`` for error messages."""
        r = self.spec.rules[rule_index]
        line = self.lines.get(rule_index)
        return f"{self.source or 'policy'}" + (f" line {line}" if line else "") + f": rule {r.id}"

    @classmethod
    def load(cls, path: str | Path, *, tools: list[Any] | None = None) -> Policy:
        """Load and check a policy file (and, with ``tools``, check it against those tools).

        Raises:
            ConfigError: The file is missing, empty, not valid YAML, or names something that does not
                exist; the message names the line and the rule.
        """
        from tether.tools._policy_check import parse_policy_file

        spec, lines = parse_policy_file(Path(path))
        policy = cls(spec, str(path), lines)
        if tools is not None:
            policy.check_tools(tools)
        return policy

    def check_tools(self, tools: list[Any], roles: list[str] | None = None) -> None:
        """Check every rule against the registered tools (names, arguments, operator types) and roles.

        Raises:
            ConfigError: A rule names a tool or argument that does not exist, or compares an argument in
                a way its type cannot support; or a caller role is not declared.
        """
        from tether.tools._policy_check import check_against_tools

        check_against_tools(self, tools, roles or [])

    @property
    def version(self) -> str:
        return str(self.spec.version)

    def decide(self, ctx: PolicyContext) -> Decision:
        """The first matching rule's decision; any rule that cannot be evaluated denies."""
        for label, value in (("tool name", ctx.tool), ("role", ctx.role)):
            if value is None:
                continue
            problem = name_problem(value, label)
            if problem:
                return self._deny(None, f"{problem}; denied")
        if self.spec.roles is not None and ctx.role not in self.spec.roles:
            return self._deny(None, f"role {ctx.role!r} is not declared in the policy; denied")
        for r in self.spec.rules:
            try:
                if not _matches(r, ctx):
                    continue
            except (RuleError, re.error, TypeError, ValueError) as e:
                return self._deny(r, f"rule {r.id} could not be evaluated ({e}); denied")
            if r.hook:
                try:
                    action = self._hooks[r.id](ctx)
                except Exception as e:  # a hook is user code: whatever it raises, deny
                    return self._deny(r, f"rule {r.id} (hook {r.hook}) failed ({type(e).__name__}: {e}); denied")
                if action is None:
                    continue
                if action not in ("allow", "deny", "require_approval"):
                    return self._deny(r, f"rule {r.id} (hook {r.hook}) returned {str(action)[:40]!r}; denied")
                return self._decision(action, r, f"rule {r.id} (hook {r.hook})")  # type: ignore[arg-type]
            assert r.action is not None
            return self._decision(r.action, r, f"rule {r.id}" + (f": {r.description}" if r.description else ""))
        return Decision(
            action=self.spec.default,
            rule=None,
            reason=f"no rule matched; default {self.spec.default}",
            policy_version=self.version,
            policy_hash=self.hash,
        )

    def _deny(self, r: Rule | None, reason: str) -> Decision:
        return Decision(
            action="deny", rule=r.id if r else None, reason=reason, policy_version=self.version, policy_hash=self.hash
        )

    def _decision(self, action: Action, r: Rule, reason: str) -> Decision:
        return Decision(
            action=action,
            rule=r.id,
            reason=reason,
            policy_version=self.version,
            policy_hash=self.hash,
            approver_roles=r.approver_roles if action == "require_approval" else None,
        )
