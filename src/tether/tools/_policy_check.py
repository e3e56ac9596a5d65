"""Loading a policy file and checking it, so that a rule that could never apply is an error, not a silent allow.

Every message names the file, the line and the rule: ``policy.yaml line 7: rule big: tool 'record_expense '
is not a registered tool (did you mean 'record_expense'?)``.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from tether.errors import ConfigError
from tether.tools._names import name_problem
from tether.tools._policy import CLASSIFICATIONS, ORDER_OPS, PolicyContext, PolicyFile, _number
from tether.tools._schema import EFFECTS

if TYPE_CHECKING:
    from tether.tools._policy import Policy, Rule


def _duplicate_keys(node: yaml.Node, where: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for k, v in node.value:
            key = str(k.value)
            if key in seen:
                raise ConfigError(f"{where} line {k.start_mark.line + 1}: key {key!r} is given twice")
            seen.add(key)
            _duplicate_keys(v, where)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _duplicate_keys(item, where)


def _rule_lines(root: yaml.Node | None) -> dict[int, int]:
    if not isinstance(root, yaml.MappingNode):
        return {}
    for k, v in root.value:
        if k.value == "rules" and isinstance(v, yaml.SequenceNode):
            return {i: item.start_mark.line + 1 for i, item in enumerate(v.value)}
    return {}


def parse_policy_file(p: Path) -> tuple[PolicyFile, dict[int, int]]:
    """The validated file and the line of each rule (1-based)."""
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"policy file {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"policy file {p} cannot be read: {e}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p} is not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    if data is None:
        raise ConfigError(f"{p} is empty; a policy needs at least 'default: deny' (or allow) and its rules")
    if not isinstance(data, dict):
        raise ConfigError(f"{p} must be a mapping with 'default:' and 'rules:', not a {type(data).__name__}")
    if root is not None:
        _duplicate_keys(root, str(p))
    if "default" not in data:
        raise ConfigError(
            f"{p}: 'default' is required (allow, deny or require_approval): say what applies when no rule matches"
        )
    lines = _rule_lines(root)
    for r in data.get("rules") or []:
        if isinstance(r, dict) and True in r:  # YAML 1.1 reads a bare `on:` key as the boolean true
            r["on"] = r.pop(True)
    try:
        spec = PolicyFile.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raw_rules = data.get("rules")
        if first["loc"][:1] == ("rules",) and len(first["loc"]) > 1 and isinstance(raw_rules, list):
            i = int(first["loc"][1])
            rid = raw_rules[i].get("id", f"#{i + 1}") if i < len(raw_rules) and isinstance(raw_rules[i], dict) else i
            line = f" line {lines[i]}" if i in lines else ""
            msg = first["msg"].removeprefix("Value error, ")
            raise ConfigError(f"{p}{line}: rule {rid}: {'.'.join(str(x) for x in first['loc'][2:])}: {msg}") from None
        msg = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{p}: {loc}: {msg}") from None
    return spec, lines


def _closest(name: str, known: list[str]) -> str:
    folded = {k.casefold().strip(): k for k in known}
    if name.casefold().strip() in folded:
        return f" (did you mean {folded[name.casefold().strip()]!r}? names are exact, case and spaces count)"
    near = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _check_names(where: str, what: str, names: list[str], known: list[str] | None) -> None:
    for n in names:
        problem = name_problem(n, what)
        if problem:
            raise ConfigError(f"{where}: {problem}")
        if known is not None and n not in known:
            raise ConfigError(f"{where}: {what} {n!r} is not one of {', '.join(known) or '(none)'}{_closest(n, known)}")


def _compile(where: str, pattern: Any, label: str) -> None:
    if not isinstance(pattern, str):
        raise ConfigError(f"{where}: {label} must be a regular expression (text), not {type(pattern).__name__}")
    try:
        re.compile(pattern)
    except re.error as e:
        raise ConfigError(f"{where}: {label} is not a valid regular expression: {e}") from None


def _check_rule(policy: Policy, i: int, r: Rule, roles: list[str] | None) -> None:
    where = policy.where(i)
    w = r.when
    if r.on == "answer":
        if r.tools != ["*"]:
            raise ConfigError(f"{where}: 'tool' applies to tool calls only; an answer rule names no tool")
        if w.args or w.effects is not None or w.origin is not None:
            raise ConfigError(f"{where}: 'args', 'effects' and 'origin' apply to tool calls only, not to answers")
    else:
        for key in ("text_matches", "answer_matches", "evidence_matches"):
            if getattr(w, key) is not None:
                raise ConfigError(f"{where}: '{key}' applies to answers only (a tool call has no text); use 'args'")
    for t in r.tools:
        if t != "*":
            _check_names(where, "tool", [t], None)
    if "*" in r.tools and len(r.tools) > 1:
        raise ConfigError(f"{where}: '*' already means every tool; do not list others beside it")
    if w.role is not None:
        if roles is None:
            raise ConfigError(f"{where}: the rule names roles; declare every role at the top (roles: [...])")
        _check_names(where, "role", w.role, roles)
    if r.approver_roles is not None:
        if roles is None:
            raise ConfigError(f"{where}: approver_roles needs the roles declared at the top (roles: [...])")
        _check_names(where, "approver role", r.approver_roles, roles)
        if r.action != "require_approval" and r.hook is None:
            raise ConfigError(f"{where}: approver_roles only applies to require_approval")
    if w.effects is not None:
        _check_names(where, "effect", w.effects, list(EFFECTS))
    if w.classification is not None:
        _check_names(where, "classification", w.classification, list(CLASSIFICATIONS))
    for key in ("text_matches", "answer_matches", "evidence_matches"):
        if getattr(w, key) is not None:
            _compile(where, getattr(w, key), key)
    for name, cond in w.args.items():
        _check_names(where, "argument", [name], None)
        ops = cond if isinstance(cond, dict) else {"eq": cond}
        for op, want in ops.items():
            label = f"when.args.{name}.{op}"
            if op in ORDER_OPS and not _number(want):
                raise ConfigError(f"{where}: {label} needs a number, not {want!r}")
            if op in ("in", "not_in") and not isinstance(want, list):
                raise ConfigError(f"{where}: {label} needs a list, not {want!r}")
            if op == "matches":
                _compile(where, want, label)
    if w.args and r.tools == ["*"]:
        raise ConfigError(f"{where}: a rule on arguments must name its tool(s); '*' cannot be checked")


def check_spec(policy: Policy) -> None:
    """Checks that need no tools: names, effects, roles, classifications, regexes, approvers."""
    spec = policy.spec
    src = policy.source or "policy"
    if spec.roles is not None:
        _check_names(src, "role", spec.roles, None)
        if len(set(spec.roles)) != len(spec.roles):
            raise ConfigError(f"{src}: roles lists a role twice")
    ids: set[str] = set()
    for i, r in enumerate(spec.rules):
        _check_names(policy.where(i), "rule id", [r.id], None)
        if r.id in ids:
            raise ConfigError(f"{policy.where(i)}: the rule id {r.id!r} is used twice")
        ids.add(r.id)
        _check_rule(policy, i, r, spec.roles)
    if spec.approval.roles is not None:
        if spec.roles is None:
            raise ConfigError(f"{src}: approval.roles needs the roles declared at the top (roles: [...])")
        _check_names(f"{src}: approval", "role", spec.approval.roles, spec.roles)
    seen: set[str] = set()
    for a in spec.approvers:
        if a.id in seen:
            raise ConfigError(f"{src}: approver {a.id!r} is configured twice")
        seen.add(a.id)
        if spec.roles is None:
            raise ConfigError(f"{src}: approvers have roles; declare every role at the top (roles: [...])")
        _check_names(f"{src}: approver {a.id}", "role", a.roles, spec.roles)


def check_against_tools(policy: Policy, tools: list[Any], caller_roles: list[str]) -> None:
    """Checks against the registered tools: tool names, argument names, operator types; caller roles."""
    by_name = {t.name: t for t in tools}
    src = policy.source or "policy"
    if policy.spec.roles is not None:
        _check_names(f"{src}: caller", "role", caller_roles, policy.spec.roles)
    for i, r in enumerate(policy.spec.rules):
        if r.on != "tool_call":
            continue
        where = policy.where(i)
        named = [t for t in r.tools if t != "*"]
        for t in named:
            if t not in by_name:
                raise ConfigError(f"{where}: tool {t!r} is not a registered tool{_closest(t, sorted(by_name))}")
        for name, cond in r.when.args.items():
            ops = cond if isinstance(cond, dict) else {"eq": cond}
            for t in named:
                props = by_name[t].args_model.model_json_schema().get("properties", {})
                if name not in props:
                    raise ConfigError(
                        f"{where}: tool {t} has no argument {name!r} (it has {', '.join(sorted(props)) or 'none'})"
                        f"{_closest(name, sorted(props))}"
                    )
                kind = props[name].get("type")
                if any(op in ORDER_OPS for op in ops) and kind not in ("number", "integer"):
                    raise ConfigError(
                        f"{where}: {t}.{name} is not a number ({kind or 'mixed'}); gt/gte/lt/lte cannot apply"
                    )


def load_hook(spec: str, where: str) -> Callable[[PolicyContext], str | None]:
    mod, _, attr = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(f"{where}: cannot load hook {spec!r} ({e})") from None
    if not callable(fn):
        raise ConfigError(f"{where}: hook {spec!r} is not callable")
    return fn  # type: ignore[no-any-return]
