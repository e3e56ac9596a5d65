"""Typed tools: plain Python functions whose type hints become a JSON schema and a validator.

Every call's arguments and every result are validated against the declared types before the next
step; invalid arguments come back as structured feedback a model can act on.

Validation is strict and happens before anything else looks at the arguments (policy included): no
string or boolean becomes a number unless the parameter opts in with ``Annotated[float, Lax]``; numbers
must be finite; integers must fit in 64 bits; strings are bounded in length and may not hold NUL,
control or bidirectional-override characters. What the policy, the preview and the tool then see is the
validated, normalised form (:meth:`Tool.canonical_args`).
"""

from __future__ import annotations

import contextvars
import inspect
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from tether.errors import TetherError
from tether.tools._limits import ArgLimits, limit_problems, non_finite_path, safe_got
from tether.tools._names import tool_name_problem

Effect = Literal["read", "write", "external", "irreversible"]
EFFECTS: tuple[Effect, ...] = ("read", "write", "external", "irreversible")

Lax: Any = Field(strict=False)
"""Opt one parameter into lax parsing: ``amount: Annotated[float, Lax]`` accepts ``"12.5"`` (still finite)."""

_current_effects: contextvars.ContextVar[frozenset[str] | None] = contextvars.ContextVar(
    "tether_tool_effects", default=None
)


class ToolDefinitionError(TetherError, ValueError):
    """A tool cannot be defined or registered as written (bad name, unknown effect, duplicate)."""


class IdempotencyConflictError(TetherError):
    """An idempotency key came back with other arguments than the first time: refused, never "the same"."""


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
        {"field": ".".join(str(p) for p in e["loc"]) or "(value)", "problem": e["msg"], "got": safe_got(e.get("input"))}
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
    limits: ArgLimits = field(default_factory=ArgLimits)

    def __post_init__(self) -> None:
        problem = tool_name_problem(self.name)
        if problem:
            raise ToolDefinitionError(problem)
        bad = sorted(e for e in self.effects if e not in EFFECTS)
        if bad:
            raise ToolDefinitionError(f"tool {self.name}: unknown effect(s) {bad}; use {', '.join(EFFECTS)}")
        if not self.effects:
            raise ToolDefinitionError(f"tool {self.name}: declare at least one effect ({', '.join(EFFECTS)})")

    @property
    def irreversible(self) -> bool:
        return "irreversible" in self.effects

    @property
    def param_names(self) -> frozenset[str]:
        """The arguments a model (and a policy rule) may name."""
        return frozenset(self.args_model.model_fields)

    def json_schema(self) -> dict[str, Any]:
        """The function schema a model sees (OpenAI tools format)."""
        params = self.args_model.model_json_schema()
        params.pop("title", None)
        return {"name": self.name, "description": self.description, "parameters": params}

    def validate_args(self, raw: Any) -> BaseModel:
        """Check the limits, then the declared types (strictly); raises :class:`ToolValidationError`."""
        if not isinstance(raw, dict):
            problem = {"field": "(value)", "problem": "arguments must be an object", "got": safe_got(raw)}
            raise ToolValidationError(self.name, "arguments", [problem])
        problems = limit_problems(raw, self.limits)
        if problems:
            raise ToolValidationError(self.name, "arguments", problems)
        try:
            return self.args_model.model_validate(raw)
        except ValidationError as e:
            raise ToolValidationError(self.name, "arguments", _feedback(e)) from None

    def canonical_args(self, raw: Any) -> dict[str, Any]:
        """The validated arguments as JSON data, defaults filled in: what policy and approvals see."""
        return self.validate_args(raw).model_dump(mode="json")

    def validate_result(self, value: Any) -> Any:
        try:
            result = self.result.validate_python(value)
        except ValidationError as e:
            raise ToolValidationError(self.name, "result", _feedback(e)) from None
        dumped = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
        where = non_finite_path(dumped)
        if where is not None:
            problem = {"field": where, "problem": "number must be finite (not inf or NaN)", "got": None}
            raise ToolValidationError(self.name, "result", [problem])
        return result

    @property
    def takes_idempotency_key(self) -> bool:
        """The tool dedupes its own side effect by a key the orchestrator passes on every retry."""
        return "idempotency_key" in inspect.signature(self.fn).parameters

    def invoke(self, args: BaseModel, idempotency_key: str | None = None) -> Any:
        """Run the function on validated arguments under its declared effects; validate the result."""
        kwargs = dict(args)
        if self.takes_idempotency_key:
            kwargs["idempotency_key"] = idempotency_key or uuid.uuid4().hex
        token = _current_effects.set(frozenset(self.effects))
        try:
            value = self.fn(**kwargs)
        finally:
            _current_effects.reset(token)
        return self.validate_result(value)

    def call(self, raw: dict[str, Any], idempotency_key: str | None = None) -> Any:
        """Validate arguments, run, validate the result."""
        return self.invoke(self.validate_args(raw), idempotency_key)

    def run_preview(self, raw: dict[str, Any]) -> Any:
        """The dry run of a tool that declares one (what would happen), with validated arguments, read-only."""
        if self.preview is None:
            raise TetherError(f"{self.name} has no preview")
        args = dict(self.validate_args(raw))
        token = _current_effects.set(frozenset({"read"}))
        try:
            return self.preview(**args)
        finally:
            _current_effects.reset(token)


