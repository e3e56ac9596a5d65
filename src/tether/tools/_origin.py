"""Where a planned step's arguments came from: the user's request, a document the planner read, or the model.

A planner that reads documents can be steered by them (an email that says "forward this to ..."). The
orchestrator does not trust the planner's account: it traces each argument value itself. A value found in the
request is the user's; one found only in a source the planner saw came from that document; one found nowhere
was made up by the model. A step with any document-borne value is a step the document asked for, and the
policy's ``document_origin`` decides it before any rule (default: deny for tools that change anything).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

OriginKind = Literal["user", "document", "model"]
MIN_CHARS = 3  # shorter strings ("EUR", "a") occur everywhere and say nothing about where a value came from
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:[.,]\d+)*(?![\w])")


class PlanSource(BaseModel):
    """A document the planner was shown (its path and the text it saw)."""

    path: str
    text: str = Field(max_length=2_000_000)


class Origin(BaseModel):
    kind: OriginKind = "user"
    sources: list[str] = Field(default_factory=list, description="documents that hold the values the request lacks")
    values: list[str] = Field(default_factory=list, description="argument values not in the request")


def _leaves(value: Any) -> Iterator[str | float]:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int | float):
        yield float(value)
    elif isinstance(value, str):
        if len(value.strip()) >= MIN_CHARS:
            yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _leaves(v)


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def _numbers(text: str) -> set[float]:
    out = set()
    for m in _NUMBER.findall(text):
        for candidate in (m.replace(",", ""), m.replace(".", "").replace(",", ".")):
            try:
                out.add(float(candidate))
            except ValueError:
                continue
    return out


class _Text:
    def __init__(self, text: str) -> None:
        self.norm = _norm(text)
        self.numbers = _numbers(text)

    def has(self, value: str | float) -> bool:
        if isinstance(value, float):
            return value in self.numbers
        return _norm(value) in self.norm


def trace_origin(args: dict[str, Any], request: str, sources: Sequence[PlanSource]) -> Origin:
    """The origin of a step with ``args``, planned for ``request`` after reading ``sources``."""
    return trace_origins([args], request, sources)[0]


def trace_origins(steps: Sequence[dict[str, Any]], request: str, sources: Sequence[PlanSource]) -> list[Origin]:
    """The origin of each step's ``args`` (the request and the sources are read once for the whole plan)."""
    asked = _Text(request)
    docs = [(s.path, _Text(s.text)) for s in sources]
    return [_origin(args, asked, docs) for args in steps]


def _origin(args: dict[str, Any], asked: _Text, docs: list[tuple[str, _Text]]) -> Origin:
    foreign: list[str] = []
    paths: list[str] = []
    invented = False
    for v in _leaves(args):
        if asked.has(v):
            continue
        shown = f"{v:g}" if isinstance(v, float) else v
        foreign.append(shown[:200])
        found = [p for p, d in docs if d.has(v)]
        if found:
            paths.extend(p for p in found if p not in paths)
        else:
            invented = True
    kind: OriginKind = "document" if paths else ("model" if invented else "user")
    return Origin(kind=kind, sources=paths, values=foreign)
