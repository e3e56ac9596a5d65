"""Property-based tests of the schema and the policy on random and adversarial arguments (hypothesis)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tether.tools import Policy, PolicyContext, ToolValidationError, tool
from tether.tools._policy import PolicyFile

CALLS: list[dict[str, Any]] = []


@tool(effects=["write"])
def record_expense(employee: str, amount: float, count: int = 1, note: str = "") -> str:
    """Record an expense."""
    CALLS.append({"employee": employee, "amount": amount, "count": count, "note": note})
    return "ok"


HOSTILE_TEXT = st.text(
    alphabet=st.sampled_from(["a", "9", " ", "\x00", "\u202e", "\u200b", "\u2066", "\x1b", "е", "\n", "e", "."]),
    max_size=20,
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    HOSTILE_TEXT,
    st.sampled_from(["900", " 900 ", "9e5", "1e309", "inf", "nan", "-0", "0x10", "１２３"]),
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(HOSTILE_TEXT, inner, max_size=3), max_leaves=8
)
ARGS = st.fixed_dictionaries(
    {"employee": HOSTILE_TEXT | VALUES, "amount": SCALARS},
    optional={"count": SCALARS, "note": HOSTILE_TEXT | VALUES, "extra": VALUES, "amount\u200b": VALUES},
)

POLICY = Policy(
    PolicyFile.model_validate(
        {
            "default": "allow",
            "rules": [
                {
                    "id": "big",
                    "tool": "record_expense",
                    "when": {"args": {"amount": {"gt": 500}}},
                    "action": "require_approval",
                },
                {"id": "many", "tool": "record_expense", "when": {"args": {"count": {"in": [7, 8]}}}, "action": "deny"},
                {"id": "x", "tool": "record_expense", "when": {"args": {"note": {"matches": "^x"}}}, "action": "deny"},
            ],
        }
    )
)


def _clean_text(s: str) -> bool:
    return "\x00" not in s and "\u202e" not in s and "\u2066" not in s and "\x1b" not in s


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ARGS)
def test_no_argument_that_fails_validation_reaches_the_tool_and_valid_ones_are_typed(raw: dict[str, Any]) -> None:
    CALLS.clear()
    try:
        record_expense.call(raw)
    except ToolValidationError as e:
        assert CALLS == [] and e.feedback and all({"field", "problem", "got"} <= set(f) for f in e.feedback)
        return
    (args,) = CALLS
    assert type(args["amount"]) is float and math.isfinite(args["amount"])
    assert type(args["count"]) is int and -(2**63) <= args["count"] < 2**63
    assert type(args["employee"]) is str and _clean_text(args["employee"]) and _clean_text(args["note"])
    assert set(raw) <= {"employee", "amount", "count", "note"}


@settings(max_examples=400, deadline=None)
@given(ARGS)
def test_the_policy_never_raises_and_decides_on_the_validated_number(raw: dict[str, Any]) -> None:
    d_raw = POLICY.decide(PolicyContext(tool="record_expense", args=raw, effects=["write"]))
    assert d_raw.action in ("allow", "deny", "require_approval")  # even unvalidated junk: a decision, no crash
    try:
        canonical = record_expense.canonical_args(raw)
    except ToolValidationError:
        return
    d = POLICY.decide(PolicyContext(tool="record_expense", args=canonical, effects=["write"]))
    if canonical["amount"] > 500:
        assert d.action == "require_approval" and d.rule == "big"
    elif canonical["count"] in (7, 8):
        assert d.action == "deny"


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=500.0001, max_value=1e300))
def test_any_big_amount_in_any_accepted_spelling_needs_approval(amount: float) -> None:
    for spelling in (amount, int(amount) if amount < 2**62 and amount == int(amount) else amount):
        canonical = record_expense.canonical_args({"employee": "E-1", "amount": spelling})
        assert POLICY.decide(PolicyContext(tool="record_expense", args=canonical)).action == "require_approval"


NAMES = st.text(
    alphabet=st.sampled_from(["a", "b", "_", "A", " ", "\u200b", "\u00a0", "е", "ｒ", "\t", "-"]),
    min_size=0,
    max_size=8,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tool_name=NAMES, role=NAMES)
def test_a_policy_with_any_names_either_loads_canonical_or_is_one_config_error(
    tmp_path: Path, tool_name: str, role: str
) -> None:
    from tether.errors import ConfigError

    p = tmp_path / "p.yaml"
    p.write_text(
        "default: deny\nroles: [clerk]\nrules:\n  - id: r\n"
        f"    tool: {tool_name!r}\n    when: {{role: [{role!r}]}}\n    action: allow\n".replace("'", '"'),
        encoding="utf-8",
    )
    try:
        policy = Policy.load(p, tools=[record_expense])
    except ConfigError as e:
        assert "line 4" in str(e) or "YAML" in str(e)
        return
    rule = policy.spec.rules[0]
    assert rule.tool in ("*", "record_expense") and rule.when.role == ["clerk"]