def may_write() -> bool:
    """Whether the running tool declared an effect that may change local state (True outside any tool)."""
    effects = _current_effects.get()
    return effects is None or bool(effects & {"write", "irreversible"})


@contextmanager
def tool_sqlite(path: str | Path, *, timeout: float = 10.0) -> Iterator[sqlite3.Connection]:
    """A SQLite connection that matches the running tool's declared effects.

    Inside a tool declared ``read`` only (and inside every preview) the file is opened read-only, so a
    write raises ``sqlite3.OperationalError`` instead of happening. Commits on success, then closes.
    """
    if may_write():
        conn = sqlite3.connect(str(path), timeout=timeout)
    else:
        conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=timeout)
        conn.execute("PRAGMA query_only = ON")
    try:
        with conn:
            yield conn
    finally:
        conn.close()


@overload
def tool(
    fn: Callable[..., Any],
    *,
    effects: tuple[Effect, ...] | list[Effect] = ...,
    name: str | None = ...,
    preview: Callable[..., Any] | None = ...,
    classification: str = ...,
    limits: ArgLimits | None = ...,
) -> Tool: ...


@overload
def tool(
    fn: None = None,
    *,
    effects: tuple[Effect, ...] | list[Effect] = ...,
    name: str | None = ...,
    preview: Callable[..., Any] | None = ...,
    classification: str = ...,
    limits: ArgLimits | None = ...,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    effects: tuple[Effect, ...] | list[Effect] = ("read",),
    name: str | None = None,
    preview: Callable[..., Any] | None = None,
    classification: str = "internal",
    limits: ArgLimits | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a typed tool from a plain function (usable as ``@tool`` or ``@tool(effects=[...])``).

    Args:
        fn: The function; every parameter needs a type hint, and so does the return value.
        effects: What calling it does: read, write, external, irreversible (least privilege: read).
        name: Tool name (default: the function's name); ASCII letters, digits, ``_ . -`` only.
        preview: A function with the same parameters that says what a call would do, without doing it.
        classification: The most sensitive data the tool touches (public, internal, confidential, secret).
        limits: Bounds on the raw arguments (default :class:`ArgLimits`).

    Raises:
        ToolDefinitionError: The name has look-alike or invisible characters, or an effect is unknown.

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
            raise ToolDefinitionError(f"unknown effect(s) {bad}; use {EFFECTS}")
        tool_name = name if name is not None else f.__name__
        problem = tool_name_problem(tool_name)
        if problem:
            raise ToolDefinitionError(problem)
        hints = get_type_hints(f, include_extras=True)
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
        model = create_model(
            f"{tool_name}_args", __config__=ConfigDict(extra="forbid", strict=True, allow_inf_nan=False), **fields
        )
        doc = inspect.getdoc(f) or ""
        return Tool(
            name=tool_name,
            description=doc.split("\n\n")[0].strip(),
            fn=f,
            effects=frozenset(effects),
            args_model=model,
            result=TypeAdapter(hints["return"]),
            preview=preview,
            classification=classification,
            limits=limits or ArgLimits(),
        )

    return build(fn) if fn is not None else build


def registry(tools: list[Tool]) -> dict[str, Tool]:
    """Tools by name; a second tool with a name already taken is an error, never a silent replacement."""
    out: dict[str, Tool] = {}
    for t in tools:
        if not isinstance(t, Tool):
            raise ToolDefinitionError(f"{t!r} is not a tool (decorate the function with @tool)")
        problem = tool_name_problem(t.name)
        if problem:
            raise ToolDefinitionError(problem)
        if t.name in out:
            raise ToolDefinitionError(f"two tools are named {t.name!r}; tool names must be unique")
        out[t.name] = t
    return out
