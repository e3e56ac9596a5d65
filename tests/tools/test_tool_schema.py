"""Tools from type hints: schemas, argument and result validation, structured feedback, previews."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest
from pydantic import BaseModel

from tether.tools import Lax, ToolValidationError, tool


class Receipt(BaseModel):
    id: int
    status: Literal["recorded", "rejected"]


def _preview(amount: float, category: str = "travel") -> str:
    return f"would record {amount:.2f} under {category}"


@tool(effects=["write"], preview=_preview)
def record_expense(amount: float, category: Literal["travel", "meals"] = "travel") -> Receipt:
    """Record an expense in the ledger.

    Args:
        amount: Amount in euros, more than zero.
        category: Ledger category.
    """
    return Receipt(id=7, status="recorded")


@tool
def broken_result(x: int) -> Receipt:
    """Returns something that is not a receipt."""
    return {"id": "seven", "status": "lost"}  # type: ignore[return-value]


def test_the_schema_comes_from_type_hints_and_docstring() -> None:
    schema = record_expense.json_schema()
    assert schema["name"] == "record_expense"
    assert schema["description"] == "Record an expense in the ledger."
    props = schema["parameters"]["properties"]
    assert props["amount"]["type"] == "number" and props["amount"]["description"].startswith("Amount in euros")
    assert props["category"]["enum"] == ["travel", "meals"]
    assert schema["parameters"]["required"] == ["amount"]
    assert record_expense.effects == {"write"}


def test_valid_arguments_are_validated_strictly_and_the_result_is_checked() -> None:
    assert record_expense.call({"amount": 12}) == Receipt(id=7, status="recorded")
    assert record_expense.canonical_args({"amount": 12}) == {"amount": 12.0, "category": "travel"}
    with pytest.raises(ToolValidationError, match="amount"):
        record_expense.call({"amount": "12.50"})  # no string-to-number coercion unless a field opts in


def test_a_parameter_can_opt_in_to_lax_parsing_and_stays_finite() -> None:
    @tool
    def lax(amount: Annotated[float, Lax]) -> float:
        """Lax amount."""
        return amount

    assert lax.call({"amount": "12.50"}) == 12.5
    with pytest.raises(ToolValidationError, match="finite"):
        lax.call({"amount": "1e309"})


def test_invalid_arguments_come_back_as_structured_feedback() -> None:
    with pytest.raises(ToolValidationError) as e:
        record_expense.call({"amount": "lots", "category": "golf", "extra": 1})
    fields = {f["field"]: f for f in e.value.feedback}
    assert set(fields) == {"amount", "category", "extra"}
    assert fields["category"]["got"] == "golf" and "travel" in fields["category"]["problem"]
    assert e.value.stage == "arguments"


def test_a_result_that_breaks_the_declared_type_is_caught_before_the_next_step() -> None:
    with pytest.raises(ToolValidationError) as e:
        broken_result.call({"x": 1})
    assert e.value.stage == "result"
    assert {f["field"] for f in e.value.feedback} == {"id", "status"}


def test_preview_runs_with_validated_arguments_and_no_side_effect() -> None:
    assert record_expense.run_preview({"amount": 3}) == "would record 3.00 under travel"
    with pytest.raises(ToolValidationError):
        record_expense.run_preview({"amount": "x"})


def test_missing_type_hints_and_unknown_effects_are_refused_at_definition() -> None:
    with pytest.raises(TypeError, match="type hint"):

        @tool
        def untyped(x) -> int:  # type: ignore[no-untyped-def]
            return 1

    with pytest.raises(ValueError, match="unknown effect"):
        tool(effects=["teleport"])(lambda: 1)  # type: ignore[list-item]
