"""Typed tools: plain Python functions whose type hints become a JSON schema and a validator.

Every call's arguments and every result are validated against the declared types before the next
step; invalid arguments come back as structured feedback a model can act on.
"""

from __future__ import annotations

import inspect
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from tether.errors import TetherError

Effect = Literal["read", "write", "external", "irreversible"]
EFFECTS: tuple[Effect, ...] = ("read", "write", "external", "irreversible")


class ToolValidationError(TetherError):
    """Arguments or a result did not match the tool's declared types.

    ``feedback`` is a list of ``{"field", "problem", "got"}`` records to hand back to the model.
    """

    def __init__(self, tool: str, stage: str, feedback: list[dict[str, Any]]) -> None:
        self.tool = tool
        self.stage = stage
        self.feedback = feedback
        detail = "; ".join(f"{f['field']}: {f['problem']}" for f in feedback)
        super().__init__(f"{tool}: invalid {stage}: {detail}")


def _feedback(err: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "(value)", "problem": e["msg"], "got": e.get("input")}
        for e in err.errors()
    ]


def _param_docs(doc: str) -> dict[str, str]:
    """Descriptions of parameters from a Google-style ``Args:`` section."""
    out: dict[str, str] = {}
    m = re.search(r"^\s*Args:\s*\n((?:\s+.+\n?)+)", doc, re.MULTILINE)
    if m:
        for line in m.group(1).splitlines():
            pm = re.match(r"\s+(\w+)(?:\s*\([^)]*\))?:\s*(.+)", line)
            if pm:
                out[pm.group(1)] = pm.group(2).strip()
    return out


@dataclass
class Tool:
    """A callable with declared effects, an argument model and a result type."""

    name: str
    description: str
    fn: Callable[..., Any]
    effects: frozenset[Effect]
    args_model: type[BaseModel]
    result: TypeAdapter[Any]
    preview: Callable[..., Any] | None = None
    classification: str = "internal"
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def irreversible(self) -> bool:
        return "irreversible" in self.effects

    def json_schema(self) -> dict[str, Any]:
        """The function schema a model sees (OpenAI tools format)."""
        params = self.args_model.model_json_schema()
        params.pop("title", None)
        return {"name": self.name, "description": self.description, "parameters": params}

    def validate_args(self, raw: dict[str, Any]) -> BaseModel:
        try:
            return self.args_model.model_validate(raw)
        except ValidationError as e:
            raise ToolValidationError(self.name, "arguments", _feedback(e)) from None

    def validate_result(self, value: Any) -> Any:
        try:
            return self.result.validate_python(value)
        except ValidationError as e:
            raise ToolValidationError(self.name, "result", _feedback(e)) from None

    @property
    def takes_idempotency_key(self) -> bool:
        """The tool dedupes its own side effect by a key the orchestrator passes on every retry."""
        return "idempotency_key" in inspect.signature(self.fn).parameters

    def call(self, raw: dict[str, Any], idempotency_key: str | None = None) -> Any:
        """Validate arguments, run, validate the result."""
        args = dict(self.validate_args(raw))
        if self.takes_idempotency_key:
            args["idempotency_key"] = idempotency_key or uuid.uuid4().hex
        return self.validate_result(self.fn(**args))

    def run_preview(self, raw: dict[str, Any]) -> Any:
        """The dry run of a tool that declares one (what would happen), with validated arguments."""
        if self.preview is None:
            raise TetherError(f"{self.name} has no preview")
        return self.preview(**dict(self.validate_args(raw)))


@overload
def tool(
    fn: Callable[..., Any],
    *,
    effects: tuple[Effect, ...] | list[Effect] = ...,
    name: str | None = ...,
    preview: Callable[..., Any] | None = ...,
    classification: str = ...,
) -> Tool: ...


@overload
def tool(
    fn: None = None,
    *,
    effects: tuple[Effect, ...] | list[Effect] = ...,
    name: str | None = ...,
    preview: Callable[..., Any] | None = ...,
    classification: str = ...,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    effects: tuple[Effect, ...] | list[Effect] = ("read",),
    name: str | None = None,
    preview: Callable[..., Any] | None = None,
    classification: str = "internal",
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a typed tool from a plain function (usable as ``@tool`` or ``@tool(effects=[...])``).

    Args:
        fn: The function; every parameter needs a type hint, and so does the return value.
        effects: What calling it does: read, write, external, irreversible (least privilege: read).
        name: Tool name (default: the function's name).
        preview: A function with the same parameters that says what a call would do, without doing it.
        classification: The most sensitive data the tool touches (public, internal, confidential, secret).

    Example:
        >>> @tool(effects=["write"])
        ... def add_expense(amount: float, note: str = "") -> int:
        ...     '''Record an expense; returns its id.'''
        ...     return 1
        >>> add_expense.json_schema()["parameters"]["required"]
        ['amount']
    """

    def build(f: Callable[..., Any]) -> Tool:
        bad = [e for e in effects if e not in EFFECTS]
        if bad:
            raise ValueError(f"unknown effect(s) {bad}; use {EFFECTS}")
        hints = get_type_hints(f)
        if "return" not in hints:
            raise TypeError(f"tool {f.__name__} needs a return type hint")
        docs = _param_docs(inspect.getdoc(f) or "")
        fields: dict[str, Any] = {}
        for p in inspect.signature(f).parameters.values():
            if p.name == "idempotency_key":  # supplied by the orchestrator, never by the model
                continue
            if p.name not in hints:
                raise TypeError(f"tool {f.__name__}: parameter {p.name!r} needs a type hint")
            default = ... if p.default is inspect.Parameter.empty else p.default
            fields[p.name] = (hints[p.name], Field(default, description=docs.get(p.name)))
        model = create_model(f"{f.__name__}_args", __config__=ConfigDict(extra="forbid", strict=False), **fields)
        doc = inspect.getdoc(f) or ""
        return Tool(
            name=name or f.__name__,
            description=doc.split("\n\n")[0].strip(),
            fn=f,
            effects=frozenset(effects),
            args_model=model,
            result=TypeAdapter(hints["return"]),
            preview=preview,
            classification=classification,
        )

    return build(fn) if fn is not None else build
