"""Policy as code: YAML rules (and Python hooks where YAML is not enough) decide before every tool call
and every answer: allow, deny or require_approval. Rules are versioned and hashed; a decision names its rule.

```yaml
version: 3
default: allow                 # when no rule matches
rules:
  - id: no-external-for-clerks
    on: tool_call              # or: answer
    tool: "*"                  # a name, a list of names, or "*"
    when:
      role: [clerk]            # caller roles
      effects: [external]      # the tool declares any of these
    action: deny
  - id: big-expenses-need-approval
    tool: approve_expense
    when:
      args: {amount: {gt: 500}}
    action: require_approval
  - id: secret-answers
    on: answer
    when: {classification: [secret]}
    action: deny
  - id: custom
    hook: mypkg.policies:check  # a callable(PolicyContext) -> "allow" | "deny" | "require_approval" | None
```
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tether.errors import ConfigError

Action = Literal["allow", "deny", "require_approval"]
_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "matches")


class PolicyContext(BaseModel):
    """What a rule can look at."""

    on: Literal["tool_call", "answer"] = "tool_call"
    tool: str | None = None
    effects: list[str] = Field(default_factory=list)
    args: dict[str, Any] = Field(default_factory=dict)
    role: str = "user"
    caller: str = ""
    classification: str = "internal"
    text: str = Field("", description="the question (answers) or a rendering of the call")


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: list[str] | None = None
    classification: list[str] | None = None
    effects: list[str] | None = None
    args: dict[str, Any] = Field(default_factory=dict, description="arg name -> value or {op: value}")
    text_matches: str | None = None


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    description: str = ""
    on: Literal["tool_call", "answer"] = "tool_call"
    tool: str | list[str] = "*"
    when: Condition = Field(default_factory=Condition)
    action: Action | None = None
    hook: str | None = None

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


class PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int | str = 1
    default: Action = "allow"
    rules: list[Rule] = Field(default_factory=list)


class Decision(BaseModel):
    action: Action
    rule: str | None = Field(None, description="the rule that decided; None = the default")
    reason: str
    policy_version: str
    policy_hash: str


def _compare(op: str, have: Any, want: Any) -> bool:
    try:
        if op == "eq":
            return bool(have == want)
        if op == "ne":
            return bool(have != want)
        if op == "gt":
            return bool(have > want)
        if op == "gte":
            return bool(have >= want)
        if op == "lt":
            return bool(have < want)
        if op == "lte":
            return bool(have <= want)
        if op == "in":
            return have in want
        if op == "not_in":
            return have not in want
        if op == "matches":
            return re.search(str(want), str(have)) is not None
    except TypeError:
        return False
    return False


def _matches(rule: Rule, ctx: PolicyContext) -> bool:
    if rule.on != ctx.on:
        return False
    tools = [rule.tool] if isinstance(rule.tool, str) else rule.tool
    if ctx.on == "tool_call" and "*" not in tools and ctx.tool not in tools:
        return False
    w = rule.when
    if w.role is not None and ctx.role not in w.role:
        return False
    if w.classification is not None and ctx.classification not in w.classification:
        return False
    if w.effects is not None and not set(w.effects) & set(ctx.effects):
        return False
    if w.text_matches is not None and re.search(w.text_matches, ctx.text, re.IGNORECASE) is None:
        return False
    for name, cond in w.args.items():
        if name not in ctx.args:
            return False
        have = ctx.args[name]
        ops = cond if isinstance(cond, dict) else {"eq": cond}
        if not all(_compare(op, have, want) for op, want in ops.items()):
            return False
    return True


class Policy:
    """Rules evaluated in order; the first that matches decides."""

    def __init__(self, spec: PolicyFile, source: str = "") -> None:
        self.spec = spec
        self.source = source
        blob = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        self.hash = hashlib.sha256(blob.encode()).hexdigest()[:16]
        self._hooks: dict[str, Callable[[PolicyContext], str | None]] = {}
        for r in spec.rules:
            if r.hook:
                self._hooks[r.id] = _load_hook(r.hook, r.id, source)

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"policy file {p} does not exist") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{p} is not valid YAML{where}: {getattr(e, 'problem', e)}") from None
        if isinstance(data, dict):
            for r in data.get("rules") or []:
                if isinstance(r, dict) and True in r:  # YAML 1.1 reads a bare `on:` key as the boolean true
                    r["on"] = r.pop(True)
        try:
            spec = PolicyFile.model_validate(data)
        except ValidationError as e:
            first = e.errors()[0]
            loc = ".".join(str(x) for x in first["loc"])
            raw_rules = data.get("rules") if isinstance(data, dict) else None
            if first["loc"][:1] == ("rules",) and len(first["loc"]) > 1 and isinstance(raw_rules, list):
                i = int(first["loc"][1])
                rid = (
                    raw_rules[i].get("id", f"#{i + 1}") if i < len(raw_rules) and isinstance(raw_rules[i], dict) else i
                )
                loc = f"rule {rid}: " + ".".join(str(x) for x in first["loc"][2:])
            msg = first["msg"].removeprefix("Value error, ")
            raise ConfigError(f"{p}: {loc}: {msg}") from None
        return cls(spec, str(p))

    @property
    def version(self) -> str:
        return str(self.spec.version)

    def decide(self, ctx: PolicyContext) -> Decision:
        for r in self.spec.rules:
            if not _matches(r, ctx):
                continue
            if r.hook:
                action = self._hooks[r.id](ctx)
                if action is None:
                    continue
                if action not in ("allow", "deny", "require_approval"):
                    raise ConfigError(f"policy hook {r.hook} (rule {r.id}) returned {action!r}")
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

    def _decision(self, action: Action, r: Rule, reason: str) -> Decision:
        return Decision(action=action, rule=r.id, reason=reason, policy_version=self.version, policy_hash=self.hash)


def _load_hook(spec: str, rule_id: str, source: str) -> Callable[[PolicyContext], str | None]:
    mod, _, attr = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"{source}: rule {rule_id}: cannot load hook {spec!r} ({e})") from None
    if not callable(fn):
        raise ConfigError(f"{source}: rule {rule_id}: hook {spec!r} is not callable")
    return fn  # type: ignore[no-any-return]
